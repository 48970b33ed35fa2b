"""Sample-quality and mode-coverage metrics on feature vectors: torch tensors in, floats out.

The O(n^2) work (moments, pairwise distances, k-th neighbours, bin assignment) runs in torch on
the device that holds the features; only small results come back to the host.
- Fréchet distance: moments in float64 on the device; pytorch-fid's numerically careful
  distance on them (sqrtm, eps retry on a singular product, refusal of large imaginary parts).
- KID (Bińkowski et al. 2018): torch-fidelity's unbiased MMD estimate with the cubic polynomial
  kernel, averaged over random subsets; unbiased at any sample count, so it is the figure to
  read for the 1,000-sample epoch evaluations (FID is biased upwards at small n).
- NDB/K (Richardson & Weiss 2018): k-means bins fitted on real features (scikit-learn, once), a
  two-proportion z-test per bin; samples are assigned to bins on the device.
- Precision / recall / density / coverage (Naeem et al. 2020): `torch.cdist` + `kthvalue`, the
  same rules as the `prdc` package (the tests keep it as the oracle).
- Class coverage, distinct fraction, 2-D mixture metrics (PacGAN) and Stacked-MNIST modes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from pytorch_fid.fid_score import calculate_frechet_distance
from scipy import stats
from scipy.linalg import LinAlgWarning
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial.distance import jensenshannon
from sklearn.cluster import KMeans
from torch import Tensor

from gancompare.mixtures import GaussianMixture

CHUNK = 4096  # rows of a distance matrix at a time: 4096 x 10k floats = 160 MB


def gaussian_stats(features: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64, computed where the features are) for the Fréchet distance."""
    x = features.double()
    mu = x.mean(dim=0)
    centred = x - mu
    sigma = centred.T @ centred / max(len(x) - 1, 1)
    return mu.cpu().numpy(), sigma.cpu().numpy()


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


def kid(real: Tensor, fake: Tensor, subset_size: int = 1000, subsets: int = 100,
        seed: int = 0) -> dict[str, float]:
    """Kernel Inception Distance in any feature space (mean and std over subsets), through
    torch-fidelity; subsets shrink to the smaller sample set when it has fewer points."""
    from torch_fidelity.metric_kid import (
        KEY_METRIC_KID_MEAN,
        KEY_METRIC_KID_STD,
        kid_features_to_metric,
    )

    size = min(subset_size, len(real), len(fake))
    result = kid_features_to_metric(real.double().cpu(), fake.double().cpu(),
                                    kid_subsets=subsets, kid_subset_size=size, kid_degree=3,
                                    kid_gamma=None, kid_coef0=1, rng_seed=seed, verbose=False)
    return {"kid": result[KEY_METRIC_KID_MEAN], "kid_std": result[KEY_METRIC_KID_STD]}


def _distances(a: Tensor, b: Tensor) -> Tensor:
    """Euclidean distances [len(a), len(b)] in float64 (as scikit-learn computes them for the
    oracles' strict comparisons), in row chunks."""
    a, b = a.double(), b.double()
    return torch.cat([torch.cdist(chunk, b) for chunk in a.split(CHUNK)])


def kth_neighbour_distances(features: Tensor, k: int) -> Tensor:
    """Distance from each point to its k-th nearest other point (prdc's radii: the (k+1)-th
    smallest distance, the point itself being the first)."""
    return torch.cat([_distances(chunk, features).kthvalue(k + 1, dim=1).values
                      for chunk in features.split(CHUNK)])


def prdc(real: Tensor, fake: Tensor, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage with k nearest neighbours (Naeem et al. 2020)."""
    real_radii = kth_neighbour_distances(real, k)
    fake_radii = kth_neighbour_distances(fake, k)
    distances = _distances(real, fake)  # [real, fake]
    inside_real = distances < real_radii[:, None]
    return {
        "precision": inside_real.any(dim=0).double().mean().item(),
        "recall": (distances < fake_radii[None, :]).any(dim=1).double().mean().item(),
        "density": inside_real.sum(dim=0).double().mean().item() / k,
        "coverage": (distances.min(dim=1).values < real_radii).double().mean().item(),
    }


@dataclass
class NdbBins:
    """K-means bins fitted on real features, with the real proportion of each bin."""

    centres: Tensor  # [K, d] on the features' device
    real_counts: np.ndarray

    @classmethod
    def fit(cls, real: Tensor, k: int = 100, seed: int = 0) -> NdbBins:
        """K bins, fewer when there are under 10 real samples a bin (a small image folder)."""
        k = max(2, min(k, len(real) // 10))
        kmeans = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(
            real.double().cpu().numpy())
        centres = torch.as_tensor(kmeans.cluster_centers_, device=real.device)
        return cls(centres, np.bincount(kmeans.labels_, minlength=k))

    def assign(self, samples: Tensor) -> Tensor:
        """The nearest centre of each sample (what KMeans.predict does), on the device."""
        return _distances(samples, self.centres).argmin(dim=1)

    def score(self, samples: Tensor, alpha: float = 0.05) -> dict[str, float]:
        """Number of statistically different bins (two-proportion z-test, pooled variance),
        NDB/K, and the Jensen-Shannon divergence between the bin proportions."""
        k = len(self.real_counts)
        counts = torch.bincount(self.assign(samples), minlength=k).cpu().numpy()
        n_real, n_gen = self.real_counts.sum(), counts.sum()
        p_real, p_gen = self.real_counts / n_real, counts / n_gen
        pooled = (self.real_counts + counts) / (n_real + n_gen)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n_real + 1 / n_gen))
        z = np.divide(p_gen - p_real, se, out=np.zeros(k), where=se > 0)
        different = int((2 * stats.norm.sf(np.abs(z)) < alpha).sum())
        return {"ndb": float(different), "ndb_k": different / k,
                "ndb_js": float(jensenshannon(p_real, p_gen, base=2) ** 2)}


def class_histogram(predictions: Tensor, num_classes: int) -> np.ndarray:
    counts = torch.bincount(predictions.flatten().long(), minlength=num_classes)
    return counts.cpu().numpy() / max(len(predictions), 1)


def class_coverage(predictions: Tensor, reference: np.ndarray, num_classes: int,
                   min_fraction: float = 0.01) -> dict[str, float]:
    """Classes produced (a class counts at >= min_fraction of samples) and KL(p_gen || p_ref)
    of the predicted class histograms (p_ref floored at 1e-6 so a stray class stays finite)."""
    p_gen = class_histogram(predictions, num_classes)
    p_ref = np.maximum(reference, 1e-6)
    p_ref = p_ref / p_ref.sum()
    nonzero = p_gen > 0
    kl = float(np.sum(p_gen[nonzero] * np.log(p_gen[nonzero] / p_ref[nonzero])))
    return {"classes": float((p_gen >= min_fraction).sum()), "class_kl": kl}


def nearest_neighbour_distances(features: Tensor) -> Tensor:
    return kth_neighbour_distances(features, 1)


def distinct_fraction(features: Tensor, radius: float) -> float:
    """Distinct samples / samples, where samples closer than `radius` (chained) count once.
    `radius` comes from real data, so real samples score close to 1. The close pairs are found
    on the device; their connected components on the host (they are few)."""
    rows, cols = [], []
    for start in range(0, len(features), CHUNK):
        close = (_distances(features[start:start + CHUNK], features) <= radius).nonzero()
        rows.append(close[:, 0] + start)
        cols.append(close[:, 1])
    rows, cols = torch.cat(rows).cpu().numpy(), torch.cat(cols).cpu().numpy()
    n = len(features)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    n_groups, _ = connected_components(graph, directed=False)
    return n_groups / n


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


def stacked_mnist_modes(digits: Tensor) -> dict[str, float]:
    """digits: [N, 3] predicted digit per channel -> modes among 1,000 and KL to uniform."""
    modes = digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]
    counts = torch.bincount(modes.long(), minlength=1000).cpu().numpy()
    return {"modes": float((counts > 0).sum()), "kl": kl_to_uniform(counts)}
