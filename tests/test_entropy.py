"""aekit.entropy: the factorized prior trains, its integer tables code symbols to bytes and back exactly."""

import numpy as np
import pytest
import torch

from aekit.entropy import PRECISION, BitstreamError, FactorizedPrior, IntegerTables, decode, encode
from aekit.errors import AekitError


def random_tables(channels=6, seed=0) -> IntegerTables:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 40, channels)
    width = int(lengths.max())
    mass = np.where(np.arange(width)[None] < lengths[:, None], rng.random((channels, width)) ** 3, 0)
    from aekit.entropy import _quantised

    return IntegerTables(_quantised(mass, lengths), lengths.astype(np.int32), (lengths // 2).astype(np.int32),
                         rng.normal(size=channels).astype(np.float32))


def symbols_for(tables: IntegerTables, n: int, spatial=(3, 4), seed=1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, tables.channels, *spatial), np.int32)
    for c in range(tables.channels):  # drawn from the tables' own distribution
        p = tables.frequencies[c, : tables.lengths[c]] / (1 << PRECISION)
        out[:, c] = rng.choice(tables.lengths[c], size=(n, *spatial), p=p)
    return out


def test_symbols_round_trip_exactly_at_about_their_ideal_length():
    tables = random_tables()
    symbols = symbols_for(tables, 50)
    streams = encode(symbols, tables)
    assert len(streams) == 50 and all(isinstance(s, bytes) for s in streams)
    np.testing.assert_array_equal(decode(streams, tables, symbols.shape[1:]), symbols)
    ideal = tables.bits(symbols)
    bits = np.array([8 * len(s) for s in streams])
    assert (bits >= ideal).all() and (bits <= ideal + 32 + 16).all()  # the state's 32 bits and a part-filled word


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_an_images_bytes_do_not_depend_on_its_batch(batch):
    tables = random_tables(seed=3)
    symbols = symbols_for(tables, 64, seed=4)
    alone = [encode(symbols[i : i + 1], tables)[0] for i in range(0, 64, 9)]
    batched = [b for i in range(0, 64, batch) for b in encode(symbols[i : i + batch], tables)]
    assert alone == batched[::9]
    np.testing.assert_array_equal(decode(batched[:batch], tables, symbols.shape[1:]), symbols[:batch])


def test_damaged_or_foreign_streams_are_refused():
    tables = random_tables(seed=5)
    symbols = symbols_for(tables, 20, seed=6)
    streams = encode(symbols, tables)
    with pytest.raises(BitstreamError, match="does not decode"):
        decode([streams[0][:-2]], tables, symbols.shape[1:])  # truncated by a word
    with pytest.raises(BitstreamError, match="not a whole"):
        decode([streams[0][:3]], tables, symbols.shape[1:])
    rng = np.random.default_rng(7)
    for i in range(20):  # a flipped bit anywhere
        damaged = bytearray(streams[i])
        damaged[rng.integers(len(damaged))] ^= 1 << int(rng.integers(8))
        with pytest.raises(BitstreamError):
            decode([bytes(damaged)], tables, symbols.shape[1:])
    with pytest.raises(BitstreamError):
        decode(streams[:1], random_tables(seed=8), symbols.shape[1:])  # another model's tables


def test_tables_are_checked_and_survive_safetensors_tensors():
    tables = random_tables()
    assert (tables.frequencies.astype(np.int64).sum(axis=1) == 1 << PRECISION).all()
    again = IntegerTables.from_tensors(tables.to_tensors("prior."), "prior.")
    for name in ("frequencies", "lengths", "offsets", "medians"):
        np.testing.assert_array_equal(getattr(again, name), getattr(tables, name))
    broken = tables.frequencies.copy()
    broken[0, 0] += 1
    with pytest.raises(AekitError, match="sum to"):
        IntegerTables(broken, tables.lengths, tables.offsets, tables.medians)
    with pytest.raises(AekitError, match="missing"):
        IntegerTables.from_tensors({}, "")


def test_a_factorized_prior_learns_its_data_and_codes_it_near_the_entropy():
    torch.manual_seed(0)
    prior = FactorizedPrior(3)
    centres, widths = torch.tensor([2.0, -4.0, 0.5]), torch.tensor([1.5, 4.0, 0.7])
    optimizer = torch.optim.Adam(prior.parameters(), lr=0.02)
    first = None
    for step in range(400):
        y = centres[None, :, None] + widths[None, :, None] * torch.randn(256, 3, 4)
        _, likelihoods = prior(y)
        bits = -torch.log2(likelihoods).mean()
        loss = bits + prior.quantile_loss()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = bits.item() if first is None else first
    assert bits.item() < first - 1
    # the entropy of a gaussian of width w rounded to integers is about log2(w * sqrt(2 pi e)) bits
    entropy = torch.log2(widths * (2 * torch.pi * torch.e) ** 0.5).mean().item()
    prior.eval()
    tables = IntegerTables.from_prior(prior)
    y = centres[None, :, None] + widths[None, :, None] * torch.randn(200, 3, 16, generator=torch.Generator().manual_seed(1))
    symbols = tables.symbols(y)
    # coding rounds as the prior does, clamping only the rare values past a channel's range
    inside = (symbols > 0) & (symbols < tables.lengths[None, :, None] - 1)
    assert inside.mean() > 0.99
    rounded = prior(y, noise=False)[0].detach().numpy()
    np.testing.assert_allclose(tables.values(symbols).numpy()[inside], rounded[inside], atol=1e-5)
    streams = encode(symbols, tables)
    np.testing.assert_array_equal(decode(streams, tables, symbols.shape[1:]), symbols)
    ideal = tables.bits(symbols)
    assert ideal.mean() / (3 * 16) < entropy + 0.1  # the learned density is close to the data's
    assert (np.array([8 * len(s) for s in streams]) <= ideal + 32 + 16).all()
