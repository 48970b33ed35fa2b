"""`Evaluator.evaluate(sample, n)`: every metric that applies to the run's data set.

Used at each epoch end and every `eval.every_steps` steps (cheap: `eval.epoch_samples`), at the
end of a run (`eval.final_samples`, >= 10,000 by default) and by `src/evaluate.py` on a finished
run's checkpoint, through this one code path. Sampling runs under a forked RNG with its own
seed, so evaluating never changes the training stream (an evaluated run and a resumed run stay
identical to an uninterrupted one), and every evaluation of one generator sees the same latent
points.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cached_property

import numpy as np
import torch
from omegaconf import DictConfig
from torch import Tensor

from gancompare.data.datasets import Dataset, to_model_space
from gancompare.evaluation import metrics
from gancompare.evaluation.features import FeatureSpace, feature_space

log = logging.getLogger(__name__)

Sampler = Callable[[int], Tensor]


class Evaluator:
    def __init__(self, cfg: DictConfig, data_cfg: DictConfig, data: Dataset,
                 device: torch.device) -> None:
        """cfg: the run's `eval` group; data_cfg: its `data` group (which classifier applies)."""
        self.cfg, self.data_cfg, self.data, self.device = cfg, data_cfg, data, device
        self._radius: dict[int, float] = {}

    @cached_property
    def space(self) -> FeatureSpace:
        # .get: runs saved before these keys still re-evaluate
        return feature_space(self.cfg.feature_space, self.data_cfg, self.data.is_image,
                             self.cfg.inception_weights, self.device,
                             self.cfg.classifier_weights)

    @cached_property
    def reference(self) -> dict:
        """Real-data statistics, computed once: test-split moments for FID, a train subset for
        NDB bins, PRDC and the duplicate radius, and the class histogram of the test split."""
        generator = torch.Generator().manual_seed(0)
        test_features, test_predictions = self.space(to_model_space(self.data.test))
        n_train = min(len(self.data), int(self.cfg.reference_samples))
        idx = torch.randperm(len(self.data), generator=generator)[:n_train]
        train = self.data.train[idx.to(self.data.train.device)]
        train_features, _ = self.space(to_model_space(train))
        reference = {"test_stats": metrics.gaussian_stats(test_features),
                     "test_features": test_features,
                     "train_features": train_features,
                     "ndb_bins": metrics.NdbBins.fit(train_features, k=int(self.cfg.ndb_bins))}
        if test_predictions is not None and test_predictions.ndim == 1:
            reference["class_hist"] = metrics.class_histogram(test_predictions,
                                                              self.space.num_classes)
        return reference

    @property
    def known(self) -> dict[str, float]:
        """What a perfect generator shows here: the modes of the data set, and the classes the
        classifier finds in the test split (at >= 1 %)."""
        if self.data.mixture is not None:
            return {"modes": float(self.data.mixture.n_modes)}
        if self.data_cfg.source == "stacked-mnist":
            return {"modes": 1000.0}
        if "class_hist" in self.reference:
            return {"classes": float((self.reference["class_hist"] >= 0.01).sum())}
        return {}

    def duplicate_radius(self, n: int) -> float:
        """Distance below which two samples count as one: the `eval.duplicate_quantile` of
        nearest-neighbour distances among n real samples (NN distances shrink with n)."""
        n = min(n, len(self.reference["train_features"]))
        if n not in self._radius:
            nn_dist = metrics.nearest_neighbour_distances(self.reference["train_features"][:n])
            self._radius[n] = torch.quantile(nn_dist, float(self.cfg.duplicate_quantile)).item()
        return self._radius[n]

    def evaluate(self, sample: Sampler, n: int, prefix: str = "") -> dict[str, float]:
        """Metrics of n generated samples, named `<prefix><metric>_<feature space>`."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(self.cfg.seed))
            figures = self._evaluate(sample, int(n))
        return {f"{prefix}{k}": v for k, v in figures.items()}

    def _evaluate(self, sample: Sampler, n: int) -> dict[str, float]:
        figures: dict[str, float] = {}
        if self.data.mixture is not None:  # PacGAN protocol: a fixed 2,500 samples
            points = sample(int(self.cfg.mixture_samples)).cpu().numpy().astype(np.float64)
            figures.update({f"mixture_{k}": v for k, v in
                            metrics.mixture_metrics(points, self.data.mixture).items()})
        samples = sample(n)
        features, predictions = self.space(samples)
        if not torch.isfinite(features).all():
            log.warning("Generated samples give non-finite features; metrics skipped")
            return figures
        ref = self.reference
        space = self.space.name
        mu, sigma = metrics.gaussian_stats(features)
        figures[f"fid_{space}"] = metrics.frechet_distance(mu, sigma, *ref["test_stats"])
        figures.update({f"{k}_{space}": v for k, v in metrics.kid(
            ref["test_features"], features, int(self.cfg.kid_subset_size),
            int(self.cfg.kid_subsets)).items()})
        figures.update({f"{k}_{space}": v for k, v in ref["ndb_bins"].score(features).items()})
        cap, k = int(self.cfg.prdc_samples), int(self.cfg.prdc_k)
        if "prdc_real_radii" not in ref:  # the real side of PRDC, once per evaluator
            ref["prdc_real_radii"] = metrics.kth_neighbour_distances(
                ref["train_features"][:cap], k)
        figures.update({f"{name}_{space}": v for name, v in metrics.prdc(
            ref["train_features"][:cap], features[:cap], k, ref["prdc_real_radii"]).items()})
        figures[f"distinct_{space}"] = metrics.distinct_fraction(features,
                                                                 self.duplicate_radius(n))
        if "real_spread" not in ref:  # spread: generated / real mean pairwise distance
            ref["real_spread"] = metrics.mean_pairwise_distance(ref["train_features"][:cap])
        figures[f"spread_{space}"] = (metrics.mean_pairwise_distance(features[:cap])
                                      / max(ref["real_spread"], 1e-12))
        if predictions is not None and predictions.ndim == 2:  # Stacked MNIST: digit per channel
            stacked_n = int(self.cfg.stacked_samples)
            if stacked_n > n:
                _, more = self.space(sample(stacked_n - n))
                predictions = torch.cat([predictions, more])
            figures.update({f"stacked_{k}_{space}": v
                            for k, v in metrics.stacked_mnist_modes(predictions).items()})
        elif predictions is not None:
            figures.update({f"{k}_{space}": v for k, v in metrics.class_coverage(
                predictions, ref["class_hist"], self.space.num_classes).items()})
        return figures
