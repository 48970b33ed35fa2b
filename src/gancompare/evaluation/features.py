"""Feature spaces for the metrics. Each has a `name` that every metric computed in it carries
(`fid_mnist_cnn`, `precision_inception`, ...), so no number is read in the wrong space.

- `<domain>_cnn`: the project's own MNIST / Fashion-MNIST classifier (penultimate 128-d); the
  default for MNIST-like data. Stacked MNIST: each channel through the MNIST classifier, the
  three feature vectors concatenated (384-d), one predicted digit per channel.
- `inception`: pytorch-fid's FID Inception (pool3, 2048-d), when `eval.inception_weights` points
  to its weights file (pt_inception-2015-12-05-6726825d.pth); nothing is downloaded.
- `pixels16`: the documented fallback for other images without Inception weights: images
  area-downsampled to 16×16 and flattened. Crude, but deterministic and comparable across runs.
- `points`: 2-D samples as they are.
"""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F
from torch import Tensor

from gancompare.errors import ConfigError
from gancompare.evaluation.classifier import load_classifier


class FeatureSpace:
    name = "identity"
    num_classes: int | None = None  # set when the space also predicts classes

    def __init__(self, device: torch.device) -> None:
        self.device = device

    @torch.no_grad()
    def __call__(self, samples: Tensor, batch: int = 2000) -> tuple[Tensor, Tensor | None]:
        """Features [N, d] (float32) and, where the space has a classifier, predictions [N] or
        [N, 3], both on the evaluation device."""
        features, predictions = [], []
        for chunk in samples.split(batch):
            f, p = self.embed(chunk.to(self.device))
            features.append(f.float())
            if p is not None:
                predictions.append(p)
        return torch.cat(features), torch.cat(predictions) if predictions else None

    def embed(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        return x.flatten(1), None


class PointSpace(FeatureSpace):
    name = "points"


class PixelSpace(FeatureSpace):
    name = "pixels16"

    def embed(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        return F.adaptive_avg_pool2d(x, 16).flatten(1), None


def _as_28_gray(x: Tensor) -> Tensor:
    if x.shape[-2:] != (28, 28):
        x = F.interpolate(x, size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
    return x


class ClassifierSpace(FeatureSpace):
    num_classes = 10

    def __init__(self, domain: str, device: torch.device,
                 weights: str | Path | None = None) -> None:
        super().__init__(device)
        self.name = f"{domain.replace('-', '_').replace('fashion_mnist', 'fashion')}_cnn"
        self.model, self.info = load_classifier(domain, device, weights)
        self.model.to(memory_format=torch.channels_last)  # oneDNN's and cuDNN's fast layout

    def embed(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        x = _as_28_gray(x)
        if x.shape[1] != 1:  # colour samples from a 3-channel model: luminance
            x = x.mean(dim=1, keepdim=True)
        x = x.contiguous(memory_format=torch.channels_last)
        features, logits = self.model.features_and_logits(x)
        return features, logits.argmax(1)


class StackedClassifierSpace(ClassifierSpace):
    """Stacked MNIST: classify each colour channel as a digit."""

    num_classes = 1000

    def __init__(self, device: torch.device, weights: str | Path | None = None) -> None:
        super().__init__("mnist", device, weights)
        self.name = "mnist_cnn_x3"

    def embed(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        x = _as_28_gray(x)
        n, c = x.shape[:2]
        x = x.reshape(n * c, 1, 28, 28).contiguous(memory_format=torch.channels_last)
        features, logits = self.model.features_and_logits(x)
        return features.reshape(n, -1), logits.argmax(1).reshape(n, c)


class InceptionSpace(FeatureSpace):
    name = "inception"

    def __init__(self, weights: Path, device: torch.device) -> None:
        super().__init__(device)
        weights = Path(weights)
        if not weights.is_file():
            raise ConfigError("eval.inception_weights", f"no file at {weights}",
                              "point it to pytorch-fid's pt_inception-2015-12-05-6726825d.pth, "
                              "or set it to null for the documented fallback")
        from pytorch_fid import inception

        state = torch.load(weights, map_location="cpu", weights_only=True)
        # pytorch-fid downloads its weights; hand it the local file instead.
        with mock.patch.object(inception, "load_state_dict_from_url", return_value=state):
            self.model = inception.InceptionV3([3]).to(device).eval()

    def embed(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        return self.model((x + 1) / 2)[0].flatten(1), None  # it expects [0, 1]


def feature_space(choice: str, data_cfg, is_image: bool, inception_weights: str | None,
                  device: torch.device, classifier_weights: str | None = None) -> FeatureSpace:
    """`eval.feature_space`: auto | classifier | inception | pixels; `classifier_weights`:
    eval.classifier_weights (None: the shipped classifiers)."""
    if not is_image:
        return PointSpace(device)
    domain = data_cfg.get("classifier")
    if choice == "auto":
        choice = "classifier" if domain else ("inception" if inception_weights else "pixels")
    if choice == "classifier":
        if not domain:
            raise ConfigError("eval.feature_space", f"data={data_cfg.name} has no domain "
                              "classifier", "use inception (with eval.inception_weights) or pixels")
        if data_cfg.source == "stacked-mnist":
            return StackedClassifierSpace(device, classifier_weights)
        return ClassifierSpace(domain, device, classifier_weights)
    if choice == "inception":
        if not inception_weights:
            raise ConfigError("eval.inception_weights", "eval.feature_space=inception needs the "
                              "weights file", "set eval.inception_weights=/path/to/"
                              "pt_inception-2015-12-05-6726825d.pth")
        return InceptionSpace(Path(inception_weights), device)
    if choice == "pixels":
        return PixelSpace(device)
    raise ConfigError("eval.feature_space", f"unknown feature space '{choice}'",
                      "choose auto, classifier, inception or pixels")
