"""The `data` group: every data set as one tensor on the training device.

Each `conf/data/` file names its loader by `_target_` (`loader: {_target_:
gancompare.data.datasets.mnist, _partial_: true}`), a function (data cfg, paths.data) -> Dataset
here, so adding a data set is one loader plus one YAML file (or only the YAML file, for another
selection of an existing source). `data.source` says what kind of data it is to the code that
treats kinds apart: the 2-D mixtures train in float32, Stacked MNIST is classified per channel.

Images are stored as uint8 [N, C, H, W] at the model's resolution and turned into floats in
[-1, 1] per batch; 2-D mixtures as float32 [N, 2]. Batches are random draws (with replacement,
as in the failure-modes tutorial), so the hot loop never touches the host.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from gancompare.data import sources as data_sources
from gancompare.data.mixtures import MIXTURES, GaussianMixture
from gancompare.errors import ConfigError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
ZALANDO_HELP = (
    "download the Kaggle data set 'dqmonn/zalando-store-crawl' "
    "(https://www.kaggle.com/datasets/dqmonn/zalando-store-crawl, or `kaggle datasets download "
    "-d dqmonn/zalando-store-crawl`), unzip it into that folder (sub-folders are read "
    "recursively), or point data.path=/your/image/folder"
)


@dataclass
class Dataset:
    name: str
    train: Tensor  # uint8 [N, C, H, W] or float32 [N, 2], on the training device
    test: Tensor  # held-out split in the same format (the evaluation reference), on the CPU
    train_labels: Tensor | None = None
    test_labels: Tensor | None = None
    num_classes: int | None = None
    mixture: GaussianMixture | None = None
    real_range: str = "signed"  # images as D sees them: signed [-1, 1] (G's tanh) or unit [0, 1]

    @property
    def is_image(self) -> bool:
        return self.train.dim() == 4

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.train.shape[1:])

    def __len__(self) -> int:
        return self.train.shape[0]

    def sample(self, n: int) -> Tensor:
        """A random batch of n training samples, as the models see them."""
        idx = torch.randint(len(self), (n,), device=self.train.device)
        real = to_model_space(self.train[idx])
        return real.add(1).div_(2) if self.real_range == "unit" else real

    def as_signed(self, generated: Tensor) -> Tensor:
        """G's samples as metrics and figures read them, in [-1, 1] like to_model_space's: under
        data.real_range=unit G learns [0, 1], mapped here by 2x - 1."""
        return generated.mul(2).sub_(1) if self.real_range == "unit" else generated


def to_model_space(x: Tensor) -> Tensor:
    """uint8 pixels -> floats in [-1, 1]; points pass through (in torch's default dtype:
    float32, or float64 under trainer.precision=64)."""
    if x.dtype == torch.uint8:
        return x.to(torch.get_default_dtype()).div_(127.5).sub_(1.0)
    return x.to(torch.get_default_dtype())


def resize(images: Tensor, resolution: int) -> Tensor:
    """uint8 [N, C, H, W] -> uint8 [N, C, R, R] (bilinear, antialiased), in chunks."""
    if images.shape[-2:] == (resolution, resolution):
        return images
    out = [F.interpolate(chunk.float(), size=(resolution, resolution), mode="bilinear",
                         antialias=True, align_corners=False).round_().clamp_(0, 255).byte()
           for chunk in images.split(4096)]
    return torch.cat(out)


def load_dataset(cfg: DictConfig, root: str | Path, resolution: int | None,
                 device: torch.device) -> Dataset:
    """The data set of `cfg` (= cfg.data) under `root` (= paths.data), images resized to
    `resolution` when it is set. Kept in memory per process: a sweep's jobs on one launcher
    process load it once. Nothing is fetched here: `make data` puts MNIST and Fashion-MNIST in
    place, and a missing file is one line that says so."""
    key = json.dumps(OmegaConf.to_container(cfg, resolve=True), sort_keys=True)
    data = _load_on_cpu(key, str(root), resolution)
    return replace(data, train=data.train.to(device), real_range=cfg.get("real_range", "signed"))


@functools.lru_cache(maxsize=4)
def _load_on_cpu(cfg_json: str, root: str, resolution: int | None) -> Dataset:
    from gancompare.units import build_unit

    cfg = OmegaConf.create(json.loads(cfg_json))
    loader = build_unit(cfg.get("loader"), "data.loader", "name a loader of "
                        "gancompare.data.datasets with _partial_: true, as conf/data/ does, e.g. "
                        "{_target_: gancompare.data.datasets.mnist, _partial_: true}")
    data = loader(cfg, Path(root))
    if not isinstance(data, Dataset):
        name = getattr(getattr(loader, "func", loader), "__name__", repr(loader))
        raise ConfigError("data.loader._target_", f"{name} returned {type(data).__name__}, not "
                          "a Dataset", "name a loader of gancompare.data.datasets, as conf/data/ "
                          "does")
    if data.is_image and resolution is not None:
        data.train, data.test = resize(data.train, resolution), resize(data.test, resolution)
    return data


def require_idx_files(root: Path, folder: str) -> None:
    """MNIST / Fashion-MNIST must have been put in place by the set-up."""
    if not data_sources.is_complete(Path(root) / folder / "raw"):
        raise ConfigError("paths.data", f"{folder} is not set up under {root}",
                          "run `make data` (or python scripts/prepare_data.py --root "
                          f"{root}), or point paths.data to a folder that holds it")


def mnist(cfg: DictConfig, root: Path) -> Dataset:
    """MNIST's digits (those of `data.classes`, or all)."""
    from torchvision import datasets

    return _torchvision_digits(cfg, datasets.MNIST, root)


def fashion_mnist(cfg: DictConfig, root: Path) -> Dataset:
    """Fashion-MNIST's clothes (those of `data.classes`, or all)."""
    from torchvision import datasets

    return _torchvision_digits(cfg, datasets.FashionMNIST, root)


def _torchvision_digits(cfg: DictConfig, cls: type, root: Path) -> Dataset:
    require_idx_files(root, cls.__name__)
    splits = []
    for train in (True, False):
        ds = cls(str(root), train=train, download=False)
        images, labels = ds.data.unsqueeze(1), ds.targets
        if cfg.get("classes") is not None:
            keep = torch.isin(labels, torch.tensor(list(cfg.classes)))
            if not keep.any():
                raise ConfigError("data.classes", f"no {cls.__name__} image has a class in "
                                  f"{list(cfg.classes)}", "use class indices 0-9")
            images, labels = images[keep], labels[keep]
        splits.append((images, labels))
    (train, train_labels), (test, test_labels) = splits
    return Dataset(cfg.name, train, test, train_labels, test_labels, num_classes=10)


def stacked_mnist(cfg: DictConfig, root: Path) -> Dataset:
    """Three random MNIST digits as the R, G, B channels: 1,000 modes (Metz et al. 2017)."""
    from torchvision import datasets

    require_idx_files(root, "MNIST")
    digits_from = cfg.get("digits_from", "train")
    if digits_from not in ("train", "train+test"):
        raise ConfigError("data.digits_from", f"unknown value '{digits_from}'",
                          "choose train (the test stacks stay apart) or train+test (VEEGAN's "
                          "and PacGAN's pool of all 70,000 digits)")
    generator = np.random.default_rng(cfg.seed)
    train_split, test_split = (datasets.MNIST(str(root), train=t, download=False)
                               for t in (True, False))
    pools = {"train": (train_split.data, train_split.targets),
             "train+test": (torch.cat([train_split.data, test_split.data]),
                            torch.cat([train_split.targets, test_split.targets]))}
    splits = []
    for (pool, pool_digits), n in ((pools[digits_from], cfg.n_samples),
                                   ((test_split.data, test_split.targets), cfg.n_test_samples)):
        idx = torch.from_numpy(generator.integers(0, len(pool_digits), size=(n, 3)))
        images = pool[idx]  # [n, 3, 28, 28]
        digits = pool_digits[idx]
        splits.append((images, digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]))
    (train, train_labels), (test, test_labels) = splits
    return Dataset(cfg.name, train, test, train_labels, test_labels, num_classes=1000)


def mixture(cfg: DictConfig, root: Path) -> Dataset:
    """A 2-D Gaussian mixture of mixtures.py (`data.mixture`), drawn from `data.seed`."""
    if cfg.mixture not in MIXTURES:
        raise ConfigError("data.mixture", f"unknown mixture '{cfg.mixture}'",
                          f"choose one of {', '.join(MIXTURES)}")
    points = MIXTURES[cfg.mixture]()
    generator = torch.Generator().manual_seed(int(cfg.seed))
    train = points.sample(int(cfg.n_samples), generator)
    test = points.sample(int(cfg.n_test_samples), generator)
    return Dataset(cfg.name, train, test, mixture=points)


def image_folder(cfg: DictConfig, root: Path) -> Dataset:
    """Every .jpg/.jpeg/.png under `data.path`, resized to `data.resolution` (cached)."""
    folder = Path(cfg.path)
    if not folder.is_dir():
        raise ConfigError("data.path", f"image folder {folder} does not exist", ZALANDO_HELP)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ConfigError("data.path", f"no .jpg/.jpeg/.png image under {folder}", ZALANDO_HELP)
    resolution = int(cfg.resolution)
    images = _cached_folder_tensor(files, folder, resolution, root / "cache")
    # No official split: the evaluation reference is the training folder itself.
    return Dataset(cfg.name, images, images)


def _cached_folder_tensor(files: list[Path], folder: Path, resolution: int, cache: Path) -> Tensor:
    """Decoding ~16k photos takes minutes, so the resized tensor is cached, keyed by the files."""
    key = hashlib.sha1(f"{folder.resolve()}|{resolution}".encode())
    for f in files:
        stat = f.stat()
        key.update(f"{f.relative_to(folder)}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    path = cache / f"image-folder-{key.hexdigest()[:16]}-{resolution}.pt"
    if path.is_file():
        return torch.load(path, weights_only=True)
    log.info("Decoding %d images from %s at %d×%d (cached afterwards in %s)",
             len(files), folder, resolution, resolution, path)
    with ThreadPoolExecutor(max_workers=4) as pool:
        decoded = list(pool.map(lambda f: _read_image(f, resolution), files))
    good = [d for d in decoded if d is not None]
    if len(good) < len(decoded):
        log.warning("Skipped %d unreadable image files under %s", len(decoded) - len(good), folder)
    if not good:
        raise ConfigError("data.path", f"no readable image under {folder}", ZALANDO_HELP)
    images = torch.from_numpy(np.stack(good)).permute(0, 3, 1, 2).contiguous()
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(images, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)
    return images


def _read_image(path: Path, resolution: int) -> np.ndarray | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.draft("RGB", (resolution * 2, resolution * 2))  # fast JPEG downscale on decode
            rgb = img.convert("RGB").resize((resolution, resolution), Image.Resampling.BICUBIC)
            return np.asarray(rgb, dtype=np.uint8)
    except (OSError, UnidentifiedImageError):
        return None
