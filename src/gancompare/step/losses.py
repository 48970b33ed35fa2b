"""GAN losses as small pure units on D's raw outputs (logits or critic scores).

Every loss sees both sides: D pays `d(out_real, out_fake, target_real, target_fake)`, a pair of
terms (logged as d_loss_real and d_loss_fake) whose sum it minimises, and G pays
`g(out_fake, out_real)`. Two kinds:
  SideLoss: D's loss is a term on real outputs plus one on generated outputs (`d_real`,
    `d_fake`), G's sees generated outputs only (`g_fake`): minimax, non-saturating, WGAN, LSGAN,
    hinge. `uses_labels`: whether the targets (1 real / 0 fake, or the hacks' smoothed and
    flipped labels) enter D's loss; `threshold`: where D's output separates "real" from "fake"
    (for D accuracy), None for a critic.
  PairLoss: relativistic (RpGAN, RaSGAN): both players' losses compare D's outputs on real and
    generated samples, so D's loss does not separate (no separate-batches, no label hacks) and
    G's update needs D's outputs on real samples too.
`conf/loss/<name>.yaml` names its objective by `_target_` (`objective: {_target_:
gancompare.step.losses.hinge}`), so adding a loss is one unit here plus one YAML file.
Everything is computed from logits with softplus / BCE-with-logits, so no sigmoid saturates to
log(0). What D pays besides its loss (gradient penalties, weight clipping) is the `regularizer`
group's: `regularizers.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class SideLoss:
    """A loss whose D term separates into one on real and one on generated outputs, and whose G
    term sees only D's outputs on generated samples (every loss before the relativistic ones)."""

    d_real: Callable[[Tensor, Tensor], Tensor]  # (D's outputs on real samples, targets)
    d_fake: Callable[[Tensor, Tensor], Tensor]  # (D's outputs on generated samples, targets)
    g_fake: Callable[[Tensor], Tensor]  # (D's outputs on generated samples)
    uses_labels: bool
    threshold: float | None
    separable: ClassVar[bool] = True  # D can be updated on real and on generated samples apart
    g_sees_real: ClassVar[bool] = False  # G's loss needs no real samples

    @property
    def has_accuracy(self) -> bool:
        """D's output has a real/fake threshold, so D accuracy means something."""
        return self.threshold is not None

    def d(self, out_real: Tensor, out_fake: Tensor, target_real: Tensor,
          target_fake: Tensor) -> tuple[Tensor, Tensor]:
        return self.d_real(out_real, target_real), self.d_fake(out_fake, target_fake)

    def g(self, out_fake: Tensor, out_real: Tensor | None = None) -> Tensor:
        return self.g_fake(out_fake)


@dataclass(frozen=True)
class PairLoss:
    """A relativistic loss: D's loss compares its outputs on real and generated samples, and so
    does G's. No label targets and no threshold (D's raw output means nothing alone)."""

    d_pair: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]  # (out_real, out_fake) -> 2 terms
    g_pair: Callable[[Tensor, Tensor], Tensor]  # (out_fake, out_real) -> G's loss
    uses_labels: ClassVar[bool] = False
    threshold: ClassVar[float | None] = None
    separable: ClassVar[bool] = False
    g_sees_real: ClassVar[bool] = True
    has_accuracy: ClassVar[bool] = False

    def d(self, out_real: Tensor, out_fake: Tensor, target_real: Tensor,
          target_fake: Tensor) -> tuple[Tensor, Tensor]:
        return self.d_pair(out_real, out_fake)

    def g(self, out_fake: Tensor, out_real: Tensor | None = None) -> Tensor:
        if out_real is None:
            raise ValueError("a relativistic G loss needs D's outputs on real samples")
        return self.g_pair(out_fake, out_real)


Objective = SideLoss | PairLoss


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


def pairing_d(out_real: Tensor, out_fake: Tensor) -> tuple[Tensor, Tensor]:
    """RpGAN (R3GAN, Huang et al. 2024; brownvc/R3GAN `R3GAN/Trainer.py`): D pays
    softplus(-(D(x_r) - D(x_f))), each generated sample paired with the real sample at the same
    index. One term that does not split by side: each half is logged as one side's."""
    loss = F.softplus(out_fake - out_real).mean()
    return 0.5 * loss, 0.5 * loss


def pairing_g(out_fake: Tensor, out_real: Tensor) -> Tensor:
    """G pays softplus(-(D(x_f) - D(x_r))) with the same pairing (RSGAN's G)."""
    return F.softplus(out_real - out_fake).mean()


def average_d(out_real: Tensor, out_fake: Tensor) -> tuple[Tensor, Tensor]:
    """RaSGAN (Jolicoeur-Martineau 2018; AlexiaJM/RelativisticGAN `code/GAN_losses_iter.py`,
    loss_D 6): D = 1/2 [BCE(C(x_r) - E C(x_f), 1) + BCE(C(x_f) - E C(x_r), 0)], the halves on
    real and on generated samples. (The repository's README snippet repeats the first term; its
    script, followed here, does not.)"""
    return (0.5 * F.softplus(out_fake.mean() - out_real).mean(),
            0.5 * F.softplus(out_fake - out_real.mean()).mean())


def average_g(out_fake: Tensor, out_real: Tensor) -> Tensor:
    """G: the same with the labels swapped, 1/2 [BCE(C(x_r) - E C(x_f), 0)
    + BCE(C(x_f) - E C(x_r), 1)]."""
    return 0.5 * (F.softplus(out_real - out_fake.mean()).mean()
                  + F.softplus(out_real.mean() - out_fake).mean())


def minimax() -> SideLoss:
    """Goodfellow et al. (2014)'s minimax game."""
    return SideLoss(bce, bce, minimax_g, uses_labels=True, threshold=0.0)


def non_saturating() -> SideLoss:
    """Goodfellow et al. (2014)'s non-saturating G loss, D's as in minimax."""
    return SideLoss(bce, bce, non_saturating_g, uses_labels=True, threshold=0.0)


def wasserstein() -> SideLoss:
    """WGAN's critic loss (Arjovsky et al. 2017); its Lipschitz constraint is a regulariser."""
    return SideLoss(critic_real, critic_fake, critic_g, uses_labels=False, threshold=None)


def least_squares() -> SideLoss:
    """LSGAN (Mao et al. 2017), a-b-c = 0-1-1."""
    return SideLoss(least_squares_d, least_squares_d, least_squares_g, uses_labels=True,
                    threshold=0.5)


def hinge() -> SideLoss:
    """Hinge D loss; G's is the Wasserstein one, -E[D(G(z))] (SN-GAN, BigGAN)."""
    return SideLoss(hinge_real, hinge_fake, critic_g, uses_labels=False, threshold=0.0)


def relativistic_pairing() -> PairLoss:
    """RpGAN, R3GAN's loss."""
    return PairLoss(pairing_d, pairing_g)


def relativistic_average() -> PairLoss:
    """RaSGAN."""
    return PairLoss(average_d, average_g)


def build_objective(spec: object) -> Objective:
    """The `Objective` that `loss.objective` names by `_target_`."""
    from gancompare.units import build_unit

    return build_unit(spec, "loss.objective",
                      "name a loss of gancompare.step.losses, e.g. "
                      "objective: {_target_: gancompare.step.losses.hinge}", (SideLoss, PairLoss))
