"""Per-run figures: the 10×10 sample grid, the 2-D scatter over the true modes, and curves.png."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import save_image  # noqa: E402

from gancompare.data.mixtures import GaussianMixture  # noqa: E402


@contextmanager
def written(path: Path) -> Iterator[Path]:
    """Write `path` whole or not at all: into <path>.tmp, renamed when done (a full disk leaves
    no truncated picture; run_dir.disk_faults removes the .tmp)."""
    partial = path.with_name(path.name + ".tmp")
    try:
        yield partial
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def save_sample_grid(images: torch.Tensor, path: Path, nrow: int = 10) -> None:
    """Images in [-1, 1] as one grid PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with written(path) as partial:
        save_image(images.detach().float().cpu(), partial, nrow=nrow, normalize=True,
                   value_range=(-1, 1), padding=2, pad_value=1.0, format="png")


def save_scatter(points: np.ndarray, mixture: GaussianMixture, path: Path, title: str = "") -> None:
    """Generated 2-D points over the true modes (3σ circles), as in PacGAN's figures."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.3, color="black", label="generated")
    for mean in mixture.means:
        ax.add_patch(plt.Circle(mean, 3 * mixture.std, color="tab:red", fill=False, lw=1))
    ax.scatter(mixture.means[:, 0], mixture.means[:, 1], marker="x", color="tab:red", s=20,
               label="true modes (3σ)")
    extent = np.abs(mixture.means).max() * 1.5 + 10 * mixture.std
    ax.set(xlim=(-extent, extent), ylim=(-extent, extent), xlabel="$x_1$", ylabel="$x_2$",
           title=title, aspect="equal")
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    with written(path) as partial:
        fig.savefig(partial, dpi=120, format="png")
    plt.close(fig)


def save_curves(history: Mapping[str, Sequence[float]], path: Path, critic: bool,
                title: str = "") -> None:
    """The tutorial's two panels: losses on top; D accuracy below (critic scores for a critic)."""
    steps = np.asarray(history["step"], dtype=float)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for key, label in (("d_loss_real", "D loss (real)"), ("d_loss_fake", "D loss (fake)"),
                       ("g_loss", "G loss")):
        top.plot(steps, history[key], label=label, lw=1)
    top.set(ylabel="loss", title=title)
    top.legend(loc="upper right", fontsize=8)
    if critic:
        panel = (("critic_real", "critic score (real)"), ("critic_fake", "critic score (fake)"),
                 ("wasserstein", "Wasserstein estimate"))
        bottom.set_ylabel("critic")
    else:
        panel = (("d_acc_real", "D accuracy (real)"), ("d_acc_fake", "D accuracy (fake)"))
        bottom.set(ylabel="accuracy", ylim=(-0.05, 1.05))
    for key, label in panel:
        bottom.plot(steps, history[key], label=label, lw=1)
    bottom.set_xlabel("step (generator updates)")
    bottom.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with written(path) as partial:
        fig.savefig(partial, dpi=110, format="png")
    plt.close(fig)
