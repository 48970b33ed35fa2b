"""The label hacks (smoothing, noisy) and their refusal for losses without labels."""

from __future__ import annotations

import math

import pytest
import torch

from gancompare.errors import ConfigError
from gancompare.step.hacks import Labels, check_hacks


def test_smoothing_draws_stay_in_the_configured_ranges():
    torch.manual_seed(0)
    labels = Labels({"smoothing": {"real": [0.7, 1.2], "fake": [0.0, 0.3]}}, torch.device("cpu"))
    real, fake = labels(20000, 20000)
    assert real.min() >= 0.7 and real.max() <= 1.2 and fake.min() >= 0.0 and fake.max() <= 0.3
    assert real.mean().item() == pytest.approx(0.95, abs=0.01)
    one_sided = Labels({"smoothing": {"real": [0.7, 1.2], "fake": None}}, torch.device("cpu"))
    assert (one_sided(10, 500)[1] == 0).all()


def test_noisy_labels_flip_about_five_percent():
    torch.manual_seed(0)
    n = 20000
    real, fake = Labels({"noisy": {"flip": 0.05}}, torch.device("cpu"))(n, n)
    # Binomial(n, 0.05): sd = sqrt(n p (1 - p)) ~ 31; allow 5 sd.
    for flipped in ((real == 0).sum().item(), (fake == 1).sum().item()):
        assert abs(flipped - 0.05 * n) < 5 * math.sqrt(n * 0.05 * 0.95)
    assert set(real.unique().tolist()) == {0.0, 1.0}


def test_without_hacks_the_labels_are_one_and_zero():
    real, fake = Labels({}, torch.device("cpu"))(3, 4)
    assert real.tolist() == [1.0] * 3 and fake.tolist() == [0.0] * 4


@pytest.mark.parametrize("hack, key, value", [("smoothing", "hacks.smoothing.real", "[1.2,0.7]"),
                                              ("smoothing", "hacks.smoothing.real", "[-0.1,1]"),
                                              ("noisy", "hacks.noisy.flip", "0.7")])
def test_bad_hack_settings_are_refused(hack, key, value):
    from conftest import make_cfg

    from gancompare.config import check_config

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        check_config(make_cfg(f"hacks=[{hack}]", f"{key}={value}"))


@pytest.mark.parametrize("loss", ["wasserstein", "hinge"])
def test_label_hacks_are_refused_for_losses_without_labels(loss):
    with pytest.raises(ConfigError, match=f"hacks: smoothing changes D's labels, but loss={loss}"):
        check_hacks({"smoothing": {"real": [0.7, 1.2]}}, uses_labels=False, loss=loss)
    check_hacks({"separate-batches": {}}, uses_labels=False, loss=loss)  # means something here
    with pytest.raises(ConfigError, match="unknown hack 'nosy'"):
        check_hacks({"nosy": {}}, uses_labels=True, loss="lsgan")
