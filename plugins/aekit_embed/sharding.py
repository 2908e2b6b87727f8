"""``aekit embed`` under torchrun: each process encodes one contiguous share of the inputs, rank 0 writes them all."""

from __future__ import annotations

import numpy as np

from .fast_encoder import encode_share


def shard_indices(count: int, rank: int, world: int) -> list[int]:
    """The contiguous share of `count` inputs that process `rank` of `world` embeds (sizes differ by at most 1)."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in [0, {world})")
    return list(range(rank * count // world, (rank + 1) * count // world))


def gather_shares(latents, kept, skipped, error, rank: int, world: int):
    """Rank 0 receives every rank's share and returns them merged in input order (shares are contiguous,
    so rank order is input order); other ranks return their own."""
    import torch.distributed as dist

    shares = [None] * world if rank == 0 else None
    dist.gather_object((latents, kept, skipped, error), shares, dst=0)
    if rank != 0:
        return latents, kept, skipped, error
    errors = [share[3] for share in shares if share[3]]
    return (np.concatenate([share[0] for share in shares]), [i for share in shares for i in share[1]],
            [message for share in shares for message in share[2]], errors[0] if errors else None)


def encode_process_share(model, source, rank: int, world: int, batch_size: int, strict: bool, quiet: bool,
                         reduced: bool, kind: str = "latent", runtime: str = "torch"):
    """Encode this process's share of `source` (all of it outside torchrun); on rank 0, every rank's, merged.

    Returns ``encode_share``'s (latents, kept indices, skip messages, error or None). Every rank reports,
    errors included, so none waits forever on a failed one; only rank 0's result is the whole input.
    """
    share = shard_indices(len(source), rank, world)
    latents, kept, skipped, error = encode_share(model, source, share, batch_size, strict,
                                                 progress=not quiet and rank == 0, reduced=reduced, kind=kind,
                                                 runtime=runtime)
    if world > 1:
        latents, kept, skipped, error = gather_shares(latents, kept, skipped, error, rank, world)
    return latents, kept, skipped, error


def encode_aligned_share(model, source, mode: str, rank: int, world: int, batch_size: int, strict: bool, quiet: bool,
                         kind: str = "latent", runtime: str = "torch"):
    """``aekit embed --align auto|on``: the faces of this process's share of `source`'s images, encoded; on rank 0,
    every rank's, merged.

    Each process finds the faces of its own contiguous share of the images (``aekit.alignment.aligned_source``,
    which reads them in full, in threads), so no image is searched twice. Returns (latents, rows, skip
    messages, error or None), a row being (the image's index in `source`, the row's name, its ``Placement``)
    in input order; images that give no face under ``on`` are skip messages.
    """
    from dataclasses import replace

    from aekit.alignment import aligned_source
    from aekit.data import SubsetSource

    share = shard_indices(len(source), rank, world)
    view = source if len(share) == len(source) else SubsetSource(source, share)
    aligned = aligned_source(view, mode, model.config.image_size, progress=not quiet and rank == 0)
    latents, kept, skipped, error = encode_share(model, aligned, list(range(len(aligned))), batch_size, strict,
                                                 progress=not quiet and rank == 0, reduced=False, kind=kind,
                                                 runtime=runtime)
    keys, placements = aligned.keys(), aligned.placements()
    rows = [(share[aligned.source_index(i)], keys[i], replace(placements[i], face=None)) for i in kept]  # picklable
    if world > 1:
        latents, rows, skipped, error = gather_shares(latents, rows, skipped, error, rank, world)
    return latents, rows, skipped, error
