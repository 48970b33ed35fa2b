"""The training loop. `train(cfg, run_dir)` runs one job and writes everything into run_dir.

One step = `loss.n_critic` discriminator updates, then one generator update. Each D update sees
half a batch of real samples and half a batch of generated ones; G is updated through D on a full
batch of fresh latent points with target "real". Nothing in a step reads values back to the host:
the per-step figures stay tensors until they are flushed every `trainer.log_every` steps.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn
from tqdm import tqdm

from gancompare import checkpoint, plots
from gancompare.config import check_config, effective_config, resolve_device, seed_everything
from gancompare.datasets import Dataset, load_dataset
from gancompare.errors import ConfigError
from gancompare.evaluation import Evaluator
from gancompare.hacks import Labels
from gancompare.losses import Objective, clip_weights, get_objective, gradient_penalty
from gancompare.models import build_models
from gancompare.tracking import MetricsCsv, WandbRun
from gancompare.verdict import judge

log = logging.getLogger(__name__)

LOSS_COLUMNS = ("d_loss_real", "d_loss_fake", "g_loss")


@contextlib.contextmanager
def frozen(module: nn.Module):
    """G's update back-propagates through D without computing D's own weight gradients."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def grad_norm(module: nn.Module) -> Tensor:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())


@dataclass
class GAN:
    """The two networks, their optimisers and the rules of one training step."""

    generator: nn.Module
    discriminator: nn.Module
    g_optimizer: torch.optim.Optimizer
    d_optimizer: torch.optim.Optimizer
    objective: Objective
    labels: Labels
    data: Dataset
    latent_dim: int
    batch_size: int
    n_critic: int = 1
    separate_batches: bool = False
    d_optimizer_steps: int = 1  # with separate batches: 2 = a step per batch, 1 = one for both
    penalty_weight: float | None = None
    clip: float | None = None

    def latent(self, n: int) -> Tensor:
        return torch.randn(n, self.latent_dim, device=self.data.train.device)

    def step(self) -> dict[str, Tensor]:
        d_figures = [self.discriminator_update() for _ in range(self.n_critic)]
        figures = {k: torch.stack([f[k] for f in d_figures]).mean() for k in d_figures[0]}
        figures.update(self.generator_update())
        return figures

    def discriminator_update(self) -> dict[str, Tensor]:
        D, objective = self.discriminator, self.objective
        n_real = self.batch_size // 2
        n_fake = self.batch_size - n_real
        real = self.data.sample(n_real)
        with torch.no_grad():
            fake = self.generator(self.latent(n_fake))
        target_real, target_fake = self.labels(n_real, n_fake)
        if not self.separate_batches:  # one mixed batch: D's batch statistics mix real and fake
            out_real, out_fake = D(torch.cat([real, fake])).split([n_real, n_fake])
            loss_real = objective.d_real(out_real, target_real)
            loss_fake = objective.d_fake(out_fake, target_fake)
            penalty = self.penalty(real, fake)
            norms = [self.d_optimizer_step(loss_real + loss_fake + penalty)]
        elif self.d_optimizer_steps == 2:  # an all-real batch, a step, then an all-fake batch
            out_real = D(real)
            loss_real = objective.d_real(out_real, target_real)
            norms = [self.d_optimizer_step(loss_real)]
            out_fake = D(fake)
            loss_fake = objective.d_fake(out_fake, target_fake)
            penalty = self.penalty(real, fake)
            norms.append(self.d_optimizer_step(loss_fake + penalty))
        else:  # two passes, one accumulated step
            out_real, out_fake = D(real), D(fake)
            loss_real = objective.d_real(out_real, target_real)
            loss_fake = objective.d_fake(out_fake, target_fake)
            penalty = self.penalty(real, fake)
            norms = [self.d_optimizer_step(loss_real + loss_fake + penalty)]

        figures = {"d_loss_real": loss_real.detach(), "d_loss_fake": loss_fake.detach(),
                   "d_loss": (loss_real + loss_fake + penalty).detach(),
                   "d_grad_norm": torch.stack(norms).mean()}
        out_real, out_fake = out_real.detach(), out_fake.detach()
        if objective.uses_labels:
            figures["d_acc_real"] = (out_real > objective.threshold).float().mean()
            figures["d_acc_fake"] = (out_fake < objective.threshold).float().mean()
        else:
            figures["critic_real"] = out_real.mean()
            figures["critic_fake"] = out_fake.mean()
            figures["wasserstein"] = figures["critic_real"] - figures["critic_fake"]
        if self.penalty_weight:
            figures["gradient_penalty"] = penalty.detach() / self.penalty_weight
        return figures

    def penalty(self, real: Tensor, fake: Tensor) -> Tensor:
        if not self.penalty_weight:
            return torch.zeros((), device=real.device)
        return self.penalty_weight * gradient_penalty(self.discriminator, real, fake)

    def d_optimizer_step(self, loss: Tensor) -> Tensor:
        self.d_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = grad_norm(self.discriminator)
        self.d_optimizer.step()
        if self.clip:
            clip_weights(self.discriminator, self.clip)
        return norm

    def generator_update(self) -> dict[str, Tensor]:
        with frozen(self.discriminator):
            fake = self.generator(self.latent(self.batch_size))
            loss = self.objective.g(self.discriminator(fake))
            self.g_optimizer.zero_grad(set_to_none=True)
            loss.backward()
        norm = grad_norm(self.generator)
        self.g_optimizer.step()
        return {"g_loss": loss.detach(), "g_grad_norm": norm}

    def sample(self, n: int) -> Tensor:
        return self.generate(self.latent(n))

    @torch.no_grad()
    def generate(self, z: Tensor) -> Tensor:
        """Samples for figures and metrics: G in eval mode, training mode restored after."""
        was_training = self.generator.training
        self.generator.eval()
        try:
            return torch.cat([self.generator(chunk) for chunk in z.split(1000)])
        finally:
            self.generator.train(was_training)


def build_gan(cfg: DictConfig, data: Dataset, device: torch.device) -> GAN:
    generator, discriminator = build_models(
        cfg.model.arch, data.shape, cfg.model.latent_dim, cfg.model.d_norm, cfg.model.g_norm,
        cfg.model.init_std, image_output=data.is_image)
    generator.to(device)
    discriminator.to(device)
    objective = get_objective(cfg.loss.objective)
    hacks = cfg.hacks
    return GAN(
        generator=generator, discriminator=discriminator,
        g_optimizer=instantiate(cfg.loss.optimizer.g)(generator.parameters()),
        d_optimizer=instantiate(cfg.loss.optimizer.d)(discriminator.parameters()),
        objective=objective, labels=Labels(hacks, device), data=data,
        latent_dim=cfg.model.latent_dim, batch_size=cfg.trainer.batch_size,
        n_critic=cfg.loss.n_critic, separate_batches="separate-batches" in hacks,
        d_optimizer_steps=hacks.get("separate-batches", {}).get("optimizer_steps", 1),
        penalty_weight=cfg.loss.get("gradient_penalty"), clip=cfg.loss.get("clip_weights"))


def _rows(pending: list[tuple[int, int, dict[str, Tensor]]]) -> list[dict[str, Any]]:
    """One host sync for many steps of figures."""
    keys = list(pending[0][2])
    values = torch.stack([torch.stack([f[k].float() for k in keys]) for _, _, f in pending]).cpu()
    return [{"step": step, "epoch": epoch, **dict(zip(keys, row.tolist(), strict=True))}
            for (step, epoch, _), row in zip(pending, values, strict=True)]


def _first_non_finite(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    for row in rows:
        bad = [k for k in LOSS_COLUMNS if not math.isfinite(row[k])]
        if bad:
            return {"step": row["step"], "columns": bad}
    return None


def read_rows(path: Path) -> list[dict[str, float]]:
    """metrics.csv as rows of floats, empty cells left out."""
    return [{k: float(v) for k, v in row.items() if v not in ("", None)}
            for row in MetricsCsv.read(path)] if Path(path).is_file() else []


def columns(rows: list[dict[str, float]]) -> dict[str, np.ndarray]:
    """Rows -> one array per column; NaN where a row has no value (epoch-end metrics)."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return {k: np.array([row.get(k, np.nan) for row in rows]) for k in keys}


class Run:
    """Everything one job writes: metrics, samples, curves, checkpoints, summary, W&B."""

    def __init__(self, cfg: DictConfig, run_dir: Path, gan: GAN, evaluator: Evaluator,
                 fixed_z: Tensor, start_step: int, wandb_name: str, wandb_group: str | None):
        self.cfg, self.dir, self.gan, self.evaluator = cfg, run_dir, gan, evaluator
        self.fixed_z = fixed_z
        self.critic = not gan.objective.uses_labels
        self.metrics = MetricsCsv(run_dir / "metrics.csv",
                                  keep_until_step=start_step if start_step else None)
        self.rows: list[dict[str, float]] = []
        self._rows_plotted = 0
        if start_step:
            self.rows = read_rows(self.metrics.path)
        self.wandb = WandbRun({**cfg.logger.wandb}, run_dir,
                              OmegaConf.to_container(cfg, resolve=True), wandb_name, wandb_group)

    @property
    def history(self) -> dict[str, np.ndarray]:
        return columns(self.rows)

    def write(self, rows: list[dict[str, Any]]) -> None:
        self.metrics.write(rows)
        self.wandb.log(rows)
        self.rows += [{k: float(v) for k, v in row.items()} for row in rows]

    def samples(self, epoch: int, step: int) -> None:
        path = self.dir / "samples" / f"epoch_{epoch:03d}.png"
        if self.gan.data.is_image:
            plots.save_sample_grid(self.gan.generate(self.fixed_z), path)
        else:
            points = self.gan.generate(self.fixed_z).cpu().numpy()
            plots.save_scatter(points, self.gan.data.mixture, path,
                               title=f"{self.cfg.loss.name}, epoch {epoch}")
        self.wandb.log_image("samples", path, step, caption=f"epoch {epoch}")

    def curves(self) -> None:
        if self.rows and len(self.rows) != self._rows_plotted:
            self._rows_plotted = len(self.rows)
            plots.save_curves(self.history, self.dir / "curves.png", critic=self.critic,
                              title=f"{self.cfg.model.arch} · {self.cfg.loss.name} · "
                                    f"{self.cfg.data.name} · seed {self.cfg.seed}")

    def checkpoint(self, epoch: int, step: int) -> None:
        gan = self.gan
        state = {
            "step": step, "epoch": epoch,
            "generator": gan.generator.state_dict(),
            "discriminator": gan.discriminator.state_dict(),
            "g_optimizer": gan.g_optimizer.state_dict(),
            "d_optimizer": gan.d_optimizer.state_dict(),
            "rng": checkpoint.rng_state(), "fixed_z": self.fixed_z.cpu(),
            "config": OmegaConf.to_container(self.cfg, resolve=True),
        }
        checkpoint.save_epoch(self.dir / "checkpoints", epoch, state,
                              keep=self.cfg.trainer.keep_checkpoints)


def restore(gan: GAN, state: dict[str, Any], source: Path) -> None:
    try:
        gan.generator.load_state_dict(state["generator"])
        gan.discriminator.load_state_dict(state["discriminator"])
        gan.g_optimizer.load_state_dict(state["g_optimizer"])
        gan.d_optimizer.load_state_dict(state["d_optimizer"])
    except (RuntimeError, ValueError, KeyError) as error:
        raise ConfigError("trainer.resume", f"{source} does not fit this config's model or "
                          f"optimiser ({str(error).splitlines()[0]})",
                          "resume with the overrides the run was started with, or "
                          "trainer.resume=false") from error
    checkpoint.restore_rng(state["rng"])


def find_resume_checkpoint(setting: Any, run_dir: Path) -> Path | None:
    if setting in (False, None, "false", "never"):
        return None
    if setting in (True, "auto"):
        last = run_dir / "checkpoints" / "last.pt"
        return last if last.is_file() else None
    path = Path(str(setting))
    if not path.is_file():
        raise ConfigError("trainer.resume", f"no checkpoint at {path}",
                          "give a checkpoints/*.pt path, or auto to resume this run directory")
    return path


def train(cfg: DictConfig, run_dir: Path, wandb_name: str | None = None,
          wandb_group: str | None = None) -> dict[str, Any]:
    """Train one run into run_dir and return its summary (also written to summary.json)."""
    started = time.perf_counter()
    check_config(cfg)
    cfg = effective_config(cfg)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)

    data = load_dataset(cfg.data, cfg.model.get("resolution"), device)
    batch_size = cfg.trainer.batch_size
    steps_per_epoch = len(data) // batch_size
    if steps_per_epoch == 0:
        raise ConfigError("trainer.batch_size", f"{batch_size} is more than the {len(data)} "
                          f"samples of data={cfg.data.name}", "use a smaller batch size")
    total_steps = cfg.trainer.epochs * steps_per_epoch
    if cfg.trainer.max_steps:
        total_steps = min(total_steps, cfg.trainer.max_steps)

    gan = build_gan(cfg, data, device)
    # The grid's latents come from their own generator: the same for every run of a seed.
    fixed_z = torch.randn(cfg.trainer.sample_grid ** 2, cfg.model.latent_dim,
                          generator=torch.Generator().manual_seed(cfg.seed)).to(device)
    start_step = 0
    resume_from = find_resume_checkpoint(cfg.trainer.resume, run_dir)
    if resume_from is not None:
        state = checkpoint.load(resume_from, device)
        restore(gan, state, resume_from)
        start_step, fixed_z = state["step"], state["fixed_z"].to(device)
        log.info("Resumed from %s at step %d", resume_from, start_step)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)

    evaluator = Evaluator(cfg.eval, cfg.data, data, device)
    run = Run(cfg, run_dir, gan, evaluator, fixed_z, start_step,
              wandb_name or cfg.logger.wandb.get("name") or run_dir.name,
              wandb_group or cfg.logger.wandb.get("group"))
    status, divergence = "finished", None
    loop_started, steps_done = time.perf_counter(), 0
    try:
        bar = tqdm(total=total_steps, initial=start_step, desc=f"{cfg.loss.name}", unit="step",
                   dynamic_ncols=True, disable=not cfg.trainer.progress_bar, mininterval=1.0)
        pending: list[tuple[int, int, dict[str, Tensor]]] = []
        for step in range(start_step + 1, total_steps + 1):
            epoch = (step - 1) // steps_per_epoch + 1
            pending.append((step, epoch, gan.step()))
            steps_done += 1
            bar.update()
            epoch_end = step % steps_per_epoch == 0 or step == total_steps
            if len(pending) < cfg.trainer.log_every and not epoch_end:
                continue
            rows, pending = _rows(pending), []
            divergence = _first_non_finite(rows)
            if epoch_end and divergence is None and cfg.eval.every_epoch:
                rows[-1].update(evaluator.evaluate(gan.sample, cfg.eval.epoch_samples,
                                                   prefix="epoch/"))
            run.write(rows)
            last = rows[-1]
            bar.set_postfix({k: f"{last[k]:.3g}" for k in
                             ("d_loss_real", "d_loss_fake", "g_loss", "d_acc_real", "wasserstein")
                             if k in last}, refresh=False)
            if divergence is not None:
                status = "diverged"
                log.error("Non-finite %s at step %d: stopping; the last good checkpoint stays",
                          "/".join(divergence["columns"]), divergence["step"])
                break
            if epoch_end:
                run.samples(epoch, step)
                run.curves()
                if _parameters_finite(gan):
                    run.checkpoint(epoch, step)
        bar.close()
        loop_seconds = time.perf_counter() - loop_started

        final = {}
        if status == "finished" and cfg.eval.final_samples:
            eval_started = time.perf_counter()
            final = evaluator.evaluate(gan.sample, cfg.eval.final_samples)
            final["eval_seconds"] = time.perf_counter() - eval_started
        run.curves()
        verdict = judge(run.history, final, critic=run.critic, divergence=divergence,
                        rules=cfg.verdict, known=evaluator.known if final else {})
        summary = _summary(cfg, run, status, verdict, final, start_step, steps_done,
                           loop_seconds, time.perf_counter() - started, total_steps)
        write_summary(run_dir, summary)
        run.wandb.summary(_flat_summary(summary))
        log.info("Verdict: %s (%s)", verdict["verdict"], verdict["reason"])
    except BaseException:
        run.wandb.finish(exit_code=1)
        raise
    run.wandb.finish()
    return summary


def evaluate_run(run_dir: Path, checkpoint_path: Path | None = None, samples: int | None = None,
                 device: str | None = None) -> dict[str, Any]:
    """Recompute a finished run's metrics and verdict from a checkpoint (default: last.pt),
    through the evaluator and rules the training loop uses; update summary.json and W&B."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise ConfigError("run_dir", f"{run_dir} holds no config.yaml",
                          "pass a run directory written by src/train.py")
    cfg = OmegaConf.load(config_path)
    if device is not None:
        cfg.device = device
    checkpoint_path = Path(checkpoint_path or run_dir / "checkpoints" / "last.pt")
    if not checkpoint_path.is_file():
        raise ConfigError("--checkpoint", f"no checkpoint at {checkpoint_path}",
                          "pass one of the run's checkpoints/*.pt")
    torch_device = resolve_device(cfg.device)
    data = load_dataset(cfg.data, cfg.model.get("resolution"), torch_device)
    gan = build_gan(cfg, data, torch_device)
    state = checkpoint.load(checkpoint_path, torch_device)
    restore(gan, state, checkpoint_path)
    evaluator = Evaluator(cfg.eval, cfg.data, data, torch_device)
    started = time.perf_counter()
    figures = evaluator.evaluate(gan.sample, samples or cfg.eval.final_samples)
    figures["eval_seconds"] = time.perf_counter() - started
    history = columns(read_rows(run_dir / "metrics.csv"))
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    divergence = None
    if summary.get("status") == "diverged":  # keep the verdict: the checkpoint predates the NaN
        evidence = summary["verdict_evidence"]
        divergence = {"step": evidence["step"], "columns": evidence["values"]["columns"]}
    verdict = judge(history, figures, critic=not gan.objective.uses_labels, divergence=divergence,
                    rules=cfg.verdict, known=evaluator.known)
    summary.update({"eval": figures, "verdict": verdict["verdict"], "verdict_evidence": verdict,
                    "evaluated_checkpoint": str(checkpoint_path),
                    "evaluated_step": int(state["step"])})
    write_summary(run_dir, summary)
    wandb = WandbRun({**cfg.logger.wandb}, run_dir, OmegaConf.to_container(cfg),
                     cfg.logger.wandb.get("name") or run_dir.name, cfg.logger.wandb.get("group"))
    wandb.summary({f"eval/{k}": v for k, v in figures.items()} | {"verdict": verdict["verdict"]})
    wandb.finish()
    return summary


def _parameters_finite(gan: GAN) -> bool:
    return all(torch.isfinite(p).all() for m in (gan.generator, gan.discriminator)
               for p in m.parameters())


def _summary(cfg, run: Run, status: str, verdict: dict, final: dict, start_step: int,
             steps_done: int, loop_seconds: float, wall_seconds: float,
             total_steps: int) -> dict[str, Any]:
    history = run.history
    n = len(run.rows)
    tail = max(1, n // 10)
    training = {k: float(np.mean(v[-tail:])) for k, v in history.items()
                if k not in ("step", "epoch") and not k.startswith("epoch/")}
    return {
        "status": status,
        "verdict": verdict["verdict"],
        "verdict_evidence": verdict,
        "steps": int(history["step"][-1]) if n else start_step,
        "planned_steps": total_steps,
        "epochs": int(history["epoch"][-1]) if n else 0,
        "resumed_from_step": start_step,
        "wall_time_s": wall_seconds,
        "steps_per_s": steps_done / loop_seconds if loop_seconds > 0 else None,
        "ms_per_step": 1000 * loop_seconds / steps_done if steps_done else None,
        "final_training": training,  # mean over the last 10% of steps
        "eval": final,
        "model": cfg.model.arch, "loss": cfg.loss.name, "data": cfg.data.name,
        "hacks": sorted(cfg.hacks), "seed": cfg.seed,
        "device": str(resolve_device(cfg.device)),
        "torch_threads": torch.get_num_threads(),
    }


def _flat_summary(summary: dict[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in summary.items() if not isinstance(v, dict)}
    flat.update({f"final/{k}": v for k, v in summary["final_training"].items()})
    flat.update({f"eval/{k}": v for k, v in summary["eval"].items()})
    flat["verdict_reason"] = summary["verdict_evidence"]["reason"]
    flat["verdict_evidence"] = summary["verdict_evidence"]  # nested: rule, step, values
    return flat


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
