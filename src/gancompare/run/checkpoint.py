"""Checkpoints that resume a run exactly and load safely.

A checkpoint holds the models, the optimisers, every RNG state, the step, the fixed latents of the
sample grid and the resolved config, all as tensors and plain Python types, so it loads with
`torch.load(weights_only=True)`: a checkpoint from elsewhere that holds anything else (a pickle
that could run code) is refused with one line, never unpickled. Files are written atomically;
`trainer.resume=auto` falls back from a corrupt `last.pt` to the newest readable epoch checkpoint.
"""

from __future__ import annotations

import errno
import logging
import os
import pickle
import random
import shutil
from collections.abc import Iterator
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
    try:
        with open(tmp, "wb") as file:  # closed even when the write fails: the space comes back
            torch.save(state, file)
    except RuntimeError as error:  # torch's writer says "unexpected pos", not "disk full"
        tmp.unlink(missing_ok=True)
        needed = sum(t.nbytes for t in _tensors(state))
        if shutil.disk_usage(path.parent).free < needed:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp)) from None
        raise OSError(errno.EIO, f"torch.save failed ({str(error).splitlines()[0]})",
                      str(tmp)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)


def _tensors(node: Any) -> Iterator[torch.Tensor]:
    if isinstance(node, torch.Tensor):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _tensors(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from _tensors(value)


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
    except Exception as error:  # noqa: BLE001
        # Arbitrary bytes make the weights-only unpickler fail in many ways (IndexError, KeyError,
        # UnicodeDecodeError, a zip error, EOF...): each means the same, not a checkpoint.
        reason = (str(error).splitlines() or [""])[0].strip() or type(error).__name__
        raise CorruptCheckpoint(f"{path}: not a torch checkpoint ({reason})") from None


CHECKPOINT_KEYS = ("step", "generator", "discriminator", "g_optimizer", "d_optimizer", "rng",
                   "fixed_z")


def load_checkpoint(path: Path, device: torch.device | str = "cpu",
                    key: str = "checkpoint") -> dict[str, Any]:
    """`load`, and the file must be a checkpoint of src/train.py: a torch file of something else
    (a bare state dict, a tensor) raises CorruptCheckpoint instead of a KeyError later."""
    state = load(path, device, key)
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise CorruptCheckpoint(f"{path}: a torch file, but not a checkpoint of src/train.py "
                                f"(it lacks {', '.join(missing)})")
    return state


def restore(target: Any, state: dict[str, Any], path: Path, key: str) -> None:
    """target.load_state_dict(state); a checkpoint of other networks (another model, latent size
    or normalisation) is one line naming `key`, not a size-mismatch traceback."""
    try:
        target.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as error:
        reason = next((line.strip() for line in str(error).splitlines()
                       if "size mismatch" in line or "Missing key" in line), None)
        reason = reason or (str(error).splitlines() or [type(error).__name__])[0]
        raise ConfigError(key, f"{path} was written by a run with other networks or optimisers "
                          f"({reason.rstrip('.')})", "use it with the config that wrote it (its "
                          "run directory's config.yaml), or give another checkpoint") from None


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
            return load_checkpoint(path, device, key="trainer.resume"), path
        except CorruptCheckpoint as error:
            raise ConfigError("trainer.resume", str(error),
                              "give another checkpoints/*.pt, or trainer.resume=false") from None
    directory = Path(run_dir) / "checkpoints"
    candidates = [directory / LAST] + sorted(directory.glob("epoch_*.pt"), reverse=True)
    candidates = [p for p in candidates if p.is_file()]
    unreadable = []
    for path in candidates:
        try:
            state = load_checkpoint(path, device, key="trainer.resume")
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
