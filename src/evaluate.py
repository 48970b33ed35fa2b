"""Recompute every metric of a finished run: `python src/evaluate.py RUN_DIR [options]`.

Loads the run's resolved config.yaml and a checkpoint (default checkpoints/last.pt), evaluates
through the same code path as the end of training, re-judges the verdict and updates the run's
summary.json (and its W&B run). `--probe` instead prints why G may have stopped learning (its
samples' spread, outputs at tanh's bound, D's outputs, G's gradient norm) and changes nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import gancompare  # noqa: F401
from gancompare.errors import ConfigError
from gancompare.reevaluation import evaluate_run, load_run, probe_generator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run directory written by src/train.py")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint to evaluate (default: RUN_DIR/checkpoints/last.pt)")
    parser.add_argument("--samples", type=int, default=None,
                        help="generated samples (default: the run's eval.final_samples)")
    parser.add_argument("--device", default=None, help="auto, cpu or cuda (default: the run's)")
    parser.add_argument("--probe", action="store_true",
                        help="print G's health at the checkpoint (on --samples latents, default "
                             "256); re-evaluate and write nothing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(name)s][%(levelname)s] %(message)s")
    try:
        if args.probe:
            if args.samples is not None and args.samples < 2:
                raise ConfigError("--samples", f"{args.samples} latents cannot show a spread",
                                  "give at least 2, e.g. --samples 256")
            built, state, _ = load_run(args.run_dir, args.checkpoint, args.device)
            figures = probe_generator(built, args.samples or 256)
            print(json.dumps({"step": int(state["step"]), **figures}, indent=2))
            return 0
        summary = evaluate_run(args.run_dir, args.checkpoint, args.samples, args.device)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({"verdict": summary["verdict"],
                      "reason": summary["verdict_evidence"]["reason"], **summary["eval"]},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
