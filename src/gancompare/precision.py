"""`trainer.precision` and the kernel settings that go with it.

- `32`: float32 everywhere (the reference; resume is bit-exact).
- `bf16-mixed`: the networks' forward passes under `torch.autocast(dtype=bfloat16)` on CPU or
  CUDA; weights, optimiser state, losses and the gradient penalty stay float32 (D's outputs are
  cast to float32 before any loss).
- `tf32`: float32 storage with TensorFloat-32 matrix units on CUDA (Ampere and newer).
- `64`: float64 everywhere (torch's default dtype for the run): the reference for exactness
  checks, where two computations that sum in another order agree to ~1e-15 instead of ~1e-7, so
  a test can compare them tightly on any CPU (tests/test_seeds.py). Slower; not for studies.
- `auto` (the default): bf16-mixed where bf16 is native (CUDA with bf16; CPUs with AVX-512 BF16
  or AMX), else 32 (a CPU without them emulates bf16: 37x slower, EMULATED_BF16); always 32
  for the 2-D mixtures (`data.source=mixture`): bf16 keeps 8 significant bits, so G's points
  fall on a grid 0.008 apart near |x| = 1 and 0.03 apart near |x| = 4, as coarse as the modes'
  std (0.01 for ring8, 0.05 for grid25), and D sees real points rounded as coarsely. The
  evidence for images (`scripts/precision_check.py`, README): the four failure scenarios at
  seeds 0, 1, 2 get the same verdicts in bf16-mixed as in fp32, and the stable baseline's FID
  and coverage stay within fp32's seed-to-seed spread.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import torch
from torch import Tensor

from gancompare.errors import ConfigError

log = logging.getLogger(__name__)

PRECISIONS = ("32", "bf16-mixed", "tf32", "64", "auto")
# The vector extensions that decide the CPU kernels' speed (and bf16's), as /proc/cpuinfo names.
VECTOR_EXTENSIONS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile",
                     "amx_bf16")
# Measured (scripts/bench_train.py --setups baseline --precisions 32 bf16-mixed) on an AMD EPYC
# with AVX2 only: bf16 has no native kernels there and is emulated.
EMULATED_BF16 = ("the baseline step took 24.8 s in bf16-mixed against 0.67 s in fp32 (37x "
                 "slower) on an AVX2-only EPYC")
_warned: set[str] = set()


def cpu_flags() -> set[str]:
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.is_file() else ""
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.is_file() else ""
    line = next((line for line in text.splitlines() if line.startswith("model name")), "")
    return line.partition(":")[2].strip() or "unknown CPU"


def vector_extensions() -> list[str]:
    """This CPU's extensions among VECTOR_EXTENSIONS (what a timing depends on)."""
    flags = cpu_flags()
    return [f for f in VECTOR_EXTENSIONS if f in flags]


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def warn_once(key: str, message: str, *args: object) -> None:
    """A warning per process, not per run (trainer.seeds builds a run per seed)."""
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args)


def full_precision(x: Tensor) -> Tensor:
    """x in the run's full precision: float32 from an autocast's bf16 or fp16, else as it is
    (float32, or float64 under trainer.precision=64)."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


def set_default_dtype(precision: str) -> None:
    """Tensors a run creates (weights, latents, labels, data in model space) are float64 under
    `64`, else float32. Set by every build, so a process that builds a 64 run and then another
    gets float32 back."""
    torch.set_default_dtype(torch.float64 if precision == "64" else torch.float32)


def resolve_precision(name: str, device: torch.device, data_source: str | None = None) -> str:
    """What `trainer.precision` runs as on `device` for data of `data.source`."""
    name = str(name)
    if name not in PRECISIONS:
        raise ConfigError("trainer.precision", f"unknown precision '{name}'",
                          f"choose one of {', '.join(PRECISIONS)}")
    if name == "auto":
        return "bf16-mixed" if native_bf16(device) and data_source != "mixture" else "32"
    if name == "bf16-mixed" and device.type == "cpu" and not native_bf16(device):
        extensions = ", ".join(vector_extensions()) or "none of " + ", ".join(VECTOR_EXTENSIONS)
        warn_once("emulated-bf16", "trainer.precision=bf16-mixed on a CPU without native bf16 "
                  "(no AVX-512 BF16 or AMX; this one has %s): bf16 is emulated and much slower "
                  "than fp32 (%s). Use trainer.precision=auto (fp32 here) or 32", extensions,
                  EMULATED_BF16)
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
