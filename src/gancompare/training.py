"""One training run, top to bottom: `train(cfg, run_dir)`.

Set-up (build, resume, run directory), then one loop over steps with three explicit blocks:
every `trainer.log_every` steps the figures are synced to the host and written; at each epoch end
the run is evaluated, its samples, curves and a checkpoint are saved; on Ctrl-C or SIGTERM a
checkpoint of the current step is saved and the run stops (resuming it continues bit-exactly).
Then the final evaluation, the verdict and the summary. The GAN step itself is `gan.py`; what a
run writes is `run_dir.py`.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from tqdm import tqdm

from gancompare import checkpoint
from gancompare.build import build
from gancompare.run_dir import LOSS_COLUMNS, RunDir, training_summary
from gancompare.verdict import judge

log = logging.getLogger(__name__)


def train(cfg: DictConfig, run_dir: Path, wandb_name: str | None = None,
          wandb_group: str | None = None) -> dict[str, Any]:
    """Train one run into run_dir and return its summary (also written to summary.json).
    summary["status"]: finished, diverged, or interrupted (then summary["signal"] is set)."""
    started = time.perf_counter()
    # ---- set-up ----
    built = build(cfg)
    cfg, gan, evaluator = built.cfg, built.gan, built.evaluator
    fixed_z, total_steps, steps_per_epoch = built.fixed_z, built.total_steps, built.steps_per_epoch
    start_step = 0
    resumed = checkpoint.resume_state(cfg.trainer.resume, Path(run_dir), built.device)
    if resumed is not None:
        state, path = resumed
        gan.load_state_dict(state)
        checkpoint.restore_rng(state["rng"])
        start_step, fixed_z = state["step"], state["fixed_z"].to(built.device)
        log.info("Resumed from %s at step %d", path, start_step)
    run = RunDir(cfg, run_dir, start_step, critic=not gan.objective.has_accuracy,
                 wandb_name=wandb_name or cfg.logger.wandb.get("name") or Path(run_dir).name,
                 wandb_group=wandb_group or cfg.logger.wandb.get("group"))
    bar = tqdm(total=total_steps, initial=start_step, desc=cfg.loss.name, unit="step",
               dynamic_ncols=True, disable=not cfg.trainer.progress_bar, mininterval=1.0)
    status, divergence, stop = "finished", None, StopRequest()
    loop_started, steps_done, startup = time.perf_counter(), 0, None

    # ---- the loop ----
    try:
        with stop:
            for step in range(start_step + 1, total_steps + 1):
                epoch = (step - 1) // steps_per_epoch + 1
                run.append(step, epoch, gan.step())  # figures stay on the device
                steps_done += 1
                if startup is None:  # once: imports, data and models to the first step's end
                    startup = seconds_since_process_start(built.device)
                bar.update()
                epoch_end = step % steps_per_epoch == 0 or step == total_steps

                if epoch_end and cfg.eval.every_epoch:
                    run.attach(step, evaluator.evaluate(gan.sample, cfg.eval.epoch_samples,
                                                        prefix="epoch/"))

                if step % cfg.trainer.log_every == 0 or epoch_end or stop.signal:
                    rows = run.flush()  # the one host sync
                    bar.set_postfix({k: f"{rows[-1][k]:.3g}" for k in (*LOSS_COLUMNS, "d_acc_real")
                                     if k in rows[-1]}, refresh=False)
                    divergence = first_non_finite(rows)
                    if divergence is not None:
                        status = "diverged"
                        log.error("Non-finite %s at step %d: stopping; the last good checkpoint "
                                  "stays", "/".join(divergence["columns"]), divergence["step"])
                        break

                if epoch_end:
                    run.save_samples(gan.generate(fixed_z), epoch, step, built.data.mixture)
                    run.save_curves()
                    if gan.parameters_finite():
                        run.save_checkpoint(checkpoint_state(gan, fixed_z, step, epoch), epoch,
                                            epoch_end=True)

                if stop.signal:
                    if not epoch_end:  # at an epoch end the block above has saved this step
                        run.save_checkpoint(checkpoint_state(gan, fixed_z, step, epoch), epoch,
                                            epoch_end=False)
                    status = "interrupted"
                    log.warning("%s at step %d: checkpoint saved; run again with the same "
                                "overrides and run directory to resume", stop.name, step)
                    break
        bar.close()
        loop_seconds = time.perf_counter() - loop_started

        # ---- final evaluation, verdict, summary ----
        final: dict[str, float] = {}
        if status == "finished" and cfg.eval.final_samples:
            eval_started = time.perf_counter()
            final = evaluator.evaluate(gan.sample, cfg.eval.final_samples)
            final["eval_seconds"] = time.perf_counter() - eval_started
        run.save_curves()
        verdict = judge(run.history, final, critic=run.critic, divergence=divergence,
                        rules=cfg.verdict, known=evaluator.known if final else {})
        summary = {
            "status": status, "verdict": verdict["verdict"], "verdict_evidence": verdict,
            "steps": int(run.rows[-1]["step"]) if run.rows else start_step,
            "planned_steps": total_steps,
            "epochs": int(run.rows[-1]["epoch"]) if run.rows else 0,
            "resumed_from_step": start_step,
            "wall_time_s": time.perf_counter() - started, "startup_s": startup,
            "steps_per_s": steps_done / loop_seconds if loop_seconds > 0 else None,
            "ms_per_step": 1000 * loop_seconds / steps_done if steps_done else None,
            "final_training": training_summary(run.rows),  # mean over the last 10 % of steps
            "eval": final,
            "model": cfg.model.arch, "loss": cfg.loss.name, "optimizer": cfg.optimizer.name,
            "data": cfg.data.name, "hacks": sorted(cfg.hacks), "seed": cfg.seed,
            "device": str(built.device), "precision": cfg.trainer.precision,
            "torch_threads": torch.get_num_threads(),
        }
        if stop.signal:
            summary["signal"] = stop.name
        run.finish(summary)
        log.info("Verdict: %s (%s)", verdict["verdict"], verdict["reason"])
    except BaseException:
        run.wandb.finish(exit_code=1)
        raise
    return summary


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


def checkpoint_state(gan, fixed_z: torch.Tensor, step: int, epoch: int) -> dict[str, Any]:
    return {"step": step, "epoch": epoch, **gan.state_dict(), "rng": checkpoint.rng_state(),
            "fixed_z": fixed_z.cpu()}


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

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal else ""

    def _handle(self, signum: int, frame: Any) -> None:
        self.signal = signum
        signal.signal(signum, self._previous[signum])  # the next one acts as usual

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
