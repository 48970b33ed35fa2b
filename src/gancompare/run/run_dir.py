"""Everything one run writes into its directory: config.yaml, metrics.csv (and W&B), sample
grids, curves.png, checkpoints and summary.json.

The training loop hands it tensors each step (`append`); `flush` turns many steps of them into
rows with one host sync and writes them. metrics.csv is the source of truth; W&B gets the same
rows, best effort (tracking.py).
"""

from __future__ import annotations

import csv
import errno
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from gancompare.data.mixtures import GaussianMixture
from gancompare.errors import ConfigError
from gancompare.run import checkpoint, plots
from gancompare.run.tracking import MetricsCsv, WandbRun

LOSS_COLUMNS = ("d_loss_real", "d_loss_fake", "g_loss")


def read_rows(path: Path) -> list[dict[str, float]]:
    """metrics.csv as rows of floats, empty cells left out."""
    return [{k: float(v) for k, v in row.items() if v not in ("", None)}
            for row in MetricsCsv.read(path)] if Path(path).is_file() else []


def read_curves(run_dir: Path, steps: int | None) -> tuple[list[dict[str, float]], str | None]:
    """A finished run's metrics.csv for re-judging it, and what is wrong with the file, if
    anything: missing, empty, cut mid-row (the torn row is dropped) or short of the `steps` the
    summary says were trained. Unreadable values count as a cut."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file() or path.stat().st_size == 0:
        return [], f"{path} is {'missing' if not path.is_file() else 'empty'}"
    try:
        raw = MetricsCsv.read(path)
    except (csv.Error, UnicodeDecodeError) as error:
        return [], f"{path} cannot be read ({error})"
    torn = not path.read_bytes().endswith(b"\n")
    if torn:  # the last row was being written: even its parsed values may be cut short
        raw = raw[:-1]
    rows = []
    for row in raw:
        try:
            if None in row or None in row.values():
                raise ValueError("fields missing")
            rows.append({k: float(v) for k, v in row.items() if v != ""})
        except ValueError:
            torn = True
    problem = None
    if not rows:
        problem = f"{path} holds no rows"
    elif torn:
        problem = f"{path} is cut mid-row after step {int(rows[-1]['step'])}"
    elif steps and int(rows[-1]["step"]) < steps:
        problem = f"{path} ends at step {int(rows[-1]['step'])} of {steps}"
    return rows, problem


def columns(rows: list[dict[str, float]]) -> dict[str, np.ndarray]:
    """Rows -> one array per column; NaN where a row has no value (epoch-end metrics)."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return {k: np.array([row.get(k, np.nan) for row in rows]) for k in keys}


# Write failures that are the machine's, not a bug: one line each (`disk_faults`).
FULL = (errno.ENOSPC, errno.EDQUOT)
REFUSED = (errno.EROFS, errno.EACCES, errno.EPERM)


@contextmanager
def disk_faults(run_dir: Path, key: str = "hydra.run.dir") -> Iterator[None]:
    """A write into the run directory that fails for want of room (or of the right to write)
    ends the run with one line naming where and the fix (ConfigError at `key`); files left half
    written (*.tmp) are removed, and the checkpoints written before stay as they were, so the
    same command resumes once there is room."""
    try:
        yield
    except OSError as error:
        if error.errno not in FULL + REFUSED:
            raise
        run_dir = Path(run_dir)
        for partial in run_dir.rglob("*.tmp"):
            partial.unlink(missing_ok=True)
        where = error.filename or run_dir
        kept = sorted(p.name for p in (run_dir / "checkpoints").glob("*.pt"))
        saved = f"; kept: checkpoints/{', '.join(kept)}" if kept else ""
        if error.errno in FULL:
            free = shutil.disk_usage(run_dir).free / 2**20 if run_dir.exists() else 0.0
            raise ConfigError(key, f"the disk is full writing {where} ({free:.1f} MiB free)"
                              f"{saved}", "free space on that disk (or give the run a "
                              f"directory elsewhere with {key}=...), then run the same command: "
                              "it resumes from the last checkpoint") from None
        raise ConfigError(key, f"{where} cannot be written ({error.strerror}){saved}",
                          f"make {run_dir} writable, or give the run another directory with "
                          f"{key}=...") from None


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    tmp = Path(run_dir) / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2, default=_json_default, allow_nan=True))
    tmp.replace(Path(run_dir) / "summary.json")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


class RunDir:
    def __init__(self, cfg: DictConfig, path: Path, start_step: int, critic: bool,
                 wandb_name: str, wandb_group: str | None) -> None:
        """critic: D's output has no real/fake threshold (curves show scores, not accuracy)."""
        self.cfg, self.path, self.critic = cfg, Path(path), critic
        self.path.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, self.path / "config.yaml", resolve=True)
        # Resuming keeps the rows up to the checkpoint's step; a fresh run starts the file over.
        self.metrics = MetricsCsv(self.path / "metrics.csv",
                                  keep_until_step=start_step if start_step else None)
        self.rows: list[dict[str, float]] = read_rows(self.metrics.path) if start_step else []
        self._pending: list[tuple[int, int, dict[str, Tensor]]] = []
        self._attached: dict[int, dict[str, float]] = {}
        self._rows_plotted = 0
        self.wandb = WandbRun({**cfg.logger.wandb}, self.path,
                              OmegaConf.to_container(cfg, resolve=True), wandb_name, wandb_group)

    @property
    def history(self) -> dict[str, np.ndarray]:
        return columns(self.rows)

    def append(self, step: int, epoch: int, figures: dict[str, Tensor]) -> None:
        """One step's figures, left on the device until the next flush."""
        self._pending.append((step, epoch, figures))

    def attach(self, step: int, figures: dict[str, float]) -> None:
        """Figures computed on the host for a pending step (the epoch-end evaluation)."""
        self._attached.setdefault(step, {}).update(figures)

    def flush(self) -> list[dict[str, Any]]:
        """The pending steps as rows, with one host sync, written to metrics.csv and W&B."""
        if not self._pending:
            return []
        keys = list(self._pending[0][2])
        values = torch.stack([torch.stack([f[k].double() for k in keys])  # float64: exact
                              for _, _, f in self._pending]).cpu()
        rows = [{"step": step, "epoch": epoch, **dict(zip(keys, row.tolist(), strict=True)),
                 **self._attached.pop(step, {})}
                for (step, epoch, _), row in zip(self._pending, values, strict=True)]
        self._pending = []
        self.metrics.write(rows)
        self.wandb.log(rows)
        self.rows += [{k: float(v) for k, v in row.items()} for row in rows]
        return rows

    def save_samples(self, samples: Tensor, epoch: int, step: int,
                     mixture: GaussianMixture | None) -> None:
        """The epoch's grid of the fixed latents (a scatter over the true modes for 2-D data)."""
        path = self.path / "samples" / f"epoch_{epoch:03d}.png"
        if mixture is None:
            plots.save_sample_grid(samples, path, nrow=self.cfg.trainer.sample_grid)
        else:
            plots.save_scatter(samples.cpu().numpy(), mixture, path,
                               title=f"{self.cfg.loss.name}, epoch {epoch}")
        self.wandb.log_image("samples", path, step, caption=f"epoch {epoch}")

    def save_curves(self) -> None:
        if self.rows and len(self.rows) != self._rows_plotted:
            self._rows_plotted = len(self.rows)
            cfg = self.cfg
            plots.save_curves(self.history, self.path / "curves.png", critic=self.critic,
                              title=f"{cfg.model.name} · {cfg.loss.name} · {cfg.optimizer.name} "
                                    f"· {cfg.data.name} · seed {cfg.seed}")

    def save_checkpoint(self, state: dict[str, Any], epoch: int, epoch_end: bool) -> None:
        """An epoch's checkpoint (plus last.pt), or at an interruption only last.pt."""
        state = {**state, "config": OmegaConf.to_container(self.cfg, resolve=True)}
        directory = self.path / "checkpoints"
        if epoch_end:
            checkpoint.save_epoch(directory, epoch, state, keep=self.cfg.trainer.keep_checkpoints)
        else:
            checkpoint.save(directory / checkpoint.LAST, state)

    def finish(self, summary: dict[str, Any], exit_code: int = 0) -> None:
        write_summary(self.path, summary)
        self.wandb.summary(flat_summary(summary))
        self.wandb.finish(exit_code)


def flat_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """summary.json for W&B's summary: final figures under final/ and eval/."""
    flat = {k: v for k, v in summary.items() if not isinstance(v, dict)}
    flat.update({f"final/{k}": v for k, v in summary.get("final_training", {}).items()})
    flat.update({f"eval/{k}": v for k, v in summary.get("eval", {}).items()})
    flat["verdict_reason"] = summary["verdict_evidence"]["reason"]
    flat["verdict_evidence"] = summary["verdict_evidence"]  # nested: rule, step, values
    return flat


def training_summary(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean of every per-step figure over the last 10 % of steps."""
    history = columns(rows)
    tail = max(1, len(rows) // 10)
    return {k: float(np.mean(v[-tail:])) for k, v in history.items()
            if k not in ("step", "epoch") and not k.startswith("epoch/")}
