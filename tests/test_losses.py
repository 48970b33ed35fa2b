"""Each loss against its formula, numerical stability and saturation."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import CONF
from omegaconf import OmegaConf

from gancompare.errors import ConfigError
from gancompare.step import losses
from gancompare.step.losses import build_objective

OBJECTIVES = {name: build_objective({"_target_": f"gancompare.step.losses.{name}"}) for name in
              ("minimax", "non_saturating", "wasserstein", "least_squares", "hinge")}
RELATIVISTIC = {name: build_objective({"_target_": f"gancompare.step.losses.{name}"}) for name in
                ("relativistic_pairing", "relativistic_average")}

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
                                       "lsgan", "hinge", "rpgan", "ragan"}
    colours = set()
    for path in files:
        cfg = OmegaConf.load(path)
        assert isinstance(build_objective(cfg.objective), losses.Objective)
        assert cfg.label and cfg.colour.startswith("#")
        colours.add(cfg.colour)
    assert len(colours) == len(files)  # one colour per loss


@pytest.mark.parametrize(("spec", "problem"), [
    ({"_target_": "gancompare.step.losses.nope"}, r"\._target_: 'gancompare.step.losses.nope' "
                                                  r"cannot be built"),
    ({"_target_": "gancompare.step.losses.bce"}, r"\._target_: 'gancompare.step.losses.bce' "
                                                 r"cannot be built"),  # needs arguments
    ({"_target_": "torch.nn.Identity"}, r"\._target_: .torch.nn.Identity. built Identity, "
                                        r"which is not SideLoss or PairLoss"),
    ("gancompare.step.losses.hinge", r": 'gancompare.step.losses.hinge' names no unit"),
], ids=["misspelt", "needs-arguments", "not-a-loss", "import-path"])
def test_an_objective_that_is_not_a_loss_is_one_line(spec, problem):
    with pytest.raises(ConfigError, match=r"^loss.objective" + problem + r".*Fix: .*"
                                          r"_target_: gancompare.step.losses.hinge"):
        build_objective(spec)


@pytest.mark.parametrize("name", sorted({*OBJECTIVES, *RELATIVISTIC}))
def test_losses_stay_finite_at_extreme_logits(name):
    extreme = torch.tensor([-200.0, -50.0, 50.0, 200.0], requires_grad=True)
    objective = {**OBJECTIVES, **RELATIVISTIC}[name]
    terms = objective.d(extreme, extreme.flip(0), torch.ones(4), torch.zeros(4))
    total = sum(terms) + objective.g(extreme.flip(0), extreme)
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




# What the losses gave before they saw both sides (commit 75fe077's d_real, d_fake and g), in
# float64 on fixed logits: D's terms on (LOGITS, flipped LOGITS) with soft targets, G's on LOGITS.
BEFORE = {
    "minimax": (0.9694294986234121, 1.1134294986234123, -1.2674294986234123),
    "non_saturating": (0.9694294986234121, 1.1134294986234123, 1.0274294986234125),
    "wasserstein": (-0.24, 0.24, -0.24),
    "least_squares": (2.7350000000000003, 2.4390000000000005, 2.834),
    "hinge": (1.3599999999999999, 1.64, -0.24),
}


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_every_side_loss_keeps_its_numbers_through_the_two_sided_interface(name):
    logits = torch.tensor([-3.0, -0.5, 0.0, 0.7, 4.0], dtype=torch.float64)
    soft = torch.tensor([0.7, 0.9, 1.1, 1.2, 0.8], dtype=torch.float64)
    objective = OBJECTIVES[name]
    real, fake = objective.d(logits, logits.flip(0), soft, 1 - soft)
    g = objective.g(logits, logits.flip(0))  # a side loss ignores D's outputs on real samples
    assert (real.item(), fake.item(), g.item()) == BEFORE[name]  # exactly
    assert (objective.separable, objective.g_sees_real) == (True, False)


REAL = torch.tensor([1.3, -0.2, 0.8, 2.5, -1.1, 0.4], dtype=torch.float64)
FAKE = torch.tensor([-0.7, 0.1, -2.0, 0.9, 0.3, -0.5], dtype=torch.float64)


def test_rpgan_is_r3gans_formula():
    """brownvc/R3GAN, R3GAN/Trainer.py: RelativisticLogits = RealLogits - FakeLogits (D) and
    FakeLogits - RealLogits (G); AdversarialLoss = softplus(-RelativisticLogits), per sample."""
    rpgan = RELATIVISTIC["relativistic_pairing"]
    d_expected = torch.nn.functional.softplus(-(REAL - FAKE)).mean()
    g_expected = torch.nn.functional.softplus(-(FAKE - REAL)).mean()
    real, fake = rpgan.d(REAL, FAKE, None, None)
    assert (real + fake).item() == pytest.approx(d_expected.item(), rel=1e-15)
    assert real.item() == fake.item()  # one term, logged half on each side
    assert rpgan.g(FAKE, REAL).item() == pytest.approx(g_expected.item(), rel=1e-15)
    # pairing: D's loss depends on which real sample meets which generated one
    assert rpgan.d(REAL, FAKE.roll(1), None, None)[0].item() != real.item()


def test_ragan_is_the_relativisticgan_scripts_formula_not_its_readme_snippet():
    """AlexiaJM/RelativisticGAN, code/GAN_losses_iter.py, loss_D == 6, with its BCE_stable:
    errD = (BCE(y_pred - mean(y_pred_fake), 1) + BCE(y_pred_fake - mean(y_pred), 0)) / 2,
    errG = (BCE(y_pred - mean(y_pred_fake), 0) + BCE(y_pred_fake - mean(y_pred), 1)) / 2."""
    bce = torch.nn.BCEWithLogitsLoss()
    ones, zeros = torch.ones(6, dtype=torch.float64), torch.zeros(6, dtype=torch.float64)
    err_d = (bce(REAL - FAKE.mean(), ones) + bce(FAKE - REAL.mean(), zeros)) / 2
    err_g = (bce(REAL - FAKE.mean(), zeros) + bce(FAKE - REAL.mean(), ones)) / 2
    ragan = RELATIVISTIC["relativistic_average"]
    real, fake = ragan.d(REAL, FAKE, None, None)
    assert (real + fake).item() == pytest.approx(err_d.item(), rel=1e-14)
    assert real.item() == pytest.approx((bce(REAL - FAKE.mean(), ones) / 2).item(), rel=1e-14)
    assert ragan.g(FAKE, REAL).item() == pytest.approx(err_g.item(), rel=1e-14)
    readme = (bce(REAL - FAKE.mean(), ones) + bce(REAL - FAKE.mean(), ones)) / 2  # the typo
    assert (real + fake).item() != pytest.approx(readme.item(), rel=1e-2)


def test_a_relativistic_g_needs_and_moves_with_the_real_outputs():
    for objective in RELATIVISTIC.values():
        assert (objective.separable, objective.g_sees_real, objective.uses_labels,
                objective.has_accuracy) == (False, True, False, False)
        fake = FAKE.clone().requires_grad_(True)
        objective.g(fake, REAL).backward()
        assert fake.grad.abs().min() > 0  # every generated sample gets a gradient
        assert objective.g(FAKE, REAL + 1).item() > objective.g(FAKE, REAL).item()
        with pytest.raises(ValueError, match="needs D's outputs on real samples"):
            objective.g(FAKE)
