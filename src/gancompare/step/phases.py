"""One training step as a list of phases (StyleGAN2-ADA's `Dmain` / `Dreg` / `Gmain`), and the
small object that says how a draw, a per-run loss and a gradient norm are taken.

`schedule(cfg)` turns the update scheme into the list once; `GAN.step` runs it top to bottom:
  alternating (DCGAN and most papers): [Dmain] × optimizer.d_steps, [Dreg] when lazy,
    [Gmain] × optimizer.g_steps;
  simultaneous (ALI's and PacGAN's code): [DGmain], both players from one pass of D, both
    gradients at the same weights; [Dreg] when lazy.
Dmain is one D update on half a batch of real and half of generated samples: one mixed pass
(`optimizer.d_passes=joint`) or an all-real and an all-fake pass (`separate`, DCGAN's code), and
one optimiser step, or one step per side (`hacks=[separate-batches]`: the tutorial's two
train_on_batch calls). The penalties ride along in its (last) step, unless `regularizer.every=k`
makes them lazy: then Dreg, StyleGAN2's lazy regularisation, is a D update of the penalties alone
on steps 1, k + 1, 2k + 1, …, scaled by k · d_steps, the number of D updates it stands for, and
its figures are carried over the steps in between. Gmain updates G through a frozen D on fresh
latents, or on Dmain's (`optimizer.g_latents=shared`).

`OneRun` is all that differs between one run and K seeds trained as one batched computation
(`seeds.StackedRuns`): where samples are indexed (`batch_dim`), how a random draw is made (once,
or once per run from its own stream), how a loss becomes one value per run, and how a gradient
norm is taken. The phases are the same code for both.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from gancompare.errors import ConfigError
from gancompare.run import checkpoint

if TYPE_CHECKING:
    from gancompare.step.gan import GAN


class OneRun:
    """One run: samples in dimension 0, draws from the global generators, losses as they are."""

    batch_dim: ClassVar[int] = 0
    count: int = 1

    def draw(self, make: Callable[[], Tensor]) -> Tensor:
        return make()

    def per_run(self, loss: Callable[..., Any], *args: Tensor) -> Any:
        return loss(*args)

    def grad_norm(self, module: nn.Module) -> Tensor:
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        return torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())

    # ---- run k on its own: for its evaluation, samples and checkpoint ----
    def figures_of(self, figures: dict[str, Tensor], k: int) -> dict[str, Tensor]:
        return figures

    def member(self, gan: GAN, k: int, optimizers: bool = False) -> GAN:
        return gan

    def rng(self, k: int) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def rng_state(self, k: int) -> dict[str, Any]:
        return checkpoint.rng_state()


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """G's update back-propagates through D without computing D's own weight gradients."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


Figures = dict[str, Tensor]


def input_gradient_norms(outs: tuple[Tensor, ...], xs: tuple[Tensor, ...],
                         batch_dim: int) -> list[Tensor]:
    """E||grad_x D(x)|| over the samples of each input (per run), from the passes' own graphs
    in one backward (D's outputs are per sample, so the gradient of their sum is each
    sample's own; under batch norm it includes what a sample does to the batch's statistics)."""
    grads = torch.autograd.grad(sum(out.sum() for out in outs), xs, retain_graph=True)
    return [g.detach().flatten(batch_dim + 1).norm(2, dim=-1).mean(-1) for g in grads]


@dataclass(frozen=True)
class DiscriminatorMain:
    """Dmain: one D update on half a batch of real and half of generated samples."""

    separate_passes: bool = False  # an all-real and an all-fake pass (batch norm never mixes)
    step_per_side: bool = False  # hacks=[separate-batches]: a step after each side's pass
    with_penalties: bool = True  # the penalties join its (last) step: not lazy
    name: ClassVar[str] = "Dmain"
    every: ClassVar[int] = 1

    def __call__(self, gan: GAN, shared: dict[str, Tensor]) -> Figures:
        n_real = gan.batch_size // 2
        n_fake = gan.batch_size - n_real
        real = gan.real_batch(n_real).requires_grad_(True)
        latents = gan.latent(n_fake * gan.pack)
        with torch.no_grad():
            fake = gan.fake_batch(latents)
        fake.requires_grad_(True)
        target_real, target_fake = gan.targets(n_real, n_fake)
        shared["latents"] = latents
        objective, runs = gan.objective, gan.runs
        norms = []
        if self.step_per_side:  # the objective is separable (config check)
            out_real = gan.D(real)
            loss_real = runs.per_run(objective.d_real, out_real, target_real)
            (grad_real,) = input_gradient_norms((out_real,), (real,), runs.batch_dim)
            norms.append(gan.d_optimizer_step(loss_real))
            out_fake = gan.D(fake)
            loss_fake = runs.per_run(objective.d_fake, out_fake, target_fake)
            (grad_fake,) = input_gradient_norms((out_fake,), (fake,), runs.batch_dim)
            penalty, reg = self._penalties(gan, real, fake)
            norms.append(gan.d_optimizer_step(loss_fake + penalty))
        else:
            out_real, out_fake = gan.d_outputs(real, fake, separate=self.separate_passes)
            loss_real, loss_fake = runs.per_run(objective.d, out_real, out_fake, target_real,
                                                target_fake)
            grad_real, grad_fake = input_gradient_norms((out_real, out_fake), (real, fake),
                                                        runs.batch_dim)
            penalty, reg = self._penalties(gan, real, fake)
            norms.append(gan.d_optimizer_step(loss_real + loss_fake + penalty))
        return d_figures(gan, loss_real, loss_fake, penalty, torch.stack(norms).mean(0),
                         out_real, out_fake) | reg | {"d_grad_x_real": grad_real,
                                                      "d_grad_x_fake": grad_fake}

    def _penalties(self, gan: GAN, real: Tensor, fake: Tensor) -> tuple[Tensor, Figures]:
        if not self.with_penalties:
            return real.new_zeros(real.shape[:gan.runs.batch_dim]), {}
        return gan.penalise(real.detach(), fake.detach())


def d_figures(gan: GAN, loss_real: Tensor, loss_fake: Tensor, penalty: Tensor, norm: Tensor,
              out_real: Tensor, out_fake: Tensor) -> Figures:
    """What a D update reports: its loss by side, its gradient norm, and what its output means
    (accuracy where it has a threshold, raw scores where it is a critic or margin)."""
    objective = gan.objective
    figures = {"d_loss_real": loss_real.detach(), "d_loss_fake": loss_fake.detach(),
               "d_loss": (loss_real + loss_fake + penalty).detach(), "d_grad_norm": norm}
    out_real, out_fake = out_real.detach(), out_fake.detach()
    if objective.has_accuracy:
        figures["d_acc_real"] = (out_real > objective.threshold).to(out_real.dtype).mean(-1)
        figures["d_acc_fake"] = (out_fake < objective.threshold).to(out_fake.dtype).mean(-1)
    if not objective.uses_labels:  # a critic's or margin's raw scores
        figures["critic_real"] = out_real.mean(-1)
        figures["critic_fake"] = out_fake.mean(-1)
        figures["wasserstein"] = figures["critic_real"] - figures["critic_fake"]
    return figures


@dataclass(frozen=True)
class DiscriminatorRegularization:
    """Dreg: StyleGAN2's lazy regularisation, a D update on the penalties alone, every `every`
    steps, scaled by `scale` (every · d_steps) so that it weighs as much per D update."""

    every: int
    scale: int
    name: ClassVar[str] = "Dreg"

    def __call__(self, gan: GAN, shared: dict[str, Tensor]) -> Figures:
        n_real = gan.batch_size // 2
        real = gan.real_batch(n_real)
        with torch.no_grad():
            fake = gan.fake_batch(gan.latent((gan.batch_size - n_real) * gan.pack))
        penalty, reg = gan.penalise(real, fake, scale=self.scale)
        norm = gan.d_optimizer_step(penalty)
        return reg | {"d_reg_loss": penalty.detach(), "d_reg_grad_norm": norm}

    def names(self, gan: GAN) -> list[str]:
        return [f"reg_{n}" for n in gan.regularization.penalties] + ["d_reg_loss",
                                                                     "d_reg_grad_norm"]


@dataclass(frozen=True)
class GeneratorMain:
    """Gmain: one G update through a frozen D, on a full batch of fresh latents or on the last
    Dmain's generated half (`shared`, DCGAN-tensorflow's feed_dict)."""

    shared_latents: bool = False
    name: ClassVar[str] = "Gmain"
    every: ClassVar[int] = 1

    def __call__(self, gan: GAN, shared: dict[str, Tensor]) -> Figures:
        latents = shared["latents"] if self.shared_latents else gan.latent(
            gan.batch_size * gan.pack)
        with frozen(gan.discriminator):
            fake = gan.fake_batch(latents)
            out_real = None
            if gan.objective.g_sees_real:  # as many real samples as generated ones
                with torch.no_grad():
                    out_real = gan.D(gan.real_batch(latents.shape[gan.runs.batch_dim]
                                                    // gan.pack))
            loss = gan.g_loss(gan.D(fake), out_real)
            gan.g_optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
        norm = gan.runs.grad_norm(gan.generator)
        gan.g_optimizer.step()
        return {"g_loss": loss.detach(), "g_grad_norm": norm}


@dataclass(frozen=True)
class Simultaneous:
    """DGmain: both losses from one pass of D over real and generated samples, both gradients at
    the same weights (ALI's `ali_algorithm`, which PacGAN's code trains with)."""

    with_penalties: bool = True
    name: ClassVar[str] = "DGmain"
    every: ClassVar[int] = 1

    def __call__(self, gan: GAN, shared: dict[str, Tensor]) -> Figures:
        objective, runs = gan.objective, gan.runs
        n_real = gan.batch_size // 2
        n_fake = gan.batch_size - n_real
        real = gan.real_batch(n_real).requires_grad_(True)
        fake = gan.fake_batch(gan.latent(n_fake * gan.pack))
        target_real, target_fake = gan.targets(n_real, n_fake)
        out_real, out_fake = gan.d_outputs(real, fake, separate=False)
        loss_real, loss_fake = runs.per_run(objective.d, out_real, out_fake, target_real,
                                            target_fake)
        penalty, reg = (gan.penalise(real.detach(), fake.detach()) if self.with_penalties
                        else (real.new_zeros(real.shape[:runs.batch_dim]), {}))
        g_loss = gan.g_loss(out_fake, out_real.detach())
        grad_real, grad_fake = input_gradient_norms((out_real, out_fake), (real, fake),
                                                    runs.batch_dim)
        d_params = [p for p in gan.discriminator.parameters() if p.requires_grad]
        g_params = [p for p in gan.generator.parameters() if p.requires_grad]
        # .sum(): the runs' losses are independent, so each run's gradient is its own loss's
        d_grads = torch.autograd.grad((loss_real + loss_fake + penalty).sum(), d_params,
                                      retain_graph=True)
        g_grads = torch.autograd.grad(g_loss.sum(), g_params)
        for params, grads in ((d_params, d_grads), (g_params, g_grads)):
            for p, grad in zip(params, grads, strict=True):
                # In the parameter's layout, as backward() leaves it: fused Adam on CPU (torch
                # 2.14) reads a gradient with other strides as if it had the parameter's.
                p.grad = grad if grad.stride() == p.stride() else torch.empty_like(p).copy_(grad)
        d_norm, g_norm = runs.grad_norm(gan.discriminator), runs.grad_norm(gan.generator)
        gan.d_optimizer.step()
        gan.regularization.project(gan.discriminator)
        gan.g_optimizer.step()
        return d_figures(gan, loss_real, loss_fake, penalty, d_norm, out_real, out_fake) | reg \
            | {"d_grad_x_real": grad_real, "d_grad_x_fake": grad_fake, "g_loss": g_loss.detach(),
               "g_grad_norm": g_norm}


Phase = DiscriminatorMain | DiscriminatorRegularization | GeneratorMain | Simultaneous


def schedule(cfg: DictConfig) -> list[Phase]:
    """The phases of one step of the effective config `cfg`, in the order they run."""
    optimizer = cfg.optimizer
    every = int(cfg.regularizer.every)
    penalties = [n for n in cfg.regularizer if n != "every" and n != "clip"]
    lazy = every > 1 and bool(penalties)
    separate_batches = "separate-batches" in cfg.hacks
    if optimizer.updates == "simultaneous":
        others = {"optimizer.d_steps": optimizer.d_steps != 1,
                  "optimizer.g_steps": optimizer.g_steps != 1,
                  "optimizer.d_passes": optimizer.d_passes != "joint",
                  "optimizer.g_latents": optimizer.g_latents != "fresh",
                  "hacks": separate_batches}
        clash = [key for key, set_ in others.items() if set_]
        if clash:
            raise ConfigError("optimizer.updates", "simultaneous updates are one phase, both "
                              "players from one pass of D over a mixed batch, so "
                              f"{' and '.join(clash)} have nothing to act on",
                              "set optimizer.d_steps=1, optimizer.g_steps=1, "
                              "optimizer.d_passes=joint, optimizer.g_latents=fresh and drop "
                              "hacks=[separate-batches], or use optimizer.updates=alternating")
        phases: list[Phase] = [Simultaneous(with_penalties=not lazy)]
        d_updates = 1
    else:
        d_main = DiscriminatorMain(separate_passes=optimizer.d_passes == "separate",
                                   step_per_side=separate_batches, with_penalties=not lazy)
        phases = [d_main] * optimizer.d_steps
        d_updates = optimizer.d_steps
    if lazy:
        phases.append(DiscriminatorRegularization(every=every, scale=every * d_updates))
    if optimizer.updates != "simultaneous":
        phases += [GeneratorMain(shared_latents=optimizer.g_latents == "shared")] \
            * optimizer.g_steps
    return phases


def mean_figures(runs: list[Figures]) -> Figures:
    """The step's figures: each name's mean over the phases that reported it (D steps, G
    steps)."""
    collected: dict[str, list[Tensor]] = {}
    for figures in runs:
        for name, value in figures.items():
            collected.setdefault(name, []).append(value)
    return {name: values[0] if len(values) == 1 else torch.stack(values).mean(0)
            for name, values in collected.items()}
