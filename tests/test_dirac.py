"""Dirac-GAN (Mescheder et al. 2018, section 2), built from the project's own losses and
regularisers, against the theory: which losses and penalties converge to the equilibrium
(0, 0), and the vector field and its linearisation in closed form.

Sign convention: our D's output is a logit of "real" and Mescheder's psi scores the other way,
so their start (theta, psi) = (1, 1) is our (1, -1), and their Jacobian [[0, -1/2], [1/2,
-gamma]] is our [[0, 1/2], [-1/2, -gamma]] (the same eigenvalues)."""

from __future__ import annotations

import cmath
import math

import pytest
import torch

from gancompare.dirac import DiracGAN
from gancompare.step import losses

START = (1.0, -1.0)  # Mescheder's (1, 1)
DISTANCE0 = math.sqrt(2)
SCHEMES = ("simultaneous", "alternating")


def distances(gan: DiracGAN, scheme: str) -> torch.Tensor:
    return gan.train(steps=1000, h=0.1, start=START, scheme=scheme).norm(dim=1)


def test_unregularised_minimax_spirals_out_simultaneously_and_circles_alternating():
    """As SPEC checked by hand: simultaneous ends at 2.65, alternating at 1.41 (start 1.41)."""
    simultaneous = distances(DiracGAN(losses.minimax()), "simultaneous")
    assert simultaneous[-1].item() == pytest.approx(2.65, abs=0.01)
    assert (simultaneous[1:] >= simultaneous[:-1] - 1e-12).all()  # outward at every step
    alternating = distances(DiracGAN(losses.minimax()), "alternating")
    assert alternating[-1].item() == pytest.approx(1.41, abs=0.01)
    assert alternating.min() > 0.97 * DISTANCE0  # circles: neither in nor out


@pytest.mark.parametrize("scheme", SCHEMES)
def test_unregularised_non_saturating_and_rpgan_do_not_converge(scheme):
    """Their continuous flow loses radius only at 4th order near (0, 0), where gradient descent
    gains it at 2nd order: the iterates settle on a cycle (radius 0.46 simultaneous, 0.27
    alternating at h = 0.1) instead of the equilibrium. So they come in from the start, unlike
    minimax, but stay 10^5 times farther out than R1 brings them (below)."""
    for objective in (losses.non_saturating(), losses.relativistic_pairing()):
        d = distances(DiracGAN(objective), scheme)
        assert d[500:].min() > 0.19 * DISTANCE0
        assert d[-1] > 0.98 * d[500:].min()  # not still shrinking


@pytest.mark.parametrize("scheme", SCHEMES)
def test_wgan_with_weight_clipping_does_not_converge(scheme):
    """psi is pinned at the clip +-c most of the time while theta circles 0: the distance never
    falls below c, and the iterates keep moving."""
    clip = 0.01
    path = DiracGAN(losses.wasserstein(), clip=clip).train(start=START, scheme=scheme)
    d = path.norm(dim=1)
    assert d.min() >= 0.99 * clip
    assert (path[-100:, 0].max() - path[-100:, 0].min()) > 1e-3  # theta still moving


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("penalty", ["r1_gamma", "r2_gamma"])
def test_r1_and_r2_converge(scheme, penalty):
    for objective in (losses.non_saturating(), losses.minimax(), losses.relativistic_pairing()):
        d = distances(DiracGAN(objective, **{penalty: 0.3}), scheme)
        assert d[-1] < 0.01 * DISTANCE0  # under 1 % of the start (measured: ~1e-6)
        assert d[-1] < 1e-5


@pytest.mark.parametrize(("theta", "psi"), [(0.5, -0.3), (1.0, 1.0), (-2.0, 0.7)])
def test_the_vector_field_is_the_closed_form(theta, psi):
    """D pays softplus(0) + softplus(psi theta) (+ gamma/2 psi^2 for R1, as grad_x D = psi), so
    psi' = -theta sigma(psi theta) - gamma psi; non-saturating G pays softplus(-psi theta):
    theta' = psi sigma(-psi theta); minimax G pays -softplus(psi theta): theta' = psi
    sigma(psi theta)."""
    t, p = torch.tensor(theta, dtype=torch.float64), torch.tensor(psi, dtype=torch.float64)
    s = torch.sigmoid
    for gamma in (0.0, 0.3):
        ns = DiracGAN(losses.non_saturating(), r1_gamma=gamma).field(t, p)
        mm = DiracGAN(losses.minimax(), r1_gamma=gamma).field(t, p)
        psi_dot = -t * s(p * t) - gamma * p
        torch.testing.assert_close(ns, torch.stack([p * s(-p * t), psi_dot]), rtol=1e-12,
                                   atol=1e-12)
        torch.testing.assert_close(mm, torch.stack([p * s(p * t), psi_dot]), rtol=1e-12,
                                   atol=1e-12)


@pytest.mark.parametrize("gamma", [0.3, 1.0, 2.0])
def test_r1s_linearisation_at_the_equilibrium_has_the_papers_eigenvalues(gamma):
    jacobian = DiracGAN(losses.non_saturating(), r1_gamma=gamma).jacobian(0.0, 0.0)
    torch.testing.assert_close(jacobian, torch.tensor([[0.0, 0.5], [-0.5, -gamma]],
                                                      dtype=torch.float64))
    eigenvalues = sorted(torch.linalg.eigvals(jacobian).tolist(), key=lambda z: (z.imag, z.real))
    root = cmath.sqrt(gamma ** 2 - 1)
    expected = sorted([(-gamma + root) / 2, (-gamma - root) / 2], key=lambda z: (z.imag, z.real))
    for got, want in zip(eigenvalues, expected, strict=True):
        assert abs(got - want) < 1e-12
    assert all(z.real < 0 for z in eigenvalues)  # locally convergent for any gamma > 0
    unregularised = DiracGAN(losses.non_saturating()).jacobian(0.0, 0.0)
    assert all(abs(z.real) < 1e-15 for z in torch.linalg.eigvals(unregularised).tolist())
