"""Set-up of the data: MNIST and Fashion-MNIST from offline sources (sha256-checked), and a check
of the shipped metric classifiers (sha256-pinned; nothing is trained). Safe to repeat: what is in
place is kept. `python scripts/prepare_data.py [--root DIR]`"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch

from gancompare import PROJECT_ROOT
from gancompare.data import sources as data_sources
from gancompare.errors import ConfigError
from gancompare.evaluation.classifier import RECIPES, load_classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT / "data",
                        help="data folder (the configs' paths.data)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    started = time.perf_counter()
    data_sources.ensure_all(args.root)
    for domain in RECIPES:  # the shipped weights, checked against their pins
        try:
            _, info = load_classifier(domain, torch.device("cpu"))
        except ConfigError as error:
            sys.exit(f"error: {error}")
        print(f"{domain} classifier (shipped): test accuracy {info['test_accuracy']:.4f}")
    print(f"data ready under {args.root} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
