"""One rule for turning ``--device auto|cpu|cuda[:N]`` into a torch.device, shared by every command."""

from __future__ import annotations

import os

import torch

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
