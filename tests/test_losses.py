"""Each loss against its formula, numerical stability, saturation and the gradient penalty."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import CONF
from omegaconf import OmegaConf
from torch import nn

from gancompare import losses
from gancompare.errors import ConfigError
from gancompare.losses import get_objective, gradient_penalty

OBJECTIVES = {name: get_objective(f"gancompare.losses.{name}") for name in
              ("minimax", "non_saturating", "wasserstein", "least_squares", "hinge")}

LOGITS = torch.tensor([-3.0, -0.5, 0.0, 0.7, 4.0])
ONES, ZEROS = torch.ones(5), torch.zeros(5)


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def test_minimax_and_non_saturating_match_the_formulas():
    d = [sigmoid(x) for x in LOGITS.tolist()]
    for name in ("minimax", "non_saturating"):
        objective = OBJECTIVES[name]
        assert objective.d_real(LOGITS, ONES).item() == pytest.approx(mean(-math.log(p) for p in d))
        assert objective.d_fake(LOGITS, ZEROS).item() == pytest.approx(
            mean(-math.log(1 - p) for p in d))
    # minimax: G minimises log(1 - D(G(z))); non-saturating: G minimises -log D(G(z))
    assert OBJECTIVES["minimax"].g(LOGITS).item() == pytest.approx(mean(math.log(1 - p) for p in d))
    assert OBJECTIVES["non_saturating"].g(LOGITS).item() == pytest.approx(
        mean(-math.log(p) for p in d))


def test_soft_labels_enter_the_cross_entropy():
    targets = torch.tensor([0.7, 0.9, 1.1, 1.2, 0.8])
    expected = mean(-(t * math.log(sigmoid(x)) + (1 - t) * math.log(1 - sigmoid(x)))
                    for x, t in zip(LOGITS.tolist(), targets.tolist(), strict=True))
    assert OBJECTIVES["non_saturating"].d_real(LOGITS, targets).item() == pytest.approx(expected)


def test_wasserstein_and_least_squares_match_the_formulas():
    f = LOGITS.tolist()
    wgan = OBJECTIVES["wasserstein"]
    assert wgan.d_real(LOGITS, ONES).item() + wgan.d_fake(LOGITS.flip(0), ZEROS).item() == \
        pytest.approx(mean(f[::-1]) - mean(f))  # E[f(G(z))] - E[f(x)]
    assert wgan.g(LOGITS).item() == pytest.approx(-mean(f))
    ls = OBJECTIVES["least_squares"]
    assert ls.d_real(LOGITS, ONES).item() == pytest.approx(mean(0.5 * (x - 1) ** 2 for x in f))
    assert ls.d_fake(LOGITS, ZEROS).item() == pytest.approx(mean(0.5 * x ** 2 for x in f))
    assert ls.g(LOGITS).item() == pytest.approx(mean(0.5 * (x - 1) ** 2 for x in f))


def test_hinge_matches_the_formula():
    f = LOGITS.tolist()
    hinge = OBJECTIVES["hinge"]
    assert hinge.d_real(LOGITS, ONES).item() == pytest.approx(mean(max(0, 1 - x) for x in f))
    assert hinge.d_fake(LOGITS, ZEROS).item() == pytest.approx(mean(max(0, 1 + x) for x in f))
    assert hinge.g(LOGITS).item() == pytest.approx(-mean(f))
    # Scores beyond the margins cost D nothing: D has won on these samples.
    assert hinge.d_real(torch.tensor([1.5, 3.0]), ONES[:2]).item() == 0
    assert (hinge.uses_labels, hinge.threshold) == (False, 0.0)


def test_every_loss_config_names_an_objective_with_a_label_and_a_colour():
    files = sorted((CONF / "loss").glob("*.yaml"))
    assert {f.stem for f in files} == {"minimax", "non-saturating", "wasserstein", "wgan-gp",
                                       "lsgan", "hinge"}
    colours = set()
    for path in files:
        cfg = OmegaConf.load(path)
        assert isinstance(get_objective(cfg.objective), losses.Objective)
        assert cfg.label and cfg.colour.startswith("#")
        colours.add(cfg.colour)
    assert len(colours) == len(files)  # one colour per loss


def test_an_unknown_objective_is_one_line():
    with pytest.raises(ConfigError, match=r"loss.objective: 'gancompare.losses.nope' is not an "
                                          r"Objective. Fix: .*gancompare.losses.hinge"):
        get_objective("gancompare.losses.nope")


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_losses_stay_finite_at_extreme_logits(name):
    extreme = torch.tensor([-200.0, -50.0, 50.0, 200.0], requires_grad=True)
    objective = OBJECTIVES[name]
    total = objective.d_real(extreme, torch.ones(4)) + objective.d_fake(extreme, torch.zeros(4)) \
        + objective.g(extreme)
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(extreme.grad).all()


def test_minimax_generator_gradient_vanishes_while_non_saturating_does_not():
    # D(G(z)) -> 0: D confidently rejects the samples (logit -> -inf).
    grads = {}
    for name in ("minimax", "non_saturating"):
        logits = torch.tensor([-15.0, -15.0], requires_grad=True)
        OBJECTIVES[name].g(logits).backward()
        grads[name] = logits.grad.abs().max().item()
    assert grads["minimax"] < 1e-6
    assert grads["non_saturating"] == pytest.approx(0.5, rel=1e-3)  # -(1 - D)/N with N = 2


def test_gradient_penalty_of_a_linear_critic_is_the_norm_gap_squared():
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(12, 1, bias=False))
    w = critic[1].weight.detach().flatten()
    real, fake = torch.randn(32, 3, 2, 2), torch.randn(32, 3, 2, 2)
    penalty = gradient_penalty(critic, real, fake)
    assert penalty.item() == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-5)
    with torch.no_grad():
        critic[1].weight.mul_(1 / w.norm())  # a 1-Lipschitz linear critic pays nothing
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(0.0, abs=1e-10)


