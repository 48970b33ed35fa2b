"""Benchmark: the project's training step against a plain PyTorch reference, in one run.

`python scripts/bench_train.py [--setups baseline dcgan64 mlp] [--precisions 32 bf16-mixed]
[--compile off on] [--steps N] [--no-eval] [--no-startup] [overrides ...]`

- reference: the failure-modes tutorial's stable GAN (dcgan28, mnist8, batch 128, separate real
  and fake D steps, Adam 2e-4/0.5) written plainly in fp32 PyTorch below: no project code, no
  tuning. Every ratio is to its ms/step measured in the same run, on the same machine.
- the CPU it ran on: its model, vector extensions and whether bf16 is native there (a timing
  is a ratio within one run on one machine; the CPU kind decides bf16's speed).
- the project's step (`GAN.step`) for each setup × precision × compile: ms/step, the ratio to the
  reference, FLOPs per step (torch.utils.flop_counter) and the FLOP/s achieved.
- the epoch evaluation (`eval.epoch_samples`) and the final one (`eval.final_samples`) of the
  baseline, the real-data reference statistics apart, and the time from process start to the
  first training step of `python src/train.py` (imports, data, models).
Timing targets live here, never in tests. Prints a markdown table and writes it as JSON too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from gancompare import PROJECT_ROOT
from gancompare.build import build
from gancompare.data.datasets import load_dataset
from gancompare.precision import cpu_name, native_bf16, vector_extensions

SETUPS = {"baseline": [], "dcgan64": ["model=dcgan64", "data=fashion"],
          "mlp": ["model=mlp", "data=ring8"]}
QUIET = ["logger.wandb.mode=disabled", "trainer.progress_bar=false"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(step, steps: int, warmup: int, device: torch.device) -> float:
    """ms per call of step(), after warm-up, with one device sync at the end (as the loop)."""
    for _ in range(warmup):
        step()
    sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return 1000 * (time.perf_counter() - started) / steps


def reference_step(device: torch.device):
    """The tutorial's stable GAN, plainly: its models, its two D batches, its G batch."""
    torch.manual_seed(0)
    cfg = compose_cfg([])
    images = load_dataset(cfg.data, cfg.paths.data, 28, device).train
    lrelu = nn.LeakyReLU(0.2)
    D = nn.Sequential(nn.Conv2d(1, 64, 4, 2, 1), lrelu, nn.Conv2d(64, 64, 4, 2, 1), lrelu,
                      nn.Flatten(), nn.Linear(64 * 7 * 7, 1)).to(device)
    G = nn.Sequential(nn.Linear(50, 128 * 7 * 7), lrelu, nn.Unflatten(1, (128, 7, 7)),
                      nn.ConvTranspose2d(128, 128, 4, 2, 1), lrelu,
                      nn.ConvTranspose2d(128, 128, 4, 2, 1), lrelu,
                      nn.Conv2d(128, 1, 7, padding=3), nn.Tanh()).to(device)
    for m in (*D.modules(), *G.modules()):
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0, 0.02)
    d_opt = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    g_opt = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()

    def step() -> None:
        real = images[torch.randint(len(images), (64,), device=device)].float() / 127.5 - 1
        fake = G(torch.randn(64, 50, device=device)).detach()
        for batch, label in ((real, 1.0), (fake, 0.0)):
            d_opt.zero_grad()
            out = D(batch).flatten()
            bce(out, torch.full_like(out, label)).backward()
            d_opt.step()
        g_opt.zero_grad()
        out = D(G(torch.randn(128, 50, device=device))).flatten()
        bce(out, torch.ones_like(out)).backward()
        g_opt.step()

    return step


# Environment variables that cap the kernels' instruction set: set, they make this CPU time as
# one without those extensions would (e.g. ONEDNN_MAX_CPU_ISA=AVX2 for an AVX2-only EPYC).
KERNEL_LIMITS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")


def cpu(device: torch.device) -> dict:
    """What the timings depend on: the CPU, its vector extensions, whether bf16 is native."""
    return {"cpu": cpu_name(), "vector_extensions": vector_extensions(),
            "native_bf16": native_bf16(device),
            "kernel_limits": {k: os.environ[k] for k in KERNEL_LIMITS if k in os.environ}}


def compose_cfg(overrides: list[str]):
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=[*QUIET, *overrides])


def flops_per_step(step) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def startup_seconds(overrides: list[str]) -> float:
    """From process start to the end of the first training step of `python src/train.py`."""
    with tempfile.TemporaryDirectory() as run_dir:
        subprocess.run([sys.executable, str(PROJECT_ROOT / "src" / "train.py"), *QUIET,
                        "debug=fast", "trainer.max_steps=1", *overrides,
                        f"hydra.run.dir={run_dir}"], check=True, capture_output=True)
        return json.loads((Path(run_dir) / "summary.json").read_text())["startup_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--precisions", nargs="+", default=["32", "bf16-mixed"])
    parser.add_argument("--compile", nargs="+", default=["off"], choices=["off", "on"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-eval", action="store_true", help="skip the evaluation timings")
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up timing")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    parser.add_argument("overrides", nargs="*", help="applied to every setup")
    args = parser.parse_args()
    device = build(compose_cfg(["debug=fast", *args.overrides])).device
    rows = []
    reference_ms = timed(reference_step(device), args.steps, args.warmup, device)
    reference_flops = flops_per_step(reference_step(device))
    rows.append({"setup": "reference (plain fp32 PyTorch)", "precision": "32", "compile": "off",
                 "ms_per_step": reference_ms, "ratio": 1.0, "gflop_per_step":
                 reference_flops / 1e9, "gflop_per_s": reference_flops / reference_ms / 1e6})
    for setup in args.setups:
        for precision in args.precisions:
            for compiled in args.compile:
                overrides = [*SETUPS[setup], f"trainer.precision={precision}",
                             f"trainer.compile={compiled == 'on'}", *args.overrides]
                gan = build(compose_cfg(overrides)).gan
                ms = timed(gan.step, args.steps, args.warmup, device)
                flops = flops_per_step(gan.step)
                rows.append({"setup": setup, "precision": precision, "compile": compiled,
                             "ms_per_step": ms, "ratio": ms / reference_ms,
                             "gflop_per_step": flops / 1e9, "gflop_per_s": flops / ms / 1e6})
                print(json.dumps(rows[-1]), file=sys.stderr)
    result = {"device": str(device), "torch_threads": torch.get_num_threads(), **cpu(device),
              "steps": rows}
    if not args.no_eval:
        built = build(compose_cfg(args.overrides))
        started = time.perf_counter()
        _ = built.evaluator.reference
        result["eval_reference_s"] = time.perf_counter() - started
        for name in ("epoch_samples", "final_samples"):
            n = int(built.cfg.eval[name])
            started = time.perf_counter()
            built.evaluator.evaluate(built.gan.sample, n)
            sync(device)
            result[f"eval_{name}_{n}_s"] = time.perf_counter() - started
    if not args.no_startup:
        result["startup_to_first_step_s"] = startup_seconds(args.overrides)
    limits = ", ".join(f"{k}={v}" for k, v in result["kernel_limits"].items()) or "none"
    print(f"CPU: {result['cpu']} ({', '.join(result['vector_extensions']) or 'no AVX'}; native "
          f"bf16: {'yes' if result['native_bf16'] else 'no'}) · kernel limits: {limits} · "
          f"torch threads: {result['torch_threads']}")
    print("| setup | precision | compile | ms/step | × reference | GFLOP/step | GFLOP/s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['setup']} | {r['precision']} | {r['compile']} | {r['ms_per_step']:.1f} | "
              f"{r['ratio']:.2f} | {r['gflop_per_step']:.1f} | {r['gflop_per_s']:.0f} |")
    print(json.dumps({k: v for k, v in result.items() if k != "steps"}, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
