"""Re-evaluation of a finished run (`src/evaluate.py`): every metric recomputed from a checkpoint
through the evaluator and verdict rules the training loop uses; summary.json and the run's W&B
run are updated. The checkpoint loads with weights_only=True, so a shared run directory cannot
run code here."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from gancompare import PROJECT_ROOT, checkpoint
from gancompare.build import build
from gancompare.errors import ConfigError
from gancompare.run_dir import columns, flat_summary, read_rows, write_summary
from gancompare.tracking import WandbRun
from gancompare.verdict import judge


def evaluate_run(run_dir: Path, checkpoint_path: Path | None = None, samples: int | None = None,
                 device: str | None = None) -> dict[str, Any]:
    """Recompute a run's metrics and verdict from a checkpoint (default: checkpoints/last.pt)."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise ConfigError("run_dir", f"{run_dir} holds no config.yaml",
                          "pass a run directory written by src/train.py")
    cfg = OmegaConf.load(config_path)
    if not Path(cfg.paths.data).is_dir():  # a run directory from another machine
        cfg.paths.data = str(PROJECT_ROOT / "data")
    checkpoint_path = Path(checkpoint_path or run_dir / "checkpoints" / checkpoint.LAST)
    if not checkpoint_path.is_file():
        raise ConfigError("--checkpoint", f"no checkpoint at {checkpoint_path}",
                          "pass one of the run's checkpoints/*.pt")
    built = build(cfg, device)
    try:
        state = checkpoint.load(checkpoint_path, built.device, key="--checkpoint")
    except checkpoint.CorruptCheckpoint as error:
        raise ConfigError("--checkpoint", f"{error} (not a readable checkpoint)",
                          "pass another of the run's checkpoints/*.pt") from None
    built.gan.load_state_dict(state)
    started = time.perf_counter()
    figures = built.evaluator.evaluate(built.gan.sample, samples or cfg.eval.final_samples)
    figures["eval_seconds"] = time.perf_counter() - started

    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    divergence = None
    if summary.get("status") == "diverged":  # keep the verdict: the checkpoint predates the NaN
        evidence = summary["verdict_evidence"]
        divergence = {"step": evidence["step"], "columns": evidence["values"]["columns"]}
    verdict = judge(columns(read_rows(run_dir / "metrics.csv")), figures,
                    critic=not built.gan.objective.has_accuracy, divergence=divergence,
                    rules=built.cfg.verdict, known=built.evaluator.known)
    summary.update({"eval": figures, "verdict": verdict["verdict"], "verdict_evidence": verdict,
                    "evaluated_checkpoint": str(checkpoint_path),
                    "evaluated_step": int(state["step"])})
    write_summary(run_dir, summary)
    wandb = WandbRun({**cfg.logger.wandb}, run_dir, OmegaConf.to_container(cfg),
                     cfg.logger.wandb.get("name") or run_dir.name, cfg.logger.wandb.get("group"))
    wandb.summary(flat_summary(summary))
    wandb.finish()
    return summary
