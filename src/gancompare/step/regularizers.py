"""The `regularizer` group: what D pays besides its loss, and the constraints on its weights.

Each regulariser is one unit here plus one option file `conf/regularizer/<name>.yaml` that names
it by `_target_`; they compose like hacks: `regularizer=[r1,r2]`. A loss file may choose its own
(`loss=wgan-gp` is the Wasserstein loss with `[gp]`, `loss=wasserstein` with `[clip]`), as it
chooses its optimiser, and `regularizer=[...]` on the command line replaces that choice.

Penalties (D pays `weight · value`, every value one per run):
  gp      WGAN-GP (Gulrajani et al. 2017): E[(||grad D(x_hat)|| - 1)^2] on random interpolates of
          real and generated samples; weight = lambda.
  dragan  DRAGAN (Kodali et al. 2017), compare_gan's form: the same one-centred penalty at real
          samples perturbed by std(x) · (U[0, 1) - 1/2).
  r1, r2  Zero-centred (Mescheder et al. 2018): E||grad D(x)||^2 on real (R1) or generated (R2)
          samples, weight = gamma / 2, the paper's convention. Mescheder's code
          (LMescheder/GAN_stability, `reg_param`) applies reg_param · E||grad||^2 without the 1/2,
          so its reg_param 10 is gamma 20 here; R3GAN and StyleGAN2 write gamma / 2 as here.
Constraints (applied to D's weights after each of its optimiser steps):
  clip    WGAN's weight clipping into [-limit, limit].
The logged value of a penalty (`reg_<name>`) is its value before the weight, so runs with
different weights compare on one scale. `regularizer.every=k` is StyleGAN2's lazy
regularisation (`phases.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

Critic = Callable[[Tensor], Tensor]
Draw = Callable[[Callable[[], Tensor]], Tensor]  # a draw made for each run (phases.OneRun.draw)


# ---- the penalties as pure functions; the first `batch_dims` dimensions index samples ----
def gradient_penalty(critic: Critic, real: Tensor, fake: Tensor, alpha: Tensor | None = None,
                     batch_dims: int = 1) -> Tensor:
    """E[(||grad f(x_hat)||_2 - 1)^2] on x_hat = alpha · real + (1 - alpha) · fake (Gulrajani et
    al. 2017). batch_dims 2: runs × samples, one mean per run; `alpha` (shape [*batch, 1, …]) is
    drawn uniformly unless given."""
    if alpha is None:
        alpha = torch.rand(real.shape[:batch_dims] + (1,) * (real.dim() - batch_dims),
                           device=real.device)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(batch_dims).norm(2, dim=-1) - 1).pow(2).mean(-1)


def dragan_penalty(critic: Critic, real: Tensor, noise: Tensor, batch_dims: int = 1) -> Tensor:
    """compare_gan's `dragan_penalty`: x_noisy = x + std(x) · (noise - 1/2), std over the whole
    batch of one run, noise ~ U[0, 1); E[(sqrt(1e-4 + ||grad D(x_noisy)||^2) - 1)^2].
    (compare_gan also clips x_noisy to its data range [0, 1]; the perturbation is at most half a
    standard deviation, and the unit serves 2-D points too, so no clip here.)"""
    std = real.flatten(batch_dims - 1).var(-1, correction=0).sqrt()
    std = std.reshape(std.shape + (1,) * (real.dim() - std.dim()))
    x_noisy = (real + std * (noise - 0.5)).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_noisy).sum(), x_noisy, create_graph=True)
    slopes = (1e-4 + grad.flatten(batch_dims).pow(2).sum(-1)).sqrt()
    return (slopes - 1).pow(2).mean(-1)


def zero_centred_penalty(critic: Critic, x: Tensor, batch_dims: int = 1) -> Tensor:
    """E||grad_x D(x)||^2 over samples x (Mescheder et al. 2018): R1 on real samples, R2 on
    generated ones, before the weight gamma / 2."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return grad.flatten(batch_dims).pow(2).sum(-1).mean(-1)


def r1_penalty(critic: Critic, real: Tensor, gamma: float, batch_dims: int = 1) -> Tensor:
    """R1 = (gamma/2) E_real ||grad D(x)||^2: zero where D is flat on the data."""
    return 0.5 * gamma * zero_centred_penalty(critic, real, batch_dims)


def r2_penalty(critic: Critic, fake: Tensor, gamma: float, batch_dims: int = 1) -> Tensor:
    """R2 = (gamma/2) E_generated ||grad D(x)||^2 (R3GAN pairs it with R1)."""
    return 0.5 * gamma * zero_centred_penalty(critic, fake, batch_dims)


@torch.no_grad()
def clip_weights(module: nn.Module, limit: float) -> None:
    """WGAN's Lipschitz constraint: every critic parameter into [-limit, limit]."""
    for p in module.parameters():
        p.clamp_(-limit, limit)


# ---- the units the option files name ----
@runtime_checkable
class Penalty(Protocol):
    """value(critic, real, fake, draw, batch_dim): one value per run; D pays weight · value."""

    weight: float

    def value(self, critic: Critic, real: Tensor, fake: Tensor, draw: Draw,
              batch_dim: int) -> Tensor: ...


@dataclass(frozen=True)
class GradientPenalty:
    weight: float = 10.0
    uses: ClassVar[tuple[str, ...]] = ("real", "fake")

    def value(self, critic: Critic, real: Tensor, fake: Tensor, draw: Draw,
              batch_dim: int) -> Tensor:
        n = real.shape[batch_dim]
        alpha = draw(lambda: torch.rand((n,) + (1,) * (real.dim() - batch_dim - 1),
                                        device=real.device))
        return gradient_penalty(critic, real, fake, alpha, batch_dim + 1)


@dataclass(frozen=True)
class DRAGAN:
    weight: float = 10.0
    uses: ClassVar[tuple[str, ...]] = ("real",)

    def value(self, critic: Critic, real: Tensor, fake: Tensor, draw: Draw,
              batch_dim: int) -> Tensor:
        noise = draw(lambda: torch.rand(real.shape[batch_dim:], device=real.device))
        return dragan_penalty(critic, real, noise, batch_dim + 1)


@dataclass(frozen=True)
class R1:
    gamma: float = 1.0
    uses: ClassVar[tuple[str, ...]] = ("real",)

    @property
    def weight(self) -> float:
        return 0.5 * self.gamma

    def value(self, critic: Critic, real: Tensor, fake: Tensor, draw: Draw,
              batch_dim: int) -> Tensor:
        return zero_centred_penalty(critic, real, batch_dim + 1)


@dataclass(frozen=True)
class R2:
    gamma: float = 1.0
    uses: ClassVar[tuple[str, ...]] = ("fake",)

    @property
    def weight(self) -> float:
        return 0.5 * self.gamma

    def value(self, critic: Critic, real: Tensor, fake: Tensor, draw: Draw,
              batch_dim: int) -> Tensor:
        return zero_centred_penalty(critic, fake, batch_dim + 1)


@dataclass(frozen=True)
class WeightClip:
    limit: float = 0.01

    def project(self, module: nn.Module) -> None:
        clip_weights(module, self.limit)


@dataclass(frozen=True)
class Regularization:
    """A run's regularisers: penalties by name, weight constraints, and the lazy interval."""

    penalties: Mapping[str, Penalty]
    constraints: tuple[WeightClip, ...] = ()
    every: int = 1

    def penalise(self, critic: Critic, real: Tensor, fake: Tensor, draw: Draw, batch_dim: int,
                 scale: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        """The sum D pays (scale · Σ weight · value; zeros without penalties) and each
        penalty's value, in the order of the config."""
        values = {name: p.value(critic, real, fake, draw, batch_dim)
                  for name, p in self.penalties.items()}
        total = sum(scale * self.penalties[n].weight * v for n, v in values.items())
        if not values:
            total = real.new_zeros(real.shape[:batch_dim])
        return total, {f"reg_{name}": v.detach() for name, v in values.items()}

    def project(self, module: nn.Module) -> None:
        for constraint in self.constraints:
            constraint.project(module)


def build_regularization(cfg: Mapping) -> Regularization:
    """The `regularizer` node of an effective config: {every: k, <name>: {_target_: …}, …}."""
    from gancompare.units import build_unit

    penalties, constraints = {}, []
    for name, spec in cfg.items():
        if name == "every":
            continue
        unit = build_unit(spec, f"regularizer.{name}", "name a penalty (weight, value) or a "
                          "weight constraint (project) of gancompare.step.regularizers with its "
                          "arguments, as conf/regularizer/ does", (WeightClip, Penalty))
        if isinstance(unit, WeightClip):
            constraints.append(unit)
        else:
            penalties[name] = unit
    return Regularization(penalties, tuple(constraints), int(cfg["every"]))
