"""Domain classifiers for MNIST and Fashion-MNIST: the feature space of FID, KID, NDB, PRDC and
class coverage on MNIST-like data (as TF-GAN's MNIST score uses its own classifier).

Their weights ship with the project (`weights/<domain>.pt`, about 1 MB each, sha256-pinned in
SHIPPED_SHA256, loaded weights-only), as Inception-FID pins its network: the same samples then
get the same FID on every machine. Training one again gives other weights on another CPU (its
kernels sum in another order), so retraining is its own command (`scripts/train_classifier.py`)
and a retrained file is used only when a run asks for it (`eval.classifier_weights=<file>`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gancompare.data import sources as data_sources
from gancompare.errors import ConfigError

log = logging.getLogger(__name__)

RECIPES = {
    # epochs, learning rate and batch reach >= 99.0 % (MNIST) and >= 91 % (Fashion) on test.
    "mnist": {"version": 1, "epochs": 3, "lr": 3e-3, "batch_size": 128, "seed": 0},
    "fashion-mnist": {"version": 1, "epochs": 6, "lr": 3e-3, "batch_size": 128, "seed": 0},
}
REQUIRED_ACCURACY = {"mnist": 0.990, "fashion-mnist": 0.91}
FEATURE_DIM = 128
WEIGHTS = Path(__file__).with_name("weights")
# The weights every number in docs/results.md was computed with (see its "Feature space"), each
# trained once by the recipe above (scripts/train_classifier.py --ship prints a new pin).
SHIPPED_SHA256 = {
    "mnist": "590cda130ec2f1f55269d2ec6ba47447791060747ca9599456b7e015da4b6057",  # 99.49 %
    "fashion-mnist": "5237343e6d9477cdd2b7fd5e7fc76cb1f55018c474a399308da2b78dca54fdc4",  # 92.83 %
}


def shipped_path(domain: str) -> Path:
    return WEIGHTS / f"{domain}.pt"


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


def load_classifier(domain: str, device: torch.device,
                    weights: str | Path | None = None) -> tuple[DomainClassifier, dict]:
    """The classifier for `domain` (mnist | fashion-mnist): the shipped weights (sha256-checked),
    or `weights`, a file written by scripts/train_classifier.py (`eval.classifier_weights`)."""
    if domain not in RECIPES:
        raise ConfigError("data.classifier", f"no domain classifier for '{domain}'",
                          f"choose one of {', '.join(RECIPES)}, or null")
    if weights is None:
        path = shipped_path(domain)
        if not path.is_file() or data_sources.sha256(path) != SHIPPED_SHA256[domain]:
            raise ConfigError("eval.classifier_weights", f"the shipped {domain} classifier "
                              f"{path} is missing or does not match its pinned sha256",
                              f"restore it from the repository (`git checkout -- {path}`)")
    else:
        path = Path(weights)
        if not path.is_file():
            raise ConfigError("eval.classifier_weights", f"no file at {path}",
                              "give a file written by scripts/train_classifier.py, or null for "
                              "the shipped weights")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        info, model = state["info"], DomainClassifier().to(device)
        model.load_state_dict(state["model"])
    except Exception as error:  # noqa: BLE001  (any unreadable or foreign file)
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise ConfigError("eval.classifier_weights", f"{path} is not a classifier file of "
                          f"scripts/train_classifier.py ({reason})", "retrain it, or set "
                          "eval.classifier_weights=null for the shipped weights") from None
    if info.get("domain") != domain:
        raise ConfigError("eval.classifier_weights", f"{path} is the {info.get('domain')} "
                          f"classifier; this data set is read by the {domain} one",
                          f"give a {domain} file, or null for the shipped weights")
    return model.eval(), info


def save_classifier(model: DomainClassifier, info: dict, path: Path) -> str:
    """Write a classifier file (atomically); its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "info": info}, tmp)
    tmp.replace(path)
    return data_sources.sha256(path)
