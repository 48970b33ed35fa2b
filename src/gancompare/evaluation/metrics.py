"""Sample-quality and mode-coverage metrics on feature vectors: torch tensors in, floats out.

The O(n^2) work (moments, pairwise distances, k-th neighbours, bin assignment) runs in torch on
the device that holds the features; only small results come back to the host.
- Fréchet distance: moments in float64 on the device; pytorch-fid's numerically careful
  distance on them (sqrtm, eps retry on a singular product, refusal of large imaginary parts).
- KID (Bińkowski et al. 2018): the unbiased MMD estimate with the cubic polynomial kernel,
  averaged over random subsets as torch-fidelity does (its oracle in the tests); unbiased at any
  sample count, so it is the figure to read for the 1,000-sample epoch evaluations (FID is
  biased upwards at small n).
- NDB/K (Richardson & Weiss 2018): k-means bins fitted on real features (scikit-learn, once), a
  two-proportion z-test per bin; samples are assigned to bins on the device.
- Precision / recall / density / coverage (Naeem et al. 2020): `torch.cdist` + `kthvalue`, the
  same rules as the `prdc` package (the tests keep it as the oracle).
- Distinct fraction: connected components of the radius graph, by label propagation on the
  device (scipy's connected_components is the oracle).
- Class coverage, 2-D mixture metrics (PacGAN) and Stacked-MNIST modes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from pytorch_fid.fid_score import calculate_frechet_distance
from scipy import stats
from scipy.linalg import LinAlgWarning
from scipy.spatial.distance import jensenshannon
from sklearn.cluster import KMeans
from torch import Tensor

from gancompare.data.mixtures import GaussianMixture

CHUNK = 4096  # rows of a distance matrix at a time: 4096 x 10k floats = 320 MB in float64
LABEL_CHUNK = 1024


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
    """Kernel Inception Distance in any feature space: the mean and std over random subsets of
    the unbiased MMD^2 with the kernel (x.y / d + 1)^3, exactly as torch-fidelity computes it
    (the same subsets, drawn from its RandomState(seed)), on the device in float64. Each kernel
    matrix is formed once, in row chunks; a subset's sums are w^T K w with its 0/1 mask w, so the
    subsets cost matrix-vector products instead of kernels of their own. Subsets shrink to the
    smaller sample set when it has fewer points."""
    m = min(subset_size, len(real), len(fake))
    rng = np.random.RandomState(seed)
    # torch-fidelity's order: a real subset, then a fake one
    picks = [(rng.choice(len(real), m, replace=False), rng.choice(len(fake), m, replace=False))
             for _ in range(subsets)]
    if 3 * subsets * m * m < (len(real) + len(fake)) ** 2:  # subsets cheaper than full kernels
        mmd2 = torch.stack([_mmd2(real[torch.from_numpy(i).to(real.device)],
                                  fake[torch.from_numpy(j).to(real.device)]) for i, j in picks])
        return {"kid": mmd2.mean().item(), "kid_std": mmd2.std(unbiased=False).item()}
    w_real = torch.zeros(len(real), subsets, dtype=torch.float64)
    w_fake = torch.zeros(len(fake), subsets, dtype=torch.float64)
    for s, (i, j) in enumerate(picks):
        w_real[i, s], w_fake[j, s] = 1.0, 1.0
    w_real, w_fake = w_real.to(real.device), w_fake.to(real.device)
    xx = _subset_kernel_sums(real, real, w_real, w_real)
    yy = _subset_kernel_sums(fake, fake, w_fake, w_fake)
    xy = _subset_kernel_sums(real, fake, w_real, w_fake)
    diag_xx = w_real.T @ _kernel_diagonal(real)
    diag_yy = w_fake.T @ _kernel_diagonal(fake)
    mmd2 = (xx - diag_xx + yy - diag_yy) / (m * (m - 1)) - 2 * xy / (m * m)
    return {"kid": mmd2.mean().item(), "kid_std": mmd2.std(unbiased=False).item()}


def _mmd2(x: Tensor, y: Tensor) -> Tensor:
    """torch-fidelity's unbiased MMD^2 of one subset pair."""
    x, y = x.double(), y.double()
    m = len(x)
    k_xx, k_yy = _kernel(x, x), _kernel(y, y)
    return ((k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum())
            / (m * (m - 1)) - 2 * _kernel(x, y).sum() / (m * m))


def _kernel(a: Tensor, b: Tensor) -> Tensor:
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def _kernel_diagonal(x: Tensor) -> Tensor:
    x = x.double()
    return ((x * x).sum(dim=1) / x.shape[1] + 1.0) ** 3


def _subset_kernel_sums(a: Tensor, b: Tensor, w_a: Tensor, w_b: Tensor) -> Tensor:
    """For every subset s: sum over its rows i of a and columns j of b of K(a_i, b_j)."""
    a, b = a.double(), b.double()
    total = torch.zeros(w_a.shape[1], dtype=torch.float64, device=a.device)
    for start in range(0, len(a), CHUNK):
        block = _kernel(a[start:start + CHUNK], b) @ w_b  # [rows, subsets]
        total += (block * w_a[start:start + CHUNK]).sum(dim=0)
    return total


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


def prdc(real: Tensor, fake: Tensor, k: int = 5,
         real_radii: Tensor | None = None) -> dict[str, float]:
    """Precision, recall, density and coverage with k nearest neighbours (Naeem et al. 2020).
    `real_radii` (kth_neighbour_distances(real, k)) can be passed in when real is reused."""
    real_radii = kth_neighbour_distances(real, k) if real_radii is None else real_radii
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
    """Distinct samples / samples, where samples closer than `radius` (chained) count once:
    the connected components of the radius graph. `radius` comes from real data, so real
    samples score close to 1. On the device: the graph as a boolean matrix, then min-label
    propagation with pointer jumping (a collapsed generator's dense graph converges in a few
    rounds)."""
    n = len(features)
    adjacency = torch.cat([_distances(chunk, features) <= radius
                           for chunk in features.split(LABEL_CHUNK)])
    labels = torch.arange(n, device=features.device)
    while True:
        smallest = torch.cat([torch.where(rows, labels, n).amin(dim=1)
                              for rows in adjacency.split(LABEL_CHUNK)])
        smallest = smallest[smallest]  # jump: take the label of one's label
        if torch.equal(smallest, labels):
            return labels.unique().numel() / n
        labels = smallest


def mean_pairwise_distance(features: Tensor) -> float:
    """Mean distance between two different samples: how far apart the samples lie, not chained
    like `distinct_fraction` (one sample for every latent gives 0)."""
    n = len(features)
    if n < 2:
        return 0.0
    features = features.double()
    total = sum(float(torch.cdist(chunk, features).sum()) for chunk in features.split(CHUNK))
    return total / (n * (n - 1))


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
