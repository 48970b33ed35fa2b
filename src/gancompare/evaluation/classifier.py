"""Domain classifiers for MNIST and Fashion-MNIST, trained by the project (no weights download).

Their penultimate activations (128-d) are the default feature space for FID, NDB and PRDC on
MNIST-like data, and their predictions give class coverage (as TF-GAN's MNIST score does with
its own classifier). A classifier is cached under <data root>/classifiers/, keyed by a hash of
the training files and the recipe below; change either and it is trained again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gancompare import data_sources
from gancompare.errors import ConfigError

log = logging.getLogger(__name__)

RECIPES = {
    # epochs, learning rate and batch reach >= 99.0 % (MNIST) and >= 91 % (Fashion) on test.
    "mnist": {"version": 1, "epochs": 3, "lr": 3e-3, "batch_size": 128, "seed": 0},
    "fashion-mnist": {"version": 1, "epochs": 6, "lr": 3e-3, "batch_size": 128, "seed": 0},
}
REQUIRED_ACCURACY = {"mnist": 0.990, "fashion-mnist": 0.91}
FEATURE_DIM = 128


class DomainClassifier(nn.Module):
    """A small VGG-style CNN for 28×28 grayscale digits or clothes, inputs in [-1, 1]."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                    nn.ReLU(), nn.MaxPool2d(2)]

        self.body = nn.Sequential(*block(1, 32), *block(32, 64), *block(64, 128),  # 28→14→7→3
                                  nn.Flatten(), nn.Linear(128 * 3 * 3, FEATURE_DIM, bias=False),
                                  nn.BatchNorm1d(FEATURE_DIM), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(FEATURE_DIM, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))

    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.body(x)
        return features, self.head(features)


def _load_split(domain: str, root: Path, train: bool) -> tuple[Tensor, Tensor]:
    from torchvision import datasets

    cls = datasets.MNIST if domain == "mnist" else datasets.FashionMNIST
    if not data_sources.is_complete(Path(root) / cls.__name__ / "raw"):
        raise FileNotFoundError(f"{cls.__name__} is not set up under {root}: run make data")
    ds = cls(str(root), train=train, download=False)
    return ds.data.unsqueeze(1).float().div(127.5).sub(1.0), ds.targets


def cache_path(domain: str, root: Path) -> Path:
    folder = "MNIST" if domain == "mnist" else "FashionMNIST"
    digest = hashlib.sha256(json.dumps(RECIPES[domain], sort_keys=True).encode())
    for name in sorted(data_sources.IDX_FILES):
        digest.update(data_sources.sha256(Path(root) / folder / "raw" / name).encode())
    return Path(root) / "classifiers" / f"{domain}-{digest.hexdigest()[:12]}.pt"


@torch.no_grad()
def accuracy(model: DomainClassifier, images: Tensor, labels: Tensor,
             device: torch.device) -> float:
    model.eval()
    correct = sum((model(x.to(device)).argmax(1).cpu() == y).sum().item()
                  for x, y in zip(images.split(1000), labels.split(1000), strict=True))
    return correct / len(labels)


def train_classifier(domain: str, root: Path,
                     device: torch.device) -> tuple[DomainClassifier, dict]:
    recipe = RECIPES[domain]
    torch.manual_seed(recipe["seed"])
    x_train, y_train = _load_split(domain, root, train=True)
    x_test, y_test = _load_split(domain, root, train=False)
    model = DomainClassifier().to(device)
    steps_per_epoch = len(x_train) // recipe["batch_size"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe["lr"], total_steps=recipe["epochs"] * steps_per_epoch)
    started = time.perf_counter()
    for epoch in range(recipe["epochs"]):
        model.train()
        order = torch.randperm(len(x_train))
        for i in range(steps_per_epoch):
            idx = order[i * recipe["batch_size"]:(i + 1) * recipe["batch_size"]]
            x, y = x_train[idx].to(device), y_train[idx].to(device)
            if domain == "fashion-mnist":  # horizontal flips: clothes are left-right symmetric
                flip = torch.rand(len(x), device=device) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            loss = F.cross_entropy(model(x), y, label_smoothing=0.05)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        log.info("%s classifier: epoch %d/%d done (%.0f s)", domain, epoch + 1, recipe["epochs"],
                 time.perf_counter() - started)
    test_accuracy = accuracy(model, x_test, y_test, device)
    info = {"domain": domain, "recipe": recipe, "test_accuracy": test_accuracy,
            "train_seconds": time.perf_counter() - started}
    if test_accuracy < REQUIRED_ACCURACY[domain]:
        raise RuntimeError(f"{domain} classifier reached {test_accuracy:.4f} test accuracy, below "
                           f"the required {REQUIRED_ACCURACY[domain]}: its features would not be "
                           "a trustworthy metric space")
    return model.eval(), info


def load_classifier(domain: str, root: Path,
                    device: torch.device) -> tuple[DomainClassifier, dict]:
    """The cached classifier for `domain` (mnist | fashion-mnist). Training it is part of the
    set-up (`make data`, `train_and_cache`), never of a metric call."""
    if domain not in RECIPES:
        raise ConfigError("data.classifier", f"no domain classifier for '{domain}'",
                          f"choose one of {', '.join(RECIPES)}, or null")
    try:
        path = cache_path(domain, root)
    except FileNotFoundError:  # the training files themselves are missing
        path = None
    if path is None or not path.is_file():
        raise ConfigError("eval.feature_space", f"the {domain} classifier the metrics use is not "
                          f"set up under {Path(root) / 'classifiers'}", "run `make data` (trains "
                          "it once, 2-5 min on CPU), or set eval.feature_space=pixels")
    state = torch.load(path, map_location=device, weights_only=True)
    model = DomainClassifier().to(device)
    model.load_state_dict(state["model"])
    return model.eval(), state["info"]


def train_and_cache(domain: str, root: Path, device: torch.device) -> dict:
    """Set-up: train the classifier for `domain` unless it is cached; return its info."""
    path = cache_path(domain, root)
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)["info"]
    log.info("Training the %s classifier (cached at %s)", domain, path)
    model, info = train_classifier(domain, root, device)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "info": info}, tmp)
    tmp.replace(path)
    log.info("%s classifier: test accuracy %.4f", domain, info["test_accuracy"])
    return info
