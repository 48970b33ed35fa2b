"""Train a domain classifier again and report its test accuracy and sha256.

`python scripts/train_classifier.py mnist|fashion-mnist [--out FILE | --ship] [--device cpu]`

The metrics use the shipped weights (src/gancompare/evaluation/weights/, sha256-pinned), so the
same samples get the same FID on every machine. A classifier trained here is another network
(another CPU sums in another order): it goes to --out (default
data/classifiers/<domain>-retrained.pt) and a run uses it only with
`eval.classifier_weights=FILE`, its metrics then comparable only with runs that used it too.
`--ship` replaces the shipped file instead and prints the pin for SHIPPED_SHA256 (then every
number in docs/results.md has to be re-evaluated).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from gancompare import PROJECT_ROOT
from gancompare.evaluation.classifier import (
    RECIPES,
    save_classifier,
    shipped_path,
    train_classifier,
)
from gancompare.precision import cpu_name, vector_extensions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("domain", choices=sorted(RECIPES))
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT / "data",
                        help="where `make data` put MNIST and Fashion-MNIST (paths.data)")
    parser.add_argument("--out", type=Path, default=None,
                        help="the file to write (default: ROOT/classifiers/DOMAIN-retrained.pt)")
    parser.add_argument("--ship", action="store_true", help="replace the shipped weights")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    out = shipped_path(args.domain) if args.ship else \
        args.out or args.root / "classifiers" / f"{args.domain}-retrained.pt"
    model, info = train_classifier(args.domain, args.root, torch.device(args.device))
    info["trained_on"] = (f"{cpu_name()} "
                          f"({', '.join(vector_extensions()) or 'no AVX'}), {args.device}, "
                          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    digest = save_classifier(model.cpu(), info, out)
    print(json.dumps(info | {"file": str(out), "sha256": digest}, indent=2))
    if args.ship:
        print(f'pin it in src/gancompare/evaluation/classifier.py: SHIPPED_SHA256["{args.domain}"]'
              f' = "{digest}"')
    else:
        print(f"use it with: python src/train.py ... eval.classifier_weights={out}")


if __name__ == "__main__":
    main()
