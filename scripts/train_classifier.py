"""Train (or load from the cache) a domain classifier and report its test accuracy.

`python scripts/train_classifier.py mnist|fashion-mnist [--root DIR] [--device cpu] [--force]`
The classifier is cached under <root>/classifiers/<domain>-<hash>.pt, the hash covering the
training files and the recipe; --force retrains it.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from gancompare import PROJECT_ROOT
from gancompare.evaluation.classifier import RECIPES, cache_path, train_and_cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("domain", choices=sorted(RECIPES))
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT / "data")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--force", action="store_true", help="retrain even if cached")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    if args.force:
        cache_path(args.domain, args.root).unlink(missing_ok=True)
    info = train_and_cache(args.domain, args.root, torch.device(args.device))
    print(json.dumps(info | {"cache": str(cache_path(args.domain, args.root))}, indent=2))


if __name__ == "__main__":
    main()
