"""Re-evaluation of a finished run (`src/evaluate.py`): every metric recomputed from a checkpoint
through the evaluator and verdict rules the training loop uses; summary.json and the run's W&B
run are updated. The checkpoint loads with weights_only=True, so a shared run directory cannot
run code here."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from gancompare import PROJECT_ROOT
from gancompare.build import Built, build
from gancompare.config import check_eval_samples
from gancompare.errors import ConfigError
from gancompare.evaluation.verdict import judge
from gancompare.run import checkpoint
from gancompare.run.run_dir import columns, flat_summary, read_curves, write_summary
from gancompare.run.tracking import WandbRun
from gancompare.saved import read_saved, read_yaml
from gancompare.schema import VerdictSchema
from gancompare.step.gan import GAN
from gancompare.step.phases import frozen

log = logging.getLogger(__name__)


def load_run(run_dir: Path, checkpoint_path: Path | None = None,
             device: str | None = None) -> tuple[Built, dict[str, Any], Path]:
    """A finished run rebuilt from its config.yaml with a checkpoint's weights (default:
    checkpoints/last.pt): the built run, the checkpoint's state and its path."""
    run_dir = Path(run_dir)
    cfg = read_saved(run_dir / "config.yaml")  # data: only the project's units are built
    checkpoint_path = Path(checkpoint_path or run_dir / "checkpoints" / checkpoint.LAST)
    if not checkpoint_path.is_file():
        raise ConfigError("--checkpoint", f"no checkpoint at {checkpoint_path}",
                          "pass one of the run's checkpoints/*.pt")
    built = build(cfg, device)
    try:
        state = checkpoint.load_checkpoint(checkpoint_path, built.device, key="--checkpoint")
    except checkpoint.CorruptCheckpoint as error:
        raise ConfigError("--checkpoint", str(error),
                          "pass another of the run's checkpoints/*.pt") from None
    checkpoint.restore(built.gan, state, checkpoint_path, key="--checkpoint")
    return built, state, checkpoint_path


def evaluate_run(run_dir: Path, checkpoint_path: Path | None = None, samples: int | None = None,
                 device: str | None = None) -> dict[str, Any]:
    """Recompute a run's metrics and verdict from a checkpoint (default: checkpoints/last.pt)."""
    run_dir = Path(run_dir)
    summary = read_summary(run_dir, missing_ok=True)
    if samples is not None:  # refused before anything is built
        if samples <= 0:
            raise ConfigError("--samples", f"{samples} is not a positive number of samples",
                              "give e.g. --samples 10000, or leave it out for the run's own")
        check_eval_samples(samples, read_saved(run_dir / "config.yaml"), "--samples")
    built, state, checkpoint_path = load_run(run_dir, checkpoint_path, device)
    cfg = built.cfg
    started = time.perf_counter()
    figures = built.evaluator.evaluate(built.gan.sample, samples or cfg.eval.final_samples)
    figures["eval_seconds"] = time.perf_counter() - started

    divergence = None
    if summary.get("status") == "diverged":  # keep the verdict: the checkpoint predates the NaN
        evidence = summary["verdict_evidence"]
        divergence = {"step": evidence["step"], "columns": evidence["values"]["columns"]}
    inputs = verdict_inputs(built)
    history, damage = curves(run_dir, summary)
    verdict = judge(history, figures, divergence=divergence, rules=built.cfg.verdict, **inputs)
    verdict.update({"curves_damage": damage} if damage else {})
    summary.update({"eval": figures, "verdict": verdict["verdict"], "verdict_evidence": verdict,
                    "verdict_inputs": inputs,
                    "evaluated_checkpoint": str(checkpoint_path),
                    "evaluated_step": int(state["step"])})
    write_summary(run_dir, summary)
    wandb = WandbRun({**cfg.logger.wandb}, run_dir, OmegaConf.to_container(cfg),
                     cfg.logger.wandb.get("name") or run_dir.name, cfg.logger.wandb.get("group"))
    wandb.summary(flat_summary(summary))
    wandb.finish()
    return summary


def read_summary(run_dir: Path, missing_ok: bool = False) -> dict[str, Any]:
    """A run's summary.json; one cut mid-write (or not JSON) is one line naming it."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        if missing_ok:
            return {}
        raise ConfigError("run_dir", f"{run_dir} holds no summary.json",
                          "pass a finished run directory written by src/train.py")
    try:
        summary = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        summary = error
    if not isinstance(summary, dict):
        raise ConfigError("run_dir", f"{path} is not a readable summary (cut mid-write?)",
                          "restore it from the results archive, or delete it and run "
                          f"src/evaluate.py {run_dir} to write it anew")
    return summary


def curves(run_dir: Path, summary: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The run's curves for its verdict, and what is wrong with its metrics.csv: said in one
    warning line; the verdict judges what is left and its evidence names the damage."""
    rows, problem = read_curves(run_dir, summary.get("steps"))
    if problem:
        log.warning("%s: the verdict is judged from %s; restore the file from the results "
                    "archive (metrics.csv.gz) to judge the whole run", problem,
                    f"the {len(rows)} rows left" if rows else "the final figures alone")
    return columns(rows), problem


def verdict_inputs(built: Built) -> dict[str, Any]:
    """What the verdict rules know of a run besides its curves and figures."""
    return {"critic": not built.gan.objective.has_accuracy, "known": built.evaluator.known}


def current_rules(run_dir: Path) -> DictConfig:
    """The verdict rules of today (conf/verdict/default.yaml) with the run's own `verdict.*`
    overrides of its command line, read as numbers (one that is not is one line naming the
    file)."""
    rules = OmegaConf.merge(OmegaConf.structured(VerdictSchema),
                            OmegaConf.load(PROJECT_ROOT / "conf" / "verdict" / "default.yaml"))
    overrides_file = Path(run_dir) / ".hydra" / "overrides.yaml"
    saved = OmegaConf.to_container(read_yaml(overrides_file)) if overrides_file.is_file() \
        else []
    own = {}
    for override in saved if isinstance(saved, list) else [saved]:
        key, _, value = str(override).partition("=")
        if not key.startswith("verdict."):
            continue
        name = key.removeprefix("verdict.")
        try:
            own[name] = float(value)
        except ValueError:
            own[name] = None
        if name not in rules or own[name] is None:
            raise ConfigError(key, f"{overrides_file} sets {override!r}, not a number for one "
                              "of the verdict's rules", "correct or delete that line of the "
                              "file (the run then gets today's rules)")
    return OmegaConf.merge(rules, own)


def rejudge_run(run_dir: Path, device: str | None = None) -> dict[str, Any]:
    """A finished run's verdict again under today's rules (`current_rules`), from its curves
    and final figures, and what the rules need to know of it (critic or not, the data set's
    modes or classes): its summary's `verdict_inputs`, or for a run trained before those were
    kept, the run rebuilt from its last checkpoint. summary.json is updated, the first verdict
    it replaces kept as `verdict_before`. A diverged or unevaluated run keeps its verdict."""
    run_dir = Path(run_dir)
    summary = read_summary(run_dir)
    if summary.get("status") != "finished" or not summary.get("eval"):
        return summary
    inputs = summary.get("verdict_inputs")
    if inputs is None:
        inputs = verdict_inputs(load_run(run_dir, device=device)[0])
    history, damage = curves(run_dir, summary)
    verdict = judge(history, summary["eval"], divergence=None, rules=current_rules(run_dir),
                    **inputs)
    verdict.update({"curves_damage": damage} if damage else {})
    summary.setdefault("verdict_before", summary["verdict"])
    summary.update({"verdict": verdict["verdict"], "verdict_evidence": verdict,
                    "verdict_inputs": inputs})
    write_summary(run_dir, summary)
    return summary


def probe_generator(built: Built, n: int = 256) -> dict[str, float]:
    """Why a run's G stopped learning, at its checkpoint (`src/evaluate.py --probe`), on n latents
    and n real samples:
      sample_spread: per-feature standard deviation across samples, averaged (0: one sample for
        every latent);
      output_at_bound: share of image outputs at |x| >= 0.99, where tanh's gradient has vanished
        (NaN for non-image data, whose G ends linear); real_at_bound, the same share of real
        images, is what a healthy G approaches (MNIST's background alone is most of it);
      d_real, d_fake: D's mean raw output on real and generated samples;
      g_loss, g_grad_norm: G's loss and the norm of its gradient, as its next update would see them
        (training mode, nothing stepped; batch-norm running statistics are put back after)."""
    gan = built.gan
    with buffers_kept(gan.generator, gan.discriminator):
        return _probe(gan, n)


@contextmanager
def buffers_kept(*modules: torch.nn.Module) -> Iterator[None]:
    """Restore the modules' buffers (batch-norm running statistics and counters) on exit, so that
    forward passes in training mode leave the networks as loaded."""
    kept = [(buffer, buffer.clone()) for m in modules for buffer in m.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in kept:
                buffer.copy_(value)


def _probe(gan: GAN, n: int) -> dict[str, float]:
    fake = gan.generate(gan.latent(n)).float()
    real = gan.data.as_signed(gan.real_batch(n).float())  # read as the samples are
    spread = fake.flatten(1).std(0).mean().item()
    image = fake.dim() > 2
    at_bound = (fake.abs() >= 0.99).float().mean().item() if image else float("nan")
    real_at_bound = (real.abs() >= 0.99).float().mean().item() if image else float("nan")
    with torch.no_grad():
        d_real = gan.D(gan.real_batch(n)).mean().item()
        d_fake = gan.D(gan.fake_batch(gan.latent(n * gan.pack))).mean().item()
    gan.generator.zero_grad(set_to_none=True)
    with frozen(gan.discriminator):
        out_real = gan.D(gan.real_batch(n)).detach() if gan.objective.g_sees_real else None
        loss = gan.g_loss(gan.D(gan.fake_batch(gan.latent(n * gan.pack))), out_real)
        loss.backward()
    norm = gan.runs.grad_norm(gan.generator).item()
    gan.generator.zero_grad(set_to_none=True)
    return {"sample_spread": spread, "output_at_bound": at_bound, "real_at_bound": real_at_bound,
            "d_real": d_real,
            "d_fake": d_fake, "g_loss": loss.item(), "g_grad_norm": norm}
