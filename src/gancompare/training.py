"""One training run, top to bottom: `train(cfg, run_dir)`.

Set-up (build, resume, run directory), then one loop over steps with three explicit blocks:
every `trainer.log_every` steps the figures are synced to the host and written; at each epoch end
(and every `eval.every_steps` steps when set) the run is evaluated, and at each epoch end its
samples, curves and a checkpoint are saved; on Ctrl-C or SIGTERM a checkpoint of the current
step is saved and the run stops (resuming it continues bit-exactly).
Then the final evaluation, the verdict and the summary. The GAN step itself is `gan.py`; what a
run writes is `run_dir.py`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor
from tqdm import tqdm

from gancompare.build import Built, build
from gancompare.config import check_seeds
from gancompare.errors import ConfigError
from gancompare.evaluation.verdict import judge
from gancompare.run import checkpoint
from gancompare.run.machine import machine
from gancompare.run.run_dir import LOSS_COLUMNS, RunDir, disk_faults, training_summary
from gancompare.step.gan import GAN
from gancompare.step.seeds import RunStreams, stack_runs

log = logging.getLogger(__name__)


@dataclass
class Run:
    """One run's own pieces: what was built for it (config, data, evaluator, sample latents),
    its directory and how it ended. `trainer.seeds` trains several in one loop."""

    built: Built
    dir: RunDir
    fixed_z: Tensor
    start_step: int
    status: str = "training"  # then finished, diverged or interrupted
    divergence: dict[str, Any] | None = None
    rng: dict[str, Any] = field(default_factory=dict)  # its RNG state at the start (seeds)

    @property
    def cfg(self) -> DictConfig:
        return self.built.cfg


def train(cfg: DictConfig, run_dir: Path, wandb_name: str | None = None,
          wandb_group: str | None = None) -> dict[str, Any]:
    """Train one run into run_dir and return its summary (also written to summary.json).
    summary["status"]: finished, diverged, or interrupted (then summary["signal"] is set)."""
    started = time.perf_counter()
    built = build(cfg)
    with disk_faults(Path(run_dir)):  # a full disk: one line, the checkpoints kept
        run = start_run(built, Path(run_dir), wandb_name, wandb_group)
        return loop(built.gan, [run], started)[0]


def train_seeds(cfg: DictConfig, run_dir: Path, wandb_name: str | None = None,
                wandb_group: str | None = None) -> list[dict[str, Any]]:
    """`trainer.seeds=[s, ...]`: one run per seed, each built, resumed and written (into
    run_dir/seed<s>) exactly as `seed=<s>` alone would be, trained as one batched computation
    (`seeds.py`). Returns the summaries in the order of the seeds."""
    started = time.perf_counter()
    seeds = check_seeds(cfg.trainer.seeds)
    if cfg.trainer.compile:
        raise ConfigError("trainer.compile", "trainer.seeds trains the runs under torch.func.vmap,"
                          " which torch.compile does not wrap here", "set trainer.compile=false")
    for key in ("model.d_norm", "model.g_norm"):
        if OmegaConf.select(cfg, key) == "spectral":
            raise ConfigError(key, "spectral norm's power iteration writes its vectors in place "
                              "(torch's parametrization), which trainer.seeds' vmap cannot batch",
                              "train the seeds as separate runs (-m seed=0,1,2) or drop "
                              "trainer.seeds")
    with disk_faults(Path(run_dir)):  # a full disk: one line, the checkpoints kept
        return _train_seeds(cfg, seeds, Path(run_dir), wandb_name, wandb_group, started)


def _train_seeds(cfg: DictConfig, seeds: list[int], run_dir: Path, wandb_name: str | None,
                 wandb_group: str | None, started: float) -> list[dict[str, Any]]:
    runs = []
    for seed in seeds:
        cfg_seed = cfg.copy()
        cfg_seed.seed, cfg_seed.trainer.seeds = seed, None
        # W&B name: the batch's, with seed=<s> for trainer.seeds=[...] (as a seed sweep names)
        base = re.sub(r",?trainer\.seeds=\[[^\]]*\]", "",
                      wandb_name or cfg.logger.wandb.get("name") or Path(run_dir).name).strip(",")
        name = f"{base},seed={seed}" if base and base != "baseline" else f"seed={seed}"
        runs.append(start_run(build(cfg_seed), Path(run_dir) / f"seed{seed}", name, wandb_group))
        runs[-1].rng = checkpoint.rng_state()  # where this run's own process would be now
    steps = {r.start_step for r in runs}
    if len(steps) > 1:
        at = ", ".join(f"seed {r.cfg.seed}: step {r.start_step}" for r in runs)
        raise ConfigError("trainer.resume", f"the seeds' checkpoints are at different steps "
                          f"({at}), so they cannot continue as one batch",
                          "resume each alone with seed=<s> and its run directory, or "
                          "trainer.resume=false to start over")
    gan = stack_runs([r.built.gan for r in runs], RunStreams([r.rng for r in runs]),
                     cfg.optimizer, cfg.trainer.fused_optimizers)
    return loop(gan, runs, started)


def start_run(built: Built, run_dir: Path, wandb_name: str | None,
              wandb_group: str | None) -> Run:
    """Resume the built run if its directory (or trainer.resume) has a checkpoint; open its
    directory."""
    cfg, gan, fixed_z, start_step = built.cfg, built.gan, built.fixed_z, 0
    resumed = checkpoint.resume_state(cfg.trainer.resume, run_dir, built.device)
    if resumed is not None:
        state, path = resumed
        checkpoint.restore(gan, state, path, key="trainer.resume")
        checkpoint.restore_rng(state["rng"])
        start_step, fixed_z = state["step"], state["fixed_z"].to(built.device)
        gan.steps_done = start_step  # the lazy phases count steps from the run's start
        log.info("Resumed from %s at step %d", path, start_step)
    directory = RunDir(cfg, run_dir, start_step, critic=not gan.objective.has_accuracy,
                       wandb_name=wandb_name or cfg.logger.wandb.get("name") or run_dir.name,
                       wandb_group=wandb_group or cfg.logger.wandb.get("group"))
    return Run(built, directory, fixed_z, start_step)


def loop(gan: GAN, runs: list[Run], started: float) -> list[dict[str, Any]]:
    """Train `runs` (one, or the seeds of `trainer.seeds`, stacked) from their common start
    step to the end; evaluate, judge and summarise each."""
    first = runs[0]
    cfg, total_steps = first.cfg, first.built.total_steps
    steps_per_epoch, start_step = first.built.steps_per_epoch, first.start_step
    bar = tqdm(total=total_steps, initial=start_step, desc=cfg.loss.name, unit="step",
               dynamic_ncols=True, disable=not cfg.trainer.progress_bar, mininterval=1.0)
    stop = StopRequest()
    loop_started, steps_done, startup = time.perf_counter(), 0, None
    every_steps = cfg.eval.every_steps  # evaluations between epoch ends, for curves

    def save_checkpoint(k: int, step: int, epoch: int, epoch_end: bool) -> None:
        member = gan.member(k, optimizers=True)
        if epoch_end and not member.parameters_finite():
            return
        state = {"step": step, "epoch": epoch, **member.state_dict(), "rng": gan.rng_state(k),
                 "fixed_z": runs[k].fixed_z.cpu()}
        runs[k].dir.save_checkpoint(state, epoch, epoch_end)

    # ---- the loop ----
    try:
        with stop:
            for step in range(start_step + 1, total_steps + 1):
                epoch = (step - 1) // steps_per_epoch + 1
                figures = gan.step()  # figures stay on the device
                training = [(k, r) for k, r in enumerate(runs) if r.status == "training"]
                for k, run in training:
                    run.dir.append(step, epoch, gan.run_figures(figures, k))
                steps_done += 1
                if startup is None:  # once: imports, data and models to the first step's end
                    startup = seconds_since_process_start(first.built.device)
                bar.update()
                epoch_end = step % steps_per_epoch == 0 or step == total_steps

                if ((epoch_end and cfg.eval.every_epoch)
                        or (every_steps and step % every_steps == 0)):
                    for k, run in training:
                        with gan.rng(k):  # evaluation draws from the run's own generators
                            run.dir.attach(step, run.built.evaluator.evaluate(
                                gan.member(k).sample, cfg.eval.epoch_samples, prefix="epoch/"))

                if step % cfg.trainer.log_every == 0 or epoch_end or stop.signal:
                    for k, run in training:
                        rows = run.dir.flush()  # the one host sync
                        if k == training[0][0]:
                            bar.set_postfix({c: f"{rows[-1][c]:.3g}" for c in
                                             (*LOSS_COLUMNS, "d_acc_real") if c in rows[-1]},
                                            refresh=False)
                        run.divergence = first_non_finite(rows)
                        if run.divergence is not None:
                            run.status = "diverged"
                            log.error("%sNon-finite %s at step %d: stopping; the last good "
                                      "checkpoint stays", seed_label(run, len(runs)),
                                      "/".join(run.divergence["columns"]),
                                      run.divergence["step"])
                    training = [(k, r) for k, r in training if r.status == "training"]
                    if not training:
                        break

                if epoch_end:
                    for k, run in training:
                        run.dir.save_samples(gan.member(k).generate(run.fixed_z), epoch, step,
                                             run.built.data.mixture)
                        run.dir.save_curves()
                        save_checkpoint(k, step, epoch, epoch_end=True)

                if stop.signal:
                    for k, run in training:
                        if not epoch_end:  # at an epoch end the block above has saved this step
                            save_checkpoint(k, step, epoch, epoch_end=False)
                        run.status = "interrupted"
                    log.warning("%s at step %d: checkpoint saved; run again with the same "
                                "overrides and run directory to resume", stop.name, step)
                    break
            bar.close()
            loop_seconds = time.perf_counter() - loop_started

            # ---- final evaluation, verdict, summary (each run); a signal now stops the
            # evaluation at once, and the summary says so ----
            summaries = []
            for k, run in enumerate(runs):
                if run.status == "training":
                    run.status = "finished"
                summaries.append(finish(run, gan, k, started, startup, steps_done, loop_seconds,
                                        stop, len(runs)))
    except BaseException:
        for run in runs:
            run.dir.wandb.finish(exit_code=1)
        raise
    return summaries


def finish(run: Run, gan: GAN, k: int, started: float, startup: float | None, steps_done: int,
           loop_seconds: float, stop: StopRequest, runs_in_process: int) -> dict[str, Any]:
    cfg, evaluator = run.cfg, run.built.evaluator
    final: dict[str, float] = {}
    if run.status == "finished" and cfg.eval.final_samples:
        log.info("%sFinal evaluation on %d samples", seed_label(run, runs_in_process),
                 cfg.eval.final_samples)
        eval_started = time.perf_counter()
        with contextlib.suppress(StopRequest.Interrupted), stop.at_once(), gan.rng(k):
            final = evaluator.evaluate(gan.member(k).sample, cfg.eval.final_samples)
            final["eval_seconds"] = time.perf_counter() - eval_started
        if stop.signal:  # trained to the end, not evaluated: the same command evaluates it
            run.status, final = "interrupted", {}
            log.warning("%s%s during the final evaluation: the run is trained (its last "
                        "checkpoint is saved) but not evaluated; run the same command again, "
                        "or src/evaluate.py %s", seed_label(run, runs_in_process), stop.name,
                        run.dir.path)
    run.dir.save_curves()
    # what the rules know of the run besides its curves and figures: judged again from these
    inputs = {"critic": run.dir.critic, "known": evaluator.known if final else {}}
    verdict = judge(run.dir.history, final, divergence=run.divergence, rules=cfg.verdict,
                    **inputs)
    rows = run.dir.rows
    summary = {
        "status": run.status, "verdict": verdict["verdict"], "verdict_evidence": verdict,
        "verdict_inputs": inputs,
        "steps": int(rows[-1]["step"]) if rows else run.start_step,
        "planned_steps": run.built.total_steps,
        "epochs": int(rows[-1]["epoch"]) if rows else 0,
        "resumed_from_step": run.start_step,
        "wall_time_s": time.perf_counter() - started, "startup_s": startup,
        "steps_per_s": steps_done / loop_seconds if loop_seconds > 0 else None,
        "ms_per_step": 1000 * loop_seconds / steps_done if steps_done else None,
        "runs_in_process": runs_in_process,  # >1: trainer.seeds (the step time is all runs')
        "final_training": training_summary(rows),  # mean over the last 10 % of steps
        "eval": final,
        "model": cfg.model.name, "loss": cfg.loss.name, "optimizer": cfg.optimizer.name,
        "data": cfg.data.name, "hacks": sorted(cfg.hacks), "seed": cfg.seed,
        "device": str(run.built.device), "precision": cfg.trainer.precision,
        "torch_threads": torch.get_num_threads(), "machine": machine(),
    }
    if stop.signal:
        summary["signal"] = stop.name
        if run.status == "interrupted" and run.start_step + steps_done == run.built.total_steps:
            summary["interrupted_during"] = "final evaluation"
    run.dir.finish(summary)
    log.info("%sVerdict: %s (%s)", seed_label(run, runs_in_process), verdict["verdict"],
             verdict["reason"])
    return summary


def seed_label(run: Run, runs_in_process: int) -> str:
    """Which run a log line is about, when one process trains several."""
    return f"seed {run.cfg.seed}: " if runs_in_process > 1 else ""


def seconds_since_process_start(device: torch.device) -> float | None:
    """Linux: this process's start (/proc/self/stat) against the uptime; None elsewhere."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def first_non_finite(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    for row in rows:
        bad = [k for k in LOSS_COLUMNS if not math.isfinite(row[k])]
        if bad:
            return {"step": row["step"], "columns": bad}
    return None


class StopRequest:
    """While active, Ctrl-C (SIGINT) and SIGTERM only set `signal`; the loop checks it after each
    step, saves a checkpoint and stops. A second Ctrl-C interrupts at once. Handlers that others
    installed (a cluster launcher's) are left alone, and so are threads other than the main one."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)
    DEFAULTS = (signal.default_int_handler, signal.SIG_DFL)

    class Interrupted(Exception):
        """Raised by the handler inside `at_once()`: stop what runs now."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}
        self._at_once = False

    @contextlib.contextmanager
    def at_once(self) -> Iterator[None]:
        """Within this block a signal (or one received before it) raises `Interrupted` instead
        of waiting for the next step: for the final evaluation, which has no steps."""
        if self.signal:
            raise self.Interrupted
        self._at_once = True
        try:
            yield
        finally:
            self._at_once = False

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal else ""

    def _handle(self, signum: int, frame: Any) -> None:
        self.signal = signum
        signal.signal(signum, self._previous[signum])  # the next one acts as usual
        if self._at_once:
            raise self.Interrupted

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                if signal.getsignal(signum) in self.DEFAULTS:
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
