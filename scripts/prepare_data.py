"""Set-up of the data: MNIST and Fashion-MNIST from offline sources (sha256-checked), then the
domain classifiers the metrics use (trained once, cached). Safe to repeat: what is in place
is kept. `python scripts/prepare_data.py [--root DIR] [--no-classifiers]`"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

from gancompare import PROJECT_ROOT, data_sources
from gancompare.evaluation.classifier import train_and_cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT / "data",
                        help="data folder (the configs' paths.data)")
    parser.add_argument("--no-classifiers", action="store_true",
                        help="skip the domain classifiers (metrics in their features then "
                        "refuse to run)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    started = time.perf_counter()
    data_sources.ensure_all(args.root)
    if not args.no_classifiers:
        for domain in ("mnist", "fashion-mnist"):
            info = train_and_cache(domain, args.root, torch.device("cpu"))
            print(f"{domain} classifier: test accuracy {info['test_accuracy']:.4f}")
    print(f"data ready under {args.root} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
