"""Metrics against known answers, in the project's own feature spaces."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import DATA_ROOT, make_cfg

from gancompare.datasets import load_dataset, to_model_space
from gancompare.evaluation import metrics
from gancompare.evaluation.classifier import REQUIRED_ACCURACY, accuracy, load_classifier
from gancompare.evaluation.features import ClassifierSpace
from gancompare.mixtures import grid, ring

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def mnist():
    """MNIST train/test with labels, and the classifier feature space."""
    data = load_dataset(make_cfg("data=fashion", "data.source=mnist").data, None, CPU)
    return data, ClassifierSpace("mnist", DATA_ROOT, CPU)


@pytest.fixture(scope="module")
def features(mnist):
    data, space = mnist
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(data), generator=generator)
    idx, held_out = order[:5000], order[5000:10000]  # disjoint random parts of one distribution
    test_idx = torch.randperm(len(data.test), generator=generator)[:5000]
    train_f, _ = space(to_model_space(data.train[idx]))
    held_out_f, _ = space(to_model_space(data.train[held_out]))
    test_f, test_pred = space(to_model_space(data.test[test_idx]))
    return {"train": train_f, "train_labels": data.train_labels[idx].numpy(),
            "held_out": held_out_f, "test": test_f, "test_pred": test_pred,
            "test_labels": data.test_labels[test_idx].numpy()}


@pytest.mark.parametrize("domain", ["mnist", "fashion-mnist"])
def test_domain_classifiers_reach_the_required_accuracy(domain):
    model, info = load_classifier(domain, DATA_ROOT, CPU)
    assert info["test_accuracy"] >= REQUIRED_ACCURACY[domain]
    cfg = make_cfg("data=fashion", f"data.source={domain}").data
    data = load_dataset(cfg, None, CPU)  # re-measured, not just read from the cache
    measured = accuracy(model, to_model_space(data.test), data.test_labels, CPU)
    assert measured == pytest.approx(info["test_accuracy"], abs=1e-4)


def test_frechet_distance_matches_the_closed_form_for_gaussians():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    var1, var2 = rng.uniform(0.5, 2, size=6), rng.uniform(0.5, 2, size=6)
    # Diagonal covariances commute: Tr(S1 + S2 - 2 sqrt(S1 S2)) = sum (s1 + s2 - 2 sqrt(s1 s2)).
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    got = metrics.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert got == pytest.approx(expected, rel=1e-9)
    # A full-rank non-diagonal case: rotate both by the same orthogonal matrix (FD invariant).
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    rotated = metrics.frechet_distance(q @ mu1, q @ np.diag(var1) @ q.T, q @ mu2,
                                       q @ np.diag(var2) @ q.T)
    assert rotated == pytest.approx(expected, rel=1e-6)
    assert metrics.frechet_distance(mu1, np.diag(var1), mu1, np.diag(var1)) == \
        pytest.approx(0, abs=1e-6)


def test_fid_between_real_splits_is_far_below_fid_of_one_class(features):
    test_stats = metrics.gaussian_stats(features["test"])
    real_vs_real = metrics.frechet_distance(*metrics.gaussian_stats(features["train"]),
                                            *test_stats)
    ones = features["train"][features["train_labels"] == 1]
    one_class = metrics.frechet_distance(*metrics.gaussian_stats(ones), *test_stats)
    assert real_vs_real < 0.05 * one_class
    assert real_vs_real < 5 and one_class > 50


def test_ndb_is_near_zero_for_held_out_real_data_and_large_for_one_class(features):
    bins = metrics.NdbBins.fit(features["train"], k=100, seed=0)
    held_out = bins.score(features["held_out"])
    one_class = bins.score(features["test"][features["test_labels"] == 3])
    assert held_out["ndb_k"] <= 0.1  # alpha = 0.05: ~5 false positives expected at most
    assert one_class["ndb_k"] >= 0.5
    assert held_out["ndb_js"] < 0.05 < one_class["ndb_js"]


def test_prdc_is_one_for_one_distribution_and_zero_for_disjoint_sets():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3000, 8)), rng.normal(size=(3000, 8))
    same = metrics.prdc(a, b, k=5)
    # Expected values for identical distributions: ~1 (density ~1, coverage 1 - 2^-k ~ 0.97).
    for name in ("precision", "recall", "coverage"):
        assert same[name] > 0.9, name
    assert same["density"] == pytest.approx(1.0, abs=0.1)
    far = metrics.prdc(a, b + 100.0, k=5)
    assert all(value == 0 for value in far.values())


def test_class_coverage_of_one_class_is_one_of_ten(features):
    reference = metrics.class_histogram(features["test_pred"], 10)
    ones = features["test_pred"][features["test_labels"] == 1]
    result = metrics.class_coverage(ones, reference, 10)
    assert result["classes"] == 1 and result["class_kl"] == pytest.approx(math.log(1 / 0.1135),
                                                                          rel=0.05)
    everything = metrics.class_coverage(features["test_pred"], reference, 10)
    assert everything["classes"] == 10 and everything["class_kl"] == pytest.approx(0, abs=1e-9)


def test_distinct_fraction_spots_near_duplicates(features):
    radius = float(np.quantile(metrics.nearest_neighbour_distances(features["train"][:3000]),
                               0.01))
    assert metrics.distinct_fraction(features["test"][:3000], radius) > 0.9
    few = np.repeat(features["test"][:30], 100, axis=0) + 1e-6 * np.random.default_rng(0) \
        .normal(size=(3000, features["test"].shape[1]))
    assert metrics.distinct_fraction(few, radius) == pytest.approx(0.01, abs=0.002)


@pytest.mark.parametrize("mixture", [ring(), grid()], ids=["ring8", "grid25"])
def test_true_mixture_samples_capture_every_mode_with_high_quality(mixture):
    generator = torch.Generator().manual_seed(0)
    points = mixture.sample(2500, generator).numpy()
    result = metrics.mixture_metrics(points, mixture)
    assert result["modes"] == mixture.n_modes
    # Within 3 sigma in 2-D: 1 - exp(-9/2) = 98.9 % of a Gaussian's mass.
    assert result["high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)
    assert result["reverse_kl"] < 0.02
    one_mode = mixture.means[0] + mixture.std * np.random.default_rng(0).normal(size=(2500, 2))
    single = metrics.mixture_metrics(one_mode, mixture)
    assert single["modes"] == 1
    assert single["reverse_kl"] == pytest.approx(math.log(mixture.n_modes), rel=1e-6)


def test_stacked_mnist_modes_and_kl():
    rng = np.random.default_rng(0)
    uniform = metrics.stacked_mnist_modes(rng.integers(0, 10, size=(26000, 3)))
    assert uniform["modes"] >= 999 and uniform["kl"] < 0.05
    collapsed = metrics.stacked_mnist_modes(np.tile([[1, 2, 3]], (26000, 1)))
    assert collapsed["modes"] == 1 and collapsed["kl"] == pytest.approx(math.log(1000))
