"""Benchmark: ms per training step and seconds of the final evaluation, for any config.

`python scripts/bench_train.py [--steps N] [--eval-samples N] [overrides ...]`, e.g.
`python scripts/bench_train.py loss=wgan-gp model=dcgan64 data=fashion`. Times N steps after a
warm-up with one device sync at the end (what the training loop does), then the evaluator on
`--eval-samples` samples (the first call includes the real-data reference statistics, reported
separately). Timing targets live here, never in tests.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from hydra import compose, initialize_config_dir

from gancompare import PROJECT_ROOT
from gancompare.build import build


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--eval-samples", type=int, default=10000)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=args.overrides)
    built = build(cfg)
    gan, device = built.gan, built.device
    for _ in range(args.warmup):
        gan.step()
    sync(device)
    started = time.perf_counter()
    for _ in range(args.steps):
        figures = gan.step()
    sync(device)
    step_seconds = (time.perf_counter() - started) / args.steps
    assert all(torch.isfinite(v) for v in figures.values())
    result = {"overrides": args.overrides, "device": str(device),
              "torch_threads": torch.get_num_threads(), "ms_per_step": 1000 * step_seconds}
    if args.eval_samples:
        evaluator = built.evaluator
        started = time.perf_counter()
        _ = evaluator.reference
        result["eval_reference_s"] = time.perf_counter() - started
        started = time.perf_counter()
        figures = evaluator.evaluate(gan.sample, args.eval_samples)
        result[f"eval_{args.eval_samples}_samples_s"] = time.perf_counter() - started
        started = time.perf_counter()
        with torch.no_grad():
            gan.sample(args.eval_samples)
        sync(device)
        result["of_which_sampling_s"] = time.perf_counter() - started
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
