"""Multirun support: per-job thread shares, failure records, and the end-of-sweep report."""

from __future__ import annotations

import json
import logging
import os
import traceback
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def threads_per_job(hydra_cfg: DictConfig) -> int | None:
    """Parallel jobs on one machine share its cores instead of each taking all of them."""
    n_jobs = OmegaConf.select(hydra_cfg, "launcher.n_jobs")
    if not n_jobs:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    jobs = cores if n_jobs < 0 else min(n_jobs, cores)
    return max(1, cores // jobs)


def record_failure(run_dir: Path, cfg: DictConfig, error: BaseException) -> None:
    """A failed job still leaves a summary.json, so sweeps and comparisons can report it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "error.txt").write_text("".join(traceback.format_exception(error)))
    summary = {
        "status": "failed", "verdict": "failed",
        "error": f"{type(error).__name__}: {error}",
        "model": OmegaConf.select(cfg, "model.arch"), "loss": OmegaConf.select(cfg, "loss.name"),
        "data": OmegaConf.select(cfg, "data.name"),
        "hacks": sorted(OmegaConf.select(cfg, "hacks") or []), "seed": cfg.get("seed"),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One entry per job directory of a sweep: its overrides and summary (or 'missing')."""
    jobs = []
    for overrides_file in sorted(Path(sweep_dir).glob("*/.hydra/overrides.yaml")):
        job_dir = overrides_file.parent.parent
        summary_file = job_dir / "summary.json"
        summary = json.loads(summary_file.read_text()) if summary_file.is_file() else \
            {"status": "missing", "verdict": "missing"}
        jobs.append({"dir": job_dir, "overrides": list(OmegaConf.load(overrides_file)),
                     **summary})
    return sorted(jobs, key=lambda j: (len(j["dir"].name), j["dir"].name))


class SweepReport(Callback):
    """At the end of a multirun, list every job with its status and verdict."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = collect(sweep_dir)
        lines = [f"| job | overrides | status | verdict |", "|---|---|---|---|"]
        for job in jobs:
            detail = job.get("error") or job.get("verdict_evidence", {}).get("reason", "")
            lines.append(f"| {job['dir'].name} | {' '.join(job['overrides'])} | {job['status']} "
                         f"| {job['verdict']}: {detail} |")
        (sweep_dir / "sweep_report.md").write_text("\n".join(lines) + "\n")
        bad = [j for j in jobs if j["status"] in ("failed", "missing", "diverged")]
        log.info("Sweep %s: %d jobs, %d finished, %d diverged, %d failed (report: %s)", sweep_dir,
                 len(jobs), sum(j["status"] == "finished" for j in jobs),
                 sum(j["status"] == "diverged" for j in jobs),
                 sum(j["status"] in ("failed", "missing") for j in jobs),
                 sweep_dir / "sweep_report.md")
        for job in bad:
            log.warning("  job %s (%s): %s", job["dir"].name, " ".join(job["overrides"]),
                        job.get("error") or job["status"])
