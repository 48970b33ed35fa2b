"""Sample-quality and mode-coverage metrics on feature vectors (numpy in, floats out).

- Fréchet distance: pytorch-fid's numerically careful implementation (sqrtm, eps retry on a
  singular product, refusal of large imaginary parts).
- KID (Bińkowski et al. 2018): torch-fidelity's unbiased MMD estimate with the cubic polynomial
  kernel, averaged over random subsets; unbiased at any sample count, so it is the figure to
  read for the 1,000-sample epoch evaluations (FID is biased upwards at small n).
- NDB/K (Richardson & Weiss 2018): k-means bins on real features, a two-proportion z-test per bin.
- Precision / recall / density / coverage (Naeem et al. 2020): the `prdc` package.
- Class coverage, distinct fraction, 2-D mixture metrics (PacGAN) and Stacked-MNIST modes.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from pytorch_fid.fid_score import calculate_frechet_distance
from scipy import stats
from scipy.linalg import LinAlgWarning
from scipy.sparse.csgraph import connected_components
from scipy.spatial.distance import jensenshannon
from sklearn.cluster import KMeans
from sklearn.neighbors import NearestNeighbors, radius_neighbors_graph

from gancompare.mixtures import GaussianMixture


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, dtype=np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)). A singular product is retried with eps
    on the diagonals by pytorch-fid, so scipy's singular-matrix warning is expected noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LinAlgWarning)
        warnings.filterwarnings("ignore", message=".*`disp` argument is deprecated",
                                category=DeprecationWarning)  # pytorch-fid's sqrtm call
        return float(calculate_frechet_distance(np.atleast_1d(mu1), np.atleast_2d(sigma1),
                                                np.atleast_1d(mu2), np.atleast_2d(sigma2)))


def kid(real: np.ndarray, fake: np.ndarray, subset_size: int = 1000, subsets: int = 100,
        seed: int = 0) -> dict[str, float]:
    """Kernel Inception Distance in any feature space (mean and std over subsets), through
    torch-fidelity; subsets shrink to the smaller sample set when it has fewer points."""
    import torch
    from torch_fidelity.metric_kid import (
        KEY_METRIC_KID_MEAN,
        KEY_METRIC_KID_STD,
        kid_features_to_metric,
    )

    size = min(subset_size, len(real), len(fake))
    result = kid_features_to_metric(torch.from_numpy(np.asarray(real)),
                                    torch.from_numpy(np.asarray(fake)), kid_subsets=subsets,
                                    kid_subset_size=size, kid_degree=3, kid_gamma=None,
                                    kid_coef0=1, rng_seed=seed, verbose=False)
    return {"kid": result[KEY_METRIC_KID_MEAN], "kid_std": result[KEY_METRIC_KID_STD]}


@dataclass
class NdbBins:
    """K-means bins fitted on real features, with the real proportion of each bin."""

    kmeans: KMeans
    real_counts: np.ndarray

    @classmethod
    def fit(cls, real: np.ndarray, k: int = 100, seed: int = 0) -> NdbBins:
        """K bins, fewer when there are under 10 real samples a bin (a small image folder)."""
        k = max(2, min(k, len(real) // 10))
        kmeans = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(real)
        return cls(kmeans, np.bincount(kmeans.labels_, minlength=k))

    def score(self, samples: np.ndarray, alpha: float = 0.05) -> dict[str, float]:
        """Number of statistically different bins (two-proportion z-test, pooled variance),
        NDB/K, and the Jensen-Shannon divergence between the bin proportions."""
        k = len(self.real_counts)
        counts = np.bincount(self.kmeans.predict(samples), minlength=k)
        n_real, n_gen = self.real_counts.sum(), counts.sum()
        p_real, p_gen = self.real_counts / n_real, counts / n_gen
        pooled = (self.real_counts + counts) / (n_real + n_gen)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n_real + 1 / n_gen))
        z = np.divide(p_gen - p_real, se, out=np.zeros(k), where=se > 0)
        different = int((2 * stats.norm.sf(np.abs(z)) < alpha).sum())
        return {"ndb": float(different), "ndb_k": different / k,
                "ndb_js": float(jensenshannon(p_real, p_gen, base=2) ** 2)}


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    from prdc import compute_prdc

    with contextlib.redirect_stdout(io.StringIO()):  # it prints the sample counts
        result = compute_prdc(real_features=np.asarray(real, dtype=np.float32),
                              fake_features=np.asarray(fake, dtype=np.float32), nearest_k=k)
    return {name: float(value) for name, value in result.items()}


def class_histogram(predictions: np.ndarray, num_classes: int) -> np.ndarray:
    return np.bincount(predictions, minlength=num_classes) / max(len(predictions), 1)


def class_coverage(predictions: np.ndarray, reference: np.ndarray, num_classes: int,
                   min_fraction: float = 0.01) -> dict[str, float]:
    """Classes produced (a class counts at >= min_fraction of samples) and KL(p_gen || p_ref)
    of the predicted class histograms (p_ref floored at 1e-6 so a stray class stays finite)."""
    p_gen = class_histogram(predictions, num_classes)
    p_ref = np.maximum(reference, 1e-6)
    p_ref = p_ref / p_ref.sum()
    nonzero = p_gen > 0
    kl = float(np.sum(p_gen[nonzero] * np.log(p_gen[nonzero] / p_ref[nonzero])))
    return {"classes": float((p_gen >= min_fraction).sum()), "class_kl": kl}


def nearest_neighbour_distances(features: np.ndarray) -> np.ndarray:
    distances, _ = NearestNeighbors(n_neighbors=2).fit(features).kneighbors(features)
    return distances[:, 1]


def distinct_fraction(features: np.ndarray, radius: float) -> float:
    """Distinct samples / samples, where samples closer than `radius` (chained) count once.
    `radius` comes from real data, so real samples score close to 1."""
    graph = radius_neighbors_graph(features, radius=radius, mode="connectivity")
    n_groups, _ = connected_components(graph, directed=False)
    return n_groups / len(features)


def mixture_metrics(points: np.ndarray, mixture: GaussianMixture,
                    threshold: float = 3.0) -> dict[str, float]:
    """PacGAN's protocol: a sample is high quality within `threshold` standard deviations of its
    nearest mode; a mode is captured when it has a high-quality sample; reverse KL is
    KL(p_gen || uniform) of the high-quality samples' modes."""
    distances = np.linalg.norm(points[:, None, :] - mixture.means[None, :, :], axis=2)
    nearest = distances.argmin(axis=1)
    good = distances[np.arange(len(points)), nearest] < threshold * mixture.std
    counts = np.bincount(nearest[good], minlength=mixture.n_modes)
    return {"modes": float((counts > 0).sum()), "high_quality": float(good.mean()),
            "reverse_kl": kl_to_uniform(counts)}


def kl_to_uniform(counts: np.ndarray) -> float:
    """KL(p || uniform over len(counts)) of a histogram; inf when it is empty."""
    total = counts.sum()
    if total == 0:
        return float("inf")
    p = counts[counts > 0] / total
    return float(np.sum(p * np.log(p * len(counts))))


def stacked_mnist_modes(digits: np.ndarray) -> dict[str, float]:
    """digits: [N, 3] predicted digit per channel -> modes among 1,000 and KL to uniform."""
    modes = digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]
    counts = np.bincount(modes, minlength=1000)
    return {"modes": float((counts > 0).sum()), "kl": kl_to_uniform(counts)}
