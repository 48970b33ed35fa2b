"""Checkpoints that resume a run exactly: models, optimisers, every RNG, step and fixed latents."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: Path, state: dict[str, Any]) -> None:
    """Write atomically: a crash mid-write never leaves a half checkpoint behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    # weights_only=False: the state holds RNG states and the config, written by this project.
    return torch.load(path, map_location=device, weights_only=False)


def save_epoch(directory: Path, epoch: int, state: dict[str, Any], keep: int) -> Path:
    """checkpoints/epoch_NNN.pt plus last.pt (a hard link where the file system allows);
    only the newest `keep` epoch files stay (0 keeps them all)."""
    directory = Path(directory)
    path = directory / f"epoch_{epoch:03d}.pt"
    save(path, state)
    last_tmp = directory / "last.pt.tmp"
    last_tmp.unlink(missing_ok=True)
    try:
        last_tmp.hardlink_to(path)
    except OSError:
        torch.save(state, last_tmp)
    last_tmp.replace(directory / "last.pt")
    if keep > 0:
        for old in sorted(directory.glob("epoch_*.pt"))[:-keep]:
            old.unlink()
    return path
