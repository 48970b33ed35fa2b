"""Checkpoints that resume a run exactly and load safely.

A checkpoint holds the models, the optimisers, every RNG state, the step, the fixed latents of the
sample grid and the resolved config, all as tensors and plain Python types, so it loads with
`torch.load(weights_only=True)`: a checkpoint from elsewhere that holds anything else (a pickle
that could run code) is refused with one line, never unpickled. Files are written atomically;
`trainer.resume=auto` falls back from a corrupt `last.pt` to the newest readable epoch checkpoint.
"""

from __future__ import annotations

import logging
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gancompare.errors import ConfigError

log = logging.getLogger(__name__)

LAST = "last.pt"


class CorruptCheckpoint(Exception):
    """A file that is not a readable checkpoint (truncated, overwritten, not a torch file)."""


def rng_state() -> dict[str, Any]:
    """Every RNG a run draws from, as tensors and plain types."""
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy = state["numpy"]
    np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))
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


def load(path: Path, device: torch.device | str = "cpu", key: str = "checkpoint") -> dict:
    """A checkpoint's state, loaded with weights_only=True. One that holds objects other than
    tensors and plain types is refused (ConfigError naming `key`); an unreadable file raises
    CorruptCheckpoint."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:
        if "global" in str(error).lower():  # it names a class or function to import and call
            raise ConfigError(
                key, f"{path} holds objects other than tensors and plain types, and loading them "
                "could run code; it was not loaded", "use a checkpoint written by src/train.py "
                "(re-save others with tensors and plain types only)") from None
        raise CorruptCheckpoint(f"{path}: not a torch checkpoint (unpickling failed)") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as error:
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise CorruptCheckpoint(f"{path}: {reason}") from None


def save_epoch(directory: Path, epoch: int, state: dict[str, Any], keep: int) -> Path:
    """checkpoints/epoch_NNN.pt plus last.pt; only the newest `keep` epoch files stay (0 keeps
    them all)."""
    directory = Path(directory)
    path = directory / f"epoch_{epoch:03d}.pt"
    save(path, state)
    save(directory / LAST, state)  # a copy, not a link: damage to one leaves the other readable
    if keep > 0:
        for old in sorted(directory.glob("epoch_*.pt"))[:-keep]:
            old.unlink()
    return path


def resume_state(setting: Any, run_dir: Path,
                 device: torch.device) -> tuple[dict[str, Any], Path] | None:
    """The state to resume from for `trainer.resume`: false/never (none), auto (this run's
    last.pt, else the newest readable epoch checkpoint, with a warning), or a path."""
    if setting in (False, None, "false", "never"):
        return None
    if setting not in (True, "auto"):
        path = Path(str(setting))
        if not path.is_file():
            raise ConfigError("trainer.resume", f"no checkpoint at {path}",
                              "give a checkpoints/*.pt path, or auto to resume this run directory")
        try:
            return load(path, device, key="trainer.resume"), path
        except CorruptCheckpoint as error:
            raise ConfigError("trainer.resume", f"{error} (not a readable checkpoint)",
                              "give another checkpoints/*.pt, or trainer.resume=false") from None
    directory = Path(run_dir) / "checkpoints"
    candidates = [directory / LAST] + sorted(directory.glob("epoch_*.pt"), reverse=True)
    candidates = [p for p in candidates if p.is_file()]
    unreadable = []
    for path in candidates:
        try:
            state = load(path, device, key="trainer.resume")
        except CorruptCheckpoint as error:
            unreadable.append(str(error))
            continue
        if unreadable:
            log.warning("Unreadable checkpoint(s) skipped (%s); resuming from %s",
                        "; ".join(unreadable), path)
        return state, path
    if unreadable:
        raise ConfigError("trainer.resume", f"no readable checkpoint in {directory} "
                          f"({'; '.join(unreadable)})", "set trainer.resume=false to start over, "
                          "or give a checkpoint path")
    return None
