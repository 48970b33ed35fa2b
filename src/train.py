"""Train a GAN: `python src/train.py [group=option ...] [key=value ...]`, `-m` for a sweep.

Composes conf/train.yaml (the stable baseline) with the overrides, trains into the Hydra run
directory (gancompare/training.py is the loop) and writes the verdict. Bad input ends with one
line that names the key and the fix. In a multirun, a job that fails or diverges is recorded in
its run directory and the sweep goes on; the sweep's report lists it. Ctrl-C or SIGTERM saves a
checkpoint of the current step and exits with 128 + the signal's number; the same command with
the same run directory resumes it.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import gancompare  # noqa: F401  (sets PROJECT_ROOT and registers the config schema)
from gancompare.analysis.sweep import (
    job_name,
    record_failure,
    threads_per_job,
    write_seed_overrides,
)
from gancompare.cli import check_composition, check_group_choices
from gancompare.errors import ConfigError

log = logging.getLogger("train")
CONF = Path(__file__).resolve().parents[1] / "conf"


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> dict | None:
    # torch, the metrics and W&B load here, after Hydra has handled --help, --cfg and bad options.
    from gancompare.config import check_seeds, set_threads
    from gancompare.training import train, train_seeds

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    set_threads(cfg.trainer.threads or threads_per_job(hydra_cfg))
    name = job_name(hydra_cfg, multirun)
    group = Path(hydra_cfg.sweep.dir).name if multirun else None
    try:
        if cfg.trainer.seeds is not None:  # one run per seed, in run_dir/seed<s>
            write_seed_overrides(run_dir, list(hydra_cfg.overrides.task),
                                 check_seeds(cfg.trainer.seeds))
            summaries = train_seeds(cfg, run_dir, wandb_name=name, wandb_group=group)
            summary = next((s for s in summaries if s["status"] == "interrupted"), summaries[0])
        else:
            summary = train(cfg, run_dir, wandb_name=name, wandb_group=group)
    except ConfigError as error:
        if multirun:
            record_failure(run_dir, cfg, error)
            log.error("Job %s refused: %s", name, error)
            return None
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except Exception as error:
        if not multirun:
            raise
        record_failure(run_dir, cfg, error)
        log.exception("Job %s failed; the sweep goes on", name)
        return None
    if summary["status"] == "interrupted":  # stop a sweep too, as the signal asked
        import signal

        sys.exit(128 + signal.Signals[summary["signal"]].value)
    return summary  # what a search trial scores (gancompare/search/study.py)


if __name__ == "__main__":
    try:
        check_group_choices(sys.argv[1:], CONF)
        if not {"--help", "-h", "--hydra-help", "--info"} & set(sys.argv[1:]):
            check_composition(sys.argv[1:], CONF)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    main()
