"""Strict reading of what aekit's files hold: JSON that cannot crash its reader, and recorded fields of the
types their dataclass declares (a string is not a tuple of ints, a bool is not a number, NaN is not a size).

One reader, ``loads`` (``parse_json``: the same, its errors naming the file), for config.json, run.json,
metrics.jsonl, the sidecars' metadata and the explorer's requests: nesting too deep for Python
(``RecursionError``), integers longer than any real value (Python refuses 4300+ digits with a ValueError;
a 310-digit one already overflows a float) and, unless allowed, the NaN / Infinity literals that
``json.loads`` accepts by default, all become one-line errors. `read_json` also takes a size cap, and
`check_fields` bounds whole numbers (`Limit`; `MODEL_SIZE_LIMITS` for the size fields of every model config).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
from pathlib import Path
import typing

from .errors import AekitError

MAX_INT_DIGITS = 100  # far beyond any size, seed or count; short enough that float(value) cannot overflow


@dataclasses.dataclass(frozen=True)
class Limit:
    """Bounds of a whole-number field, or of every item of a list field (whose length `items` bounds)."""

    low: int
    high: int
    items: tuple[int, int] | None = None


# The size fields of a model's config.json, bounded before anything is built: each multiplies the modules a
# model has (blocks_per_stage=10000 once took 3.5 minutes and 4.8 GB to refuse), and the file may be a stranger's.
# Generous for real use (the presets: 64x64 images, 4 stages of widths up to 256, 1 to 4 convs or blocks per
# stage); the largest model they allow has about 5,000 tensors. A config class may declare its own ``LIMITS``.
MODEL_SIZE_LIMITS: dict[str, Limit] = {
    "image_size": Limit(1, 1024),
    "channels": Limit(1, 16),
    "latent_dim": Limit(1, 65536),
    "widths": Limit(1, 8192, items=(1, 8)),  # 8 halvings take 1024 pixels to a 4x4 map
    "convs_per_half": Limit(0, 16),
    "blocks_per_stage": Limit(0, 16),
    "decoder_start": Limit(1, 64),
}


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise ValueError(f"a {digits}-digit number")
    return int(text)


def _parse_finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is too large for a number")
    return value


class JSONProblem(ValueError):
    """Why a text is not JSON aekit reads (a one-line reason, no file name: `parse_json` adds that)."""


def loads(text, allow_nan: bool = False):
    """`text` (str or UTF-8 bytes) parsed as JSON, or JSONProblem saying why not, in one line.

    `allow_nan` keeps NaN and Infinity (as ``json.loads`` does): for records such as metrics, where a
    non-finite value is news, not damage; values that configure something are checked by `check_fields`.
    """
    try:
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode("utf-8")
        if allow_nan:
            return json.loads(text, parse_int=_parse_int)
        return json.loads(text, parse_int=_parse_int, parse_float=_parse_finite, parse_constant=_refuse_constant)
    except RecursionError:  # nesting the C scanner follows until Python's stack runs out
        problem = "nested too deeply to read"
    except UnicodeDecodeError:
        problem = "not UTF-8 text"
    except ValueError as exc:  # JSONDecodeError and ours above
        problem = str(exc)
    raise JSONProblem(problem)


def parse_json(text, where: str, error: type[Exception] = AekitError, allow_nan: bool = False, hint: str = ""):
    """`loads(text, allow_nan)`, raising ``error(f"{where}: invalid JSON (...)[; {hint}]")`` for anything that is
    not JSON (`hint`: what to do about it)."""
    try:
        return loads(text, allow_nan)
    except JSONProblem as exc:
        raise error(f"{where}: invalid JSON ({exc})" + (f"; {hint}" if hint else "")) from None


def read_json(path, error: type[Exception] = AekitError, allow_nan: bool = False, hint: str = "",
              max_bytes: int | None = None):
    """The JSON file `path`, parsed by `parse_json` (errors name the file); longer than `max_bytes`, refused unread."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if max_bytes is not None and size > max_bytes:
                raise error(f"{path}: {size:,} bytes, more than the {max_bytes:,} this file may hold" + (f"; {hint}" if hint else ""))
            # a file that grows after fstat is still read no further than the cap
            data = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"{path}: {exc.strerror or type(exc).__name__}") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise error(f"{path}: more than the {max_bytes:,} bytes this file may hold" + (f"; {hint}" if hint else ""))
    return parse_json(data, str(path), error, allow_nan, hint)


# --- recorded fields against their dataclass's annotations ------------------------------------------------


def _shown(value) -> str:
    try:
        text = json.dumps(value, allow_nan=True) if not isinstance(value, (set, tuple)) else repr(value)
    except (TypeError, ValueError):  # not JSON, or an int too long to print
        text = type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _problem(hint, value) -> str | None:
    """What `value` should have been for the annotation `hint` (None when it fits)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is typing.Any:
        return None
    if origin in (typing.Union, types.UnionType):
        problems = [_problem(arg, value) for arg in args]
        return None if None in problems else " or ".join(dict.fromkeys(p for p in problems))
    if hint is type(None):
        return None if value is None else "null"
    if hint is bool:
        return None if isinstance(value, bool) else "true or false"
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "a whole number"
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "a number"
        try:
            return None if math.isfinite(float(value)) else "a finite number"
        except OverflowError:
            return "a finite number"
    if hint is str:
        return None if isinstance(value, str) else "text"
    if hint is dict or origin is dict:
        return None if isinstance(value, dict) else "an object"
    if origin in (tuple, list) or hint in (tuple, list):
        item = args[0] if args else typing.Any
        if not isinstance(value, (list, tuple)):
            return "a list" + (f" of {_plural(item)}" if item is not typing.Any else "")
        inner = [_problem(item, v) for v in value]
        bad = next((p for p in inner if p is not None), None)
        return None if bad is None else f"a list of {_plural(item)}"
    return None  # a type this check does not know: the dataclass itself decides


def _plural(hint) -> str:
    return {int: "whole numbers", float: "finite numbers", bool: "true/false values", str: "texts"}.get(hint, "values")


def field_types(cls) -> dict[str, object]:
    """{field name: annotation} of a dataclass; {} when its annotations cannot be resolved (nothing is checked)."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # a plugin's config class whose annotations name what is not importable here
        return {}
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.name in hints}


def _out_of_bounds(limit: Limit, value) -> str | None:
    """What a value of the right type should have been for `limit` (None when it fits)."""
    if isinstance(value, (list, tuple)) and limit.items is not None:
        fewest, most = limit.items
        if not fewest <= len(value) <= most:
            return f"a list of {fewest} to {most} numbers (it holds {len(value):,})"
        if any(_whole(v) and not limit.low <= v <= limit.high for v in value):
            return f"a list of whole numbers from {limit.low} to {limit.high}"
    elif _whole(value) and not limit.low <= value <= limit.high:
        return f"from {limit.low} to {limit.high}"
    return None


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_fields(cls, values: dict, where: str, error: type[Exception] = AekitError,
                 limits: dict[str, Limit] | None = None) -> None:
    """``error(f'{where} "NAME" must be ..., got VALUE')`` for the first field of `values` whose JSON value does
    not fit `cls`'s annotation or is out of its bounds in `limits` (default: ``cls.LIMITS``, if any) (`where`
    e.g. ``"runs/x/config.json: config field"``).

    Fields `cls` does not have are left to the caller (who may refuse or ignore them).
    """
    types_ = field_types(cls)
    limits = (getattr(cls, "LIMITS", None) or {}) if limits is None else limits
    for name, value in values.items():
        if name not in types_:
            continue
        expected = _problem(types_[name], value)
        if expected is None and name in limits:
            expected = _out_of_bounds(limits[name], value)
        if expected is not None:
            raise error(f"{where} \"{name}\" must be {expected}, got {_shown(value)}")
