"""Where a run's figures go: `metrics.csv` in the run directory (always) and W&B (best effort).

The CSV is the source of truth: nothing depends on W&B being reachable. Every W&B call is guarded,
so a failing W&B becomes one warning and the run goes on without it.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import uuid
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class MetricsCsv:
    """Rows of figures keyed by step; a row may bring new columns (e.g. epoch-end metrics),
    in which case the file is rewritten once with the wider header."""

    def __init__(self, path: Path, keep_until_step: int | None = None) -> None:
        self.path = Path(path)
        self.columns: list[str] = []
        if keep_until_step is not None and self.path.is_file():
            # Resuming: drop rows written after the checkpoint (they are trained again) and a
            # row torn by a kill mid-write (fields missing).
            rows = [r for r in self.read(self.path) if None not in r.values() and None not in r
                    and int(float(r["step"])) <= keep_until_step]
            self.columns = list(rows[0].keys()) if rows else []
            self._rewrite(rows)
        elif self.path.is_file():
            self.path.unlink()

    @staticmethod
    def read(path: Path) -> list[dict[str, str]]:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))

    def write(self, rows: Iterable[Mapping[str, Any]]) -> None:
        rows = [{k: _format(v) for k, v in row.items()} for row in rows]
        new = [k for row in rows for k in row if k not in self.columns]
        if new:
            self.columns += list(dict.fromkeys(new))
            old = self.read(self.path) if self.path.is_file() else []
            self._rewrite(old)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.columns).writerows(rows)

    def _rewrite(self, rows: list[Mapping[str, str]]) -> None:
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, self.columns)
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(self.path)


def _format(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return value


REACH_TIMEOUT_S = 3.0


def server_url() -> str:
    return os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")


def server_reachable(timeout: float = REACH_TIMEOUT_S) -> bool:
    """Whether W&B's server accepts a connection within `timeout` seconds (name look-up
    included, which can hang on its own without a network: it runs in a thread)."""
    import socket
    import threading
    from urllib.parse import urlparse

    url = urlparse(server_url())
    port = url.port or (443 if url.scheme == "https" else 80)
    answered: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((url.hostname or "", port), timeout=timeout).close()
            answered.append(True)
        except OSError:
            answered.append(False)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answered and answered[0])


class WandbRun:
    """One W&B run per job. Offline unless `logger.wandb.mode` (default: $WANDB_MODE, else
    offline) says otherwise; files go to <run dir>/wandb. Resumes the same W&B run when a job is
    resumed (the id is kept in <run dir>/wandb_id)."""

    def __init__(self, settings: Mapping[str, Any], run_dir: Path, config: dict, name: str,
                 group: str | None) -> None:
        self.run = None
        mode = settings.get("mode", "offline")
        if mode == "disabled":
            return
        self.run_dir = Path(run_dir)
        id_file = self.run_dir / "wandb_id"
        try:
            run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:8]
            id_file.write_text(run_id)
            init = dict(project=settings.get("project"), entity=settings.get("entity"),
                        group=group, name=name, job_type=settings.get("job_type"),
                        tags=list(settings.get("tags") or []), config=config, id=run_id)
            if mode == "online" and not server_reachable():
                # wandb.init would retry for ~90 s, then leave files `wandb sync` cannot use
                raise ConnectionError(f"no answer from {server_url()} within "
                                      f"{REACH_TIMEOUT_S:.0f} s")
            self.run = self._init(init, mode)
        except Exception as error:  # W&B must never break a run
            if mode != "online":
                self._disable(error)
                return
            # No server: keep the run's files offline, for `wandb sync` once it is reachable.
            warnings.warn(f"W&B could not start online ({type(error).__name__}: {error}); this "
                          f"run logs offline: upload it later with `wandb sync "
                          f"{self.run_dir / 'wandb'}/offline-run-*`", stacklevel=2)
            log.warning("W&B online failed, logging offline: %s", error)
            try:
                import wandb

                wandb.teardown()  # a half-started online run would hold the run id
                self.run = self._init(init, "offline")
            except Exception as offline_error:
                self._disable(offline_error)

    def _init(self, init: dict[str, Any], mode: str):
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        return wandb.init(**init, dir=str(self.run_dir), mode=mode, resume="allow",
                          # every run is finished explicitly; trainer.seeds keeps K open at once
                          reinit="create_new",
                          settings=wandb.Settings(console="off", x_disable_stats=True))

    @property
    def active(self) -> bool:
        return self.run is not None

    def log(self, rows: Iterable[Mapping[str, Any]]) -> None:
        if self.run is None:
            return
        try:
            for row in rows:
                figures = {k: v for k, v in row.items() if k != "step"}
                self.run.log(figures, step=int(row["step"]))
        except Exception as error:
            self._disable(error)

    def log_image(self, key: str, path: Path, step: int, caption: str = "") -> None:
        if self.run is None:
            return
        try:
            import wandb

            self.run.log({key: wandb.Image(str(path), caption=caption)}, step=step)
        except Exception as error:
            self._disable(error)

    def summary(self, figures: Mapping[str, Any]) -> None:
        if self.run is None:
            return
        try:
            self.run.summary.update(dict(figures))
        except Exception as error:
            self._disable(error)

    def finish(self, exit_code: int = 0) -> None:
        if self.run is None:
            return
        try:
            self.run.finish(exit_code=exit_code)
        except Exception as error:
            self._disable(error)
        self.run = None

    def _disable(self, error: Exception) -> None:
        warnings.warn(f"W&B disabled for this run ({type(error).__name__}: {error}); training "
                      "goes on, every figure is still in the run directory, and W&B's files "
                      "written so far stay in its wandb/ folder", stacklevel=3)
        log.warning("W&B disabled: %s", error)
        run, self.run = self.run, None
        if run is not None:
            with contextlib.suppress(Exception):
                run.finish(exit_code=1)
