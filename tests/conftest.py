"""Shared fixtures: configs through Hydra's compose API (with the `debug` configs), the real data
the set-up put in place, a small image folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from PIL import Image

import gancompare
from gancompare.data import sources as data_sources

ROOT = gancompare.PROJECT_ROOT
CONF = ROOT / "conf"
DATA_ROOT = ROOT / "data"


@pytest.fixture(scope="session", autouse=True)
def real_data() -> Path:
    """MNIST and Fashion-MNIST as `make data` puts them (make test runs it first)."""
    for folder in ("MNIST", "FashionMNIST"):
        assert data_sources.is_complete(DATA_ROOT / folder / "raw"), \
            f"{folder} is not set up under {DATA_ROOT}: run `make data` (make test does)"
    return DATA_ROOT


@pytest.fixture(autouse=True)
def float32_default():
    """Every test starts with torch's default dtype, whatever a trainer.precision=64 run before
    it set (build() sets it for the process)."""
    import torch

    torch.set_default_dtype(torch.float32)
    yield
    torch.set_default_dtype(torch.float32)


def make_cfg(*overrides: str, debug: str | None = "fast") -> DictConfig:
    """The config `python src/train.py debug=<debug> <overrides>` would run."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train",
                       overrides=[*([f"debug={debug}"] if debug else []), *overrides])


def write_image_folder(folder: Path, n: int = 12, seed: int = 0) -> Path:
    """A small zalando-like folder: colour photos of mixed sizes and formats, nested."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        sub = folder / ("dresses" if i % 2 else "shirts") / ("a" if i % 3 else "")
        sub.mkdir(parents=True, exist_ok=True)
        h, w = (87, 60) if i % 2 else (120, 90)
        pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(sub / f"img{i}.{'jpg' if i % 2 else 'png'}")
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture
def zalando_dir(tmp_path: Path) -> Path:
    return write_image_folder(tmp_path / "zalando")


def run_cli(*args: str, cwd: Path = ROOT, env: dict | None = None,
            timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a project entrypoint the way a user does."""
    environment = {**os.environ, "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "0", **(env or {})}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          env=environment, timeout=timeout)


def read_csv(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))
