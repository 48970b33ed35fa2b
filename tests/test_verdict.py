"""The verdict rules on synthetic histories and figures with a known answer."""

from __future__ import annotations

import numpy as np
from conftest import make_cfg

from gancompare.evaluation.verdict import judge, oscillation, sustained_onset

RULES = make_cfg().verdict


def history(n=450, d_real=0.6, d_fake=0.6, g=1.0, acc_real=0.75, acc_fake=0.75, **overrides):
    steps = np.arange(1, n + 1, dtype=float)
    base = {"step": steps, "d_loss_real": np.full(n, d_real), "d_loss_fake": np.full(n, d_fake),
            "g_loss": np.full(n, g), "d_acc_real": np.full(n, acc_real),
            "d_acc_fake": np.full(n, acc_fake)}
    base.update(overrides)
    return base


HEALTHY = {"precision_mnist_cnn": 0.6, "density_mnist_cnn": 0.5, "coverage_mnist_cnn": 0.5,
           "distinct_mnist_cnn": 0.98, "spread_mnist_cnn": 1.0, "classes_mnist_cnn": 10.0}


def test_a_healthy_run_is_stable():
    result = judge(history(), HEALTHY, critic=False, divergence=None, rules=RULES,
                   known={"classes": 10})
    assert result["verdict"] == "stable" and result["rule"] == "none"


def test_a_non_finite_loss_is_diverged():
    result = judge(history(), {}, critic=False, divergence={"step": 120, "columns": ["g_loss"]},
                   rules=RULES)
    assert (result["verdict"], result["step"]) == ("diverged", 120)


def test_d_winning_for_good_is_a_convergence_failure_from_its_onset():
    n = 450
    d = np.where(np.arange(n) < 30, 0.6, 0.002)
    acc = np.where(np.arange(n) < 30, 0.8, 1.0)
    result = judge(history(d_loss_real=d, d_loss_fake=d, d_acc_real=acc, d_acc_fake=acc),
                   HEALTHY, critic=False, divergence=None, rules=RULES)
    assert (result["verdict"], result["rule"]) == ("convergence-failure", "d-wins")
    assert result["step"] == 31  # where D started winning for good
    late = np.where(np.arange(n) < 400, 0.6, 0.002)  # only the last 50 steps: not sustained
    acc_late = np.where(np.arange(n) < 400, 0.8, 1.0)
    brief = judge(history(d_loss_real=late, d_loss_fake=late, d_acc_real=acc_late,
                          d_acc_fake=acc_late), HEALTHY, critic=False, divergence=None, rules=RULES)
    assert brief["verdict"] == "stable"


def test_a_climbing_generator_loss_is_a_convergence_failure_while_d_spots_the_fakes():
    g = np.linspace(2, 12, 450)
    result = judge(history(g_loss=g, acc_fake=0.95), HEALTHY, critic=False, divergence=None,
                   rules=RULES)
    assert (result["verdict"], result["rule"]) == ("convergence-failure", "g-loss-climbing")
    # the same mean G loss while D is fooled by a quarter of the fakes: a heavy tail of
    # confidently rejected samples (the search's best non-saturating trial), not a lost G
    fooled = judge(history(g_loss=g, acc_fake=0.75), HEALTHY, critic=False, divergence=None,
                   rules=RULES)
    assert fooled["verdict"] == "stable"
    spotted_late = np.where(np.arange(450) < 400, 0.5, 0.95)  # the last fifth of the window
    late = judge(history(g_loss=g, d_acc_fake=spotted_late), HEALTHY, critic=False,
                 divergence=None, rules=RULES)
    assert late["rule"] == "g-loss-climbing"


def test_noise_samples_are_a_convergence_failure_for_any_loss():
    figures = {**HEALTHY, "precision_mnist_cnn": 0.0, "density_mnist_cnn": 0.0}
    result = judge(history(), figures, critic=True, divergence=None, rules=RULES)
    assert (result["verdict"], result["rule"]) == ("convergence-failure", "off-manifold")


def test_few_distinct_needs_samples_that_spread_less_than_the_real_data():
    # varied noisy samples in a tight cloud chain into one component (distinct ~0) while
    # they lie as far apart as real ones: not a collapse
    chained = {**HEALTHY, "distinct_mnist_cnn": 0.01, "spread_mnist_cnn": 0.9}
    assert judge(history(), chained, critic=False, divergence=None,
                 rules=RULES)["verdict"] == "stable"
    close = judge(history(), {**chained, "spread_mnist_cnn": 0.4}, critic=False,
                  divergence=None, rules=RULES)
    assert (close["verdict"], close["rule"]) == ("mode-collapse", "few-distinct")
    assert "spread_mnist_cnn=0.40 of the real data's" in close["reason"]
    # a run evaluated before spread was measured: the distinct fraction alone, as then
    older = {k: v for k, v in chained.items() if k != "spread_mnist_cnn"}
    assert judge(history(), older, critic=False, divergence=None,
                 rules=RULES)["rule"] == "few-distinct"


def test_coverage_rules_call_mode_collapse():
    cases = [({"distinct_mnist_cnn": 0.05, "spread_mnist_cnn": 0.3}, {}, "few-distinct"),
             ({"coverage_mnist_cnn": 0.01}, {}, "low-coverage"),
             ({"classes_mnist_cnn": 3.0}, {"classes": 10}, "missing-classes"),
             ({"mixture_modes": 3.0}, {"modes": 8}, "missing-modes"),
             ({"stacked_modes_mnist_cnn_x3": 90.0}, {"modes": 1000}, "missing-modes")]
    for change, known, rule in cases:
        result = judge(history(), {**HEALTHY, **change}, critic=False, divergence=None,
                       rules=RULES, known=known)
        assert (result["verdict"], result["rule"]) == ("mode-collapse", rule), change
    # One class of reference (mnist8): the class count says nothing.
    single = judge(history(), {**HEALTHY, "classes_mnist_cnn": 1.0}, critic=False,
                   divergence=None, rules=RULES, known={"classes": 1})
    assert single["verdict"] == "stable"


def test_an_oscillating_generator_loss_is_collapse_only_without_coverage_metrics():
    t = np.arange(450)
    g = 2 + np.sin(2 * np.pi * t / 25)  # period 25 steps, as in the tutorial
    curves = history(g_loss=g, acc_fake=0.97)
    alone = judge(curves, {}, critic=False, divergence=None, rules=RULES)
    assert (alone["verdict"], alone["rule"]) == ("mode-collapse", "g-loss-oscillation")
    assert alone["values"]["period_steps"] == 25
    confirmed_fine = judge(curves, HEALTHY, critic=False, divergence=None, rules=RULES)
    assert confirmed_fine["verdict"] == "stable"
    assert confirmed_fine["evidence"]["g_loss_oscillation"]["period_steps"] == 25


def test_helpers():
    condition = np.array([0, 0, 1, 1, 0, 1, 1, 1], dtype=bool)
    assert sustained_onset(condition, np.arange(1, 9), 0.8) == 3  # 5 of the last 6 hold
    assert sustained_onset(condition, np.arange(1, 9), 0.9) == 6
    assert sustained_onset(np.zeros(5, bool), np.arange(5), 0.8) is None
    noise = np.random.default_rng(0).normal(size=400)
    assert oscillation(noise)[0] < 0.3
