"""One rule for turning ``--device auto|cpu|cuda[:N]`` into a torch.device, shared by every command."""

from __future__ import annotations

import atexit
import os

import torch
import torch.distributed as dist

from .errors import DeviceError


def resolve_device(name) -> torch.device:
    """auto -> cuda when available, else cpu; a clear error when cuda is asked for but absent.

    Under torchrun each process takes the GPU of its LOCAL_RANK.
    """
    if isinstance(name, torch.device):
        name = str(name)
    name = str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and "LOCAL_RANK" in os.environ and torch.cuda.is_available():
        name = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} was asked for but no CUDA GPU is available; use cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r}; use auto, cpu or cuda") from None


def distributed_context() -> tuple[int, int]:
    """(rank, world size): (0, 1) normally; under torchrun, joins the process group (NCCL on GPUs, gloo on CPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        if torch.cuda.is_available():  # NCCL's collectives (gather_object, barrier) use the current device
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        # left to the interpreter's shutdown, a gloo group's threads can abort the process ("terminate called
        # without an active exception") on a rank that finishes before the others
        atexit.register(_destroy_process_group)
    return dist.get_rank(), dist.get_world_size()


def _destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
