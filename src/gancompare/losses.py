"""GAN losses as small pure units on D's raw outputs (logits or critic scores).

A loss is an `Objective`: three functions and two facts about D's output.
  d_real(out, target), d_fake(out, target): D's loss on real and on generated samples;
  g(out): G's loss on D's outputs for generated samples;
  uses_labels: whether `target` (1 real / 0 fake, or the hacks' smoothed and flipped labels)
    enters D's loss; the others ignore it, and label hacks are refused for them;
  threshold: where D's output separates "real" from "fake" (for D accuracy), None for a critic.
`conf/loss/<name>.yaml` names its objective by import path (`objective:
gancompare.losses.hinge`), so adding a loss is one `Objective` here plus one YAML file.
Everything is computed from logits with softplus / BCE-with-logits, so no sigmoid saturates to
log(0). The regularisers a loss config can carry, a gradient penalty and weight clipping, are the
two functions at the bottom.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gancompare.errors import ConfigError


@dataclass(frozen=True)
class Objective:
    d_real: Callable[[Tensor, Tensor], Tensor]
    d_fake: Callable[[Tensor, Tensor], Tensor]
    g: Callable[[Tensor], Tensor]
    uses_labels: bool
    threshold: float | None

    @property
    def has_accuracy(self) -> bool:
        """D's output has a real/fake threshold, so D accuracy means something."""
        return self.threshold is not None


def bce(out: Tensor, target: Tensor) -> Tensor:
    """-[t log D + (1 - t) log(1 - D)] with D = sigmoid(out), stable for any logit."""
    return F.binary_cross_entropy_with_logits(out, target)


def minimax_g(out: Tensor) -> Tensor:
    """G minimises log(1 - D(G(z))) = -softplus(out). Its gradient -sigmoid(out) vanishes as
    D(G(z)) -> 0: the saturation of Goodfellow et al. (2014)."""
    return -F.softplus(out).mean()


def non_saturating_g(out: Tensor) -> Tensor:
    """G maximises log D(G(z)), i.e. minimises softplus(-out); gradient -> -1 as D(G(z)) -> 0."""
    return F.softplus(-out).mean()


def critic_real(out: Tensor, target: Tensor) -> Tensor:
    return -out.mean()


def critic_fake(out: Tensor, target: Tensor) -> Tensor:
    return out.mean()


def critic_g(out: Tensor) -> Tensor:
    return -out.mean()


def least_squares_d(out: Tensor, target: Tensor) -> Tensor:
    """LSGAN (Mao et al. 2017), a-b-c = 0-1-1: 1/2 E[(D(x) - t)^2]."""
    return 0.5 * (out - target).pow(2).mean()


def least_squares_g(out: Tensor) -> Tensor:
    return 0.5 * (out - 1.0).pow(2).mean()


def hinge_real(out: Tensor, target: Tensor) -> Tensor:
    """Hinge (Lim & Ye 2017): D pays for real samples scored below +1 ..."""
    return F.relu(1.0 - out).mean()


def hinge_fake(out: Tensor, target: Tensor) -> Tensor:
    """... and for generated samples scored above -1."""
    return F.relu(1.0 + out).mean()


minimax = Objective(bce, bce, minimax_g, uses_labels=True, threshold=0.0)
non_saturating = Objective(bce, bce, non_saturating_g, uses_labels=True, threshold=0.0)
wasserstein = Objective(critic_real, critic_fake, critic_g, uses_labels=False, threshold=None)
least_squares = Objective(least_squares_d, least_squares_d, least_squares_g, uses_labels=True,
                          threshold=0.5)
# G's hinge loss is the Wasserstein one, -E[D(G(z))] (SN-GAN, BigGAN).
hinge = Objective(hinge_real, hinge_fake, critic_g, uses_labels=False, threshold=0.0)


def get_objective(path: str) -> Objective:
    """The `Objective` that `loss.objective` names by import path."""
    from hydra.utils import get_object

    try:
        objective = get_object(path)
    except Exception:
        objective = None
    if not isinstance(objective, Objective):
        raise ConfigError("loss.objective", f"'{path}' is not an Objective",
                          "name one by import path, e.g. gancompare.losses.hinge")
    return objective


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor,
                     alpha: Tensor | None = None, batch_dims: int = 1) -> Tensor:
    """E[(||grad f(x_hat)||_2 - 1)^2] on random interpolates x_hat of real and fake
    (Gulrajani et al. 2017). Multiply by lambda (`loss.gradient_penalty`) outside.
    The first `batch_dims` dimensions index samples (2: runs × samples, one mean per run);
    `alpha` (shape [*batch, 1, …]) is drawn uniformly unless given."""
    if alpha is None:
        alpha = torch.rand(real.shape[:batch_dims] + (1,) * (real.dim() - batch_dims),
                           device=real.device)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(batch_dims).norm(2, dim=-1) - 1).pow(2).mean(-1)


@torch.no_grad()
def clip_weights(module: nn.Module, limit: float) -> None:
    """WGAN's Lipschitz constraint: every critic parameter into [-limit, limit]."""
    for p in module.parameters():
        p.clamp_(-limit, limit)
