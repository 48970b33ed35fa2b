"""GAN objectives as small pure functions of D's raw outputs (logits or critic scores).

An objective is three functions, chosen by `loss.objective`:
  d_real(out, target), d_fake(out, target): D's loss on real and on generated samples;
  g(out): G's loss on D's outputs for generated samples.
`target` holds D's labels (1 real / 0 fake, or the smoothed and flipped labels of the hacks);
critics ignore it. The regularisers that a loss config carries, a gradient penalty and weight
clipping, are the two functions at the bottom. Everything is computed from logits with
softplus / BCE-with-logits, so no sigmoid saturates to log(0).
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
    # Where D's output separates "real" from "fake" (for D accuracy); None for a critic, whose
    # score has no such threshold and which takes no labels.
    threshold: float | None

    @property
    def uses_labels(self) -> bool:
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


OBJECTIVES: dict[str, Objective] = {
    "minimax": Objective(bce, bce, minimax_g, threshold=0.0),
    "non-saturating": Objective(bce, bce, non_saturating_g, threshold=0.0),
    "wasserstein": Objective(critic_real, critic_fake, critic_g, threshold=None),
    "least-squares": Objective(least_squares_d, least_squares_d, least_squares_g, threshold=0.5),
}


def get_objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise ConfigError("loss.objective", f"unknown objective '{name}'",
                          f"choose one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]


def gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """E[(||grad f(x_hat)||_2 - 1)^2] on random interpolates x_hat of real and fake
    (Gulrajani et al. 2017). Multiply by lambda (`loss.gradient_penalty`) outside."""
    alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


@torch.no_grad()
def clip_weights(module: nn.Module, limit: float) -> None:
    """WGAN's Lipschitz constraint: every critic parameter into [-limit, limit]."""
    for p in module.parameters():
        p.clamp_(-limit, limit)
