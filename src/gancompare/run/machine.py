"""The machine a run trained on, as its summary records it, and the line a report gives."""

from __future__ import annotations

import contextlib
import os
import platform
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def machine() -> str:
    """This machine: CPU model, cores this process may use, GPU."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in
                   Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import torch

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {cores} cores, {gpu}"


def runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def machines(summaries: Iterable[Mapping[str, Any]]) -> str:
    """Where runs trained, from their summaries (a report is often written elsewhere): one
    machine, or each with its count of runs; runs from before summaries recorded it are
    counted as such."""
    counts = Counter(s.get("machine", "") for s in summaries)
    unrecorded = counts.pop("", 0)
    parts = ([next(iter(counts))] if len(counts) == 1 and not unrecorded else
             [f"{name} ({runs(n)})" for name, n in counts.most_common()])
    if unrecorded:
        parts.append(f"a machine not recorded ({runs(unrecorded)}, trained before summaries "
                     "recorded it)")
    return "; ".join(parts) or "no run"
