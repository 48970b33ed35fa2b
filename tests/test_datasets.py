"""Data sets (real files from the offline set-up) and the set-up's sources."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
import torch
from conftest import DATA_ROOT, make_cfg, write_image_folder

from gancompare.build import build
from gancompare.data import sources as data_sources
from gancompare.data.datasets import load_dataset

CPU = torch.device("cpu")


def data(*overrides, resolution=None):
    cfg = make_cfg(*overrides)
    return load_dataset(cfg.data, cfg.paths.data, resolution, CPU)


def test_mnist8_is_the_5851_training_eights_in_minus_one_to_one():
    mnist8 = data("data=mnist8")
    assert len(mnist8) == 5851 and mnist8.shape == (1, 28, 28)
    assert set(mnist8.train_labels.unique().tolist()) == {8} and len(mnist8.test) == 974
    batch = mnist8.sample(256)
    assert batch.min() >= -1 and batch.max() <= 1 and batch.min() == -1 and batch.max() == 1


def test_unit_real_range_feeds_d_images_in_0_1_and_metrics_read_g_in_minus_1_1():
    """data.real_range=unit (DCGAN-tensorflow's MNIST): D sees the same draws halved into
    [0, 1]; G's samples are mapped back by 2x - 1 for metrics and figures."""
    signed = build(make_cfg())  # seeds everything: each build's first draw is the same
    x_signed = signed.data.sample(500)
    unit = build(make_cfg("data.real_range=unit"))
    x_unit = unit.data.sample(500)
    assert x_unit.min() == 0 and x_unit.max() == 1 and torch.equal(x_unit, (x_signed + 1) / 2)
    assert x_signed.min() == -1  # and the signed default is untouched
    unit.gan.generator.eval()
    with torch.no_grad():
        raw = unit.gan.G(unit.fixed_z)
    assert torch.allclose(unit.gan.generate(unit.fixed_z), raw * 2 - 1)
    signed.gan.generator.eval()
    with torch.no_grad():
        assert torch.equal(signed.gan.generate(signed.fixed_z), signed.gan.G(signed.fixed_z))


def test_fashion_is_the_full_training_set_and_resizes_for_dcgan64():
    fashion = data("data=fashion")
    assert len(fashion) == 60000 and len(fashion.test) == 10000 and fashion.num_classes == 10
    big = data("data=fashion", resolution=64)
    assert big.shape == (1, 64, 64)
    # Resizing keeps the picture: mean intensity of each image barely moves.
    assert torch.allclose(big.train[:100].float().mean((1, 2, 3)),
                          fashion.train[:100].float().mean((1, 2, 3)), atol=2.0)


def test_setup_files_match_the_pinned_checksums():
    for name in data_sources.FASHION_GZ_SHA256:
        raw = DATA_ROOT / "FashionMNIST" / "raw" / name.removesuffix(".gz")
        assert raw.stat().st_size == data_sources.IDX_FILES[raw.name]
    assert data_sources.is_complete(DATA_ROOT / "MNIST" / "raw")
    cached = DATA_ROOT / "cache" / "mnist.pkl.gz"
    if cached.is_file():
        assert data_sources.sha256(cached) == data_sources.MNIST_PICKLE_SHA256


def test_a_tampered_source_is_never_used(tmp_path):
    source = tmp_path / "mnist.pkl.gz"
    with gzip.open(source, "wb") as f:
        f.write(b"not the real pickle")
    with pytest.raises(RuntimeError, match="does not match the pinned"):
        data_sources.verify_sha256(source, data_sources.MNIST_PICKLE_SHA256)


def test_mnist_setup_rebuilds_the_idx_files_from_the_verified_pickle(tmp_path):
    cached = DATA_ROOT / "cache" / "mnist.pkl.gz"
    if not cached.is_file():
        pytest.skip("MNIST came from another source on this machine")
    (tmp_path / "cache").mkdir()
    shutil.copy(cached, tmp_path / "cache" / "mnist.pkl.gz")
    raw = data_sources.ensure_mnist(tmp_path, log=lambda message: None)
    for name in data_sources.IDX_FILES:
        assert (raw / name).read_bytes() == (DATA_ROOT / "MNIST" / "raw" / name).read_bytes()


def test_image_folders_are_read_recursively_and_resized(tmp_path):
    folder = write_image_folder(tmp_path / "photos", n=10)
    photos = data("data=zalando", f"data.path={folder}", f"paths.data={tmp_path}")
    assert len(photos) == 10 and photos.shape == (3, 64, 64)
    assert any((tmp_path / "cache").glob("image-folder-*-64.pt"))  # decoded once, then cached
    small = data("data=zalando", f"data.path={folder}", f"paths.data={tmp_path}", resolution=28)
    assert small.shape == (3, 28, 28)


def test_mixtures_have_the_pacgan_modes():
    ring = data("data=ring8")
    assert len(ring) == 100000 and ring.shape == (2,) and ring.mixture.n_modes == 8
    radius = ring.train.norm(dim=1)
    assert radius.mean().item() == pytest.approx(1.0, abs=0.01)
    grid = data("data=grid25")
    assert grid.mixture.n_modes == 25
    assert sorted(set(np.round(grid.mixture.means[:, 0]).tolist())) == [-4, -2, 0, 2, 4]
    assert grid.train.abs().max() < 4.5


def test_stacked_mnist_stacks_three_digits():
    stacked = data("data=stacked-mnist")
    assert stacked.shape == (3, 28, 28) and stacked.num_classes == 1000
    assert len(stacked.train_labels.unique()) > 990  # 60k stacks cover nearly every mode




def test_veegan_stacks_draw_from_all_70000_digits():
    stacked = data("data=stacked-mnist", "data.n_samples=20000", "data.digits_from=train+test")
    from torchvision import datasets

    test_digits = datasets.MNIST(str(DATA_ROOT), train=False).data.flatten(1)
    test_ids = {bytes(d.numpy()) for d in test_digits}
    channels = stacked.train[:2000].flatten(0, 1).flatten(1)  # 6,000 digit images
    from_test = sum(bytes(c.numpy()) in test_ids for c in channels)
    assert 0.1 < from_test / len(channels) < 0.2  # 10,000 of 70,000 ≈ 14 %
    only_train = data("data=stacked-mnist", "data.n_samples=2000")
    assert not any(bytes(c.numpy()) in test_ids
                   for c in only_train.train[:300].flatten(0, 1).flatten(1))


def test_loading_never_fetches_missing_data(tmp_path):
    from gancompare.errors import ConfigError

    with pytest.raises(ConfigError, match=r"paths.data: MNIST is not set up under .*make data"):
        data("data=mnist8", f"paths.data={tmp_path}")
    assert list(tmp_path.iterdir()) == []  # nothing downloaded, nothing written


@pytest.mark.parametrize(("override", "problem"), [
    ("data.loader._target_=gancompare.data.datasets.mnist9", "cannot be built"),
    ("data.loader._target_=torch.nn.Identity", "Identity returned Identity, not a Dataset"),
    ("~data.loader", "names no unit"),
], ids=["misspelt", "not-a-loader", "absent"])
def test_a_data_set_without_a_loader_is_one_line(override, problem):
    from gancompare.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"^data.loader.*{problem}.*Fix: .*conf/data/"):
        data("data=mnist8", override)
