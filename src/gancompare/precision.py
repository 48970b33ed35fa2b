"""`trainer.precision` and the kernel settings that go with it.

- `32`: float32 everywhere (the reference; resume is bit-exact).
- `bf16-mixed`: the networks' forward passes under `torch.autocast(dtype=bfloat16)` on CPU or
  CUDA; weights, optimiser state, losses and the gradient penalty stay float32 (D's outputs are
  cast to float32 before any loss).
- `tf32`: float32 storage with TensorFloat-32 matrix units on CUDA (Ampere and newer).
- `auto` (the default): bf16-mixed where bf16 is native (CUDA with bf16; CPUs with AVX-512 BF16
  or AMX), else 32; always 32 for the 2-D mixtures (`data.source=mixture`): bf16 keeps 8
  significant bits, so G's points fall on a grid 0.008 apart near |x| = 1 and 0.03 apart near
  |x| = 4, as coarse as the modes' std (0.01 for ring8, 0.05 for grid25), and D sees real
  points rounded as coarsely. The evidence for images (`scripts/precision_check.py`, README):
  the four failure scenarios at seeds 0, 1, 2 get the same verdicts in bf16-mixed as in fp32,
  and the stable baseline's FID and coverage stay within fp32's seed-to-seed spread.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import torch

from gancompare.errors import ConfigError

log = logging.getLogger(__name__)

PRECISIONS = ("32", "bf16-mixed", "tf32", "auto")


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text() if cpuinfo.is_file() else ""
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(name: str, device: torch.device, data_source: str | None = None) -> str:
    """What `trainer.precision` runs as on `device` for data of `data.source`."""
    name = str(name)
    if name not in PRECISIONS:
        raise ConfigError("trainer.precision", f"unknown precision '{name}'",
                          f"choose one of {', '.join(PRECISIONS)}")
    if name == "auto":
        return "bf16-mixed" if native_bf16(device) and data_source != "mixture" else "32"
    if name == "bf16-mixed" and data_source == "mixture":
        log.warning("trainer.precision=bf16-mixed rounds the 2-D mixtures' points to a grid as "
                    "coarse as their modes' std (generated points collide, the mixture metrics "
                    "and distinct_points suffer): use trainer.precision=32 or auto")
    if name == "tf32" and device.type != "cuda":
        raise ConfigError("trainer.precision", "tf32 exists on CUDA only",
                          "use trainer.precision=32 or bf16-mixed on this device")
    return name


def autocast(precision: str, device: torch.device) -> Callable[[], AbstractContextManager]:
    """A factory of the context the networks' forward passes run in."""
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    if precision == "bf16-mixed":
        return functools.partial(torch.autocast, device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext
