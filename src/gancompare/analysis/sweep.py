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

from gancompare.errors import ConfigError
from gancompare.saved import read_yaml

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
        "model": OmegaConf.select(cfg, "model.name"), "loss": OmegaConf.select(cfg, "loss.name"),
        "optimizer": OmegaConf.select(cfg, "optimizer.name"),
        "data": OmegaConf.select(cfg, "data.name"),
        "hacks": sorted(OmegaConf.select(cfg, "hacks") or []), "seed": cfg.get("seed"),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    for seed_dir in sorted(run_dir.glob("seed*/.hydra")):  # trainer.seeds: each seed's run
        if not (seed_dir.parent / "summary.json").is_file():
            (seed_dir.parent / "summary.json").write_text(json.dumps(
                {**summary, "seed": int(seed_dir.parent.name.removeprefix("seed"))}, indent=2))


def read_job(summary_file: Path) -> dict[str, Any] | None:
    """A job's summary.json, {'status': 'missing'} when it has none, or None (said in a warning
    naming the file) when it cannot be read: cut mid-write, say. One damaged job does not stop
    a report of the others."""
    if not summary_file.is_file():
        return {"status": "missing", "verdict": "missing"}
    try:
        summary = json.loads(summary_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        summary = None
    if not isinstance(summary, dict):
        log.warning("%s is not a readable summary (cut mid-write?); that run is left out: "
                    "restore it from the results archive, or run "
                    "src/evaluate.py %s after deleting it", summary_file, summary_file.parent)
        return None
    return summary


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One entry per job directory of a sweep (`<job>`, or `<study>/trial<k>` in a search):
    its overrides and summary (or 'missing')."""
    jobs = []
    job_files = sorted(Path(sweep_dir).glob("*/.hydra/overrides.yaml")) + sorted(
        Path(sweep_dir).glob("*/trial*/.hydra/overrides.yaml"))
    for job_file in job_files:
        # a trainer.seeds job is one run per seed, each in <job>/seed<s>
        seed_files = sorted(job_file.parent.parent.glob("seed*/.hydra/overrides.yaml"))
        for overrides_file in seed_files or [job_file]:
            job_dir = overrides_file.parent.parent
            summary = read_job(job_dir / "summary.json")
            try:
                overrides = list(read_yaml(overrides_file))
            except ConfigError as error:
                log.warning("%s; that job is left out", error)
                continue
            if summary is not None:
                jobs.append({"dir": job_dir, "overrides": overrides, **summary})
    return sorted(jobs, key=lambda j: (len(j["dir"].name), j["dir"].name))


SWEPT_KEYS_FILE = "swept_keys.json"


def swept_keys(hydra_cfg: DictConfig) -> list[str]:
    """The keys a multirun varies: sweep overrides of the command line (`loss=a,b`) and the
    `hydra.sweeper.params` of a sweep config."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    keys = [o.key_or_group for o in OverridesParser.create().parse_overrides(
        list(hydra_cfg.overrides.task)) if o.is_sweep_override()]
    keys += list(OmegaConf.select(hydra_cfg, "sweeper.params") or {})
    return list(dict.fromkeys(keys))


def write_seed_overrides(run_dir: Path, overrides: list[str], seeds: list[int]) -> None:
    """<run dir>/seed<s>/.hydra/overrides.yaml for a `trainer.seeds` run: the overrides of that
    seed's run alone, so sweeps and comparisons list each seed as a job."""
    own = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in ("trainer.seeds",
                                                                            "seed")]
    for seed in seeds:
        path = Path(run_dir) / f"seed{seed}" / ".hydra" / "overrides.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create([*own, f"seed={seed}"]), path)


def job_name(hydra_cfg: DictConfig, multirun: bool) -> str:
    """A run's W&B name: the overrides the sweep varies for this job (`loss=lsgan,seed=1`),
    or all overrides of a single run."""
    overrides = list(hydra_cfg.overrides.task)
    swept_file = Path(hydra_cfg.sweep.dir) / SWEPT_KEYS_FILE
    if multirun and swept_file.is_file():
        swept = set(json.loads(swept_file.read_text()))
        overrides = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in swept]
    return ",".join(overrides) or "baseline"


class SweepReport(Callback):
    """Records what a multirun sweeps (for the jobs' names), and at its end lists every job
    with its status and verdict."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / SWEPT_KEYS_FILE).write_text(json.dumps(swept_keys(config.hydra)))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = collect(sweep_dir)
        lines = ["| job | overrides | status | verdict |", "|---|---|---|---|"]
        for job in jobs:
            detail = job.get("error") or job.get("verdict_evidence", {}).get("reason", "")
            lines.append(f"| {job['dir'].relative_to(sweep_dir)} | {' '.join(job['overrides'])} "
                         f"| {job['status']} "
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
