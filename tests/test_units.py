"""One way to build every unit: a new loss, model and data set are each a unit plus a YAML file,
found by `_target_` with nothing registered anywhere else."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import make_cfg
from torch import nn

from gancompare.build import build
from gancompare.data.datasets import Dataset
from gancompare.errors import ConfigError
from gancompare.networks.layers import Discriminator
from gancompare.step.losses import SideLoss, critic_g
from gancompare.units import build_unit


def squared_hinge() -> SideLoss:
    """A loss no file of the project knows: D pays relu(1 ∓ D)²."""
    return SideLoss(lambda out, t: (1 - out).relu().pow(2).mean(),
                    lambda out, t: (1 + out).relu().pow(2).mean(), critic_g,
                    uses_labels=False, threshold=0.0)


def tiny_networks(shape, latent_dim, d_norm, g_norm, image_output, pack):
    """(G, D) with one hidden layer each."""
    size = shape[0]
    generator = nn.Sequential(nn.Linear(latent_dim, 16), nn.ReLU(), nn.Linear(16, size))
    discriminator = nn.Sequential(nn.Linear(size * pack, 16), nn.ReLU(), nn.Linear(16, 1))
    return generator, Discriminator(discriminator, pack)


def two_blobs(cfg, root: Path) -> Dataset:
    """Points around (±cfg.offset, 0)."""
    generator = torch.Generator().manual_seed(int(cfg.seed))
    points = torch.randn(512, 2, generator=generator) * 0.1
    points[:, 0] += torch.where(torch.arange(512) % 2 == 0, cfg.offset, -cfg.offset)
    return Dataset(cfg.name, points[:384], points[384:])


UNITS = {
    "loss/squared-hinge.yaml": "name: squared-hinge\nlabel: squared hinge\ncolour: '#123456'\n"
                               "objective: {_target_: test_units.squared_hinge}\n",
    "model/tiny.yaml": "name: tiny\nnetworks: {_target_: test_units.tiny_networks, "
                       "_partial_: true}\nlatent_dim: 3\nlatent_distribution: normal\n"
                       "resolution: null\nd_norm: none\ng_norm: none\ninit_std: 0.1\n"
                       "norm_init_std: 0.1\npack: 1\n",
    "data/two-blobs.yaml": "name: two-blobs\nsource: points\nloader: {_target_: "
                           "test_units.two_blobs, _partial_: true}\noffset: 2.0\nseed: 3\n"
                           "classifier: null\nbatch_size: 32\n",
}


def test_a_new_loss_model_and_data_set_are_each_a_unit_and_a_yaml_file(tmp_path):
    for name, text in UNITS.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    cfg = make_cfg(f"hydra.searchpath=[file://{tmp_path}]", "loss=squared-hinge", "model=tiny",
                   "data=two-blobs", "hacks=[]", "trainer.precision=32", "eval.final_samples=0",
                   "eval.every_epoch=false")
    built = build(cfg, device="cpu")
    assert built.gan.objective.g_fake is critic_g
    layer = built.gan.generator[0]
    assert isinstance(layer, nn.Linear) and layer.in_features == 3
    assert built.data.train.shape == (384, 2) and built.data.train[:, 0].abs().mean() > 1.5
    before = [p.detach().clone() for p in built.gan.discriminator.parameters()]
    figures = built.gan.step()
    assert torch.isfinite(figures["d_loss"]) and torch.isfinite(figures["g_loss"])
    after = list(built.gan.discriminator.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    # D's loss is the new unit's: relu(1 - D(x))² + relu(1 + D(G(z)))² at D's outputs
    with torch.no_grad():
        out_real = built.gan.D(built.data.train[:64])
        want = (1 - out_real).relu().pow(2).mean()
    assert built.gan.objective.d_real(out_real, None).item() == pytest.approx(want.item())


@pytest.mark.parametrize(("spec", "problem"), [
    ({"_target_": "test_units.nowhere"}, "cannot be built"),
    ({"_target_": "test_units.squared_hinge", "margin": 2}, "cannot be built"),
    ({"lr": 1e-3}, "names no unit"),
    (None, "names no unit"),
], ids=["misspelt", "unknown-argument", "no-target", "absent"])
def test_a_unit_that_cannot_be_built_is_one_line_naming_its_key(spec, problem):
    with pytest.raises(ConfigError, match=rf"^some.key.*: .*{problem}.*\. Fix: the fix$"):
        build_unit(spec, "some.key", "the fix", SideLoss)
