"""The two networks, their optimisers, and the step that runs a list of phases (`phases.py`).

`GAN.step` runs the phases of `phases.schedule(cfg)` in order: D updates, lazy regularisation,
G updates, or one simultaneous update. The networks' passes live here: with packing
(`model.pack=m`) every sample D judges is m samples, so m times as many real points are drawn and
G runs once per pack slot (its batch norm sees the slot's batch, as PacGAN's does). The step
never reads a value back to the host: its figures stay tensors on the device. Nothing here
branches on a loss's name: the `Objective` says what D's output means, and the regularisers
(`regularizers.py`) what D pays besides it.

One run and K runs trained as one batched computation (`trainer.seeds`, `seeds.py`) are the same
code: there every tensor has a leading run dimension, and `runs` (a `phases.OneRun` or
`seeds.StackedRuns`) says how draws, per-run losses and gradient norms are taken.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from gancompare.data.datasets import Dataset
from gancompare.networks.architectures import build_models
from gancompare.precision import autocast, full_precision, resolve_precision
from gancompare.step.hacks import Labels
from gancompare.step.losses import Objective, build_objective
from gancompare.step.phases import OneRun, Phase, mean_figures, schedule
from gancompare.step.regularizers import Regularization, build_regularization
from gancompare.units import build_unit

log = logging.getLogger(__name__)
NETS = ("generator", "discriminator", "g_optimizer", "d_optimizer")


def sample_latent(n: int, dim: int, distribution: str, device: torch.device | str | None = None,
                  generator: torch.Generator | None = None) -> Tensor:
    """n latent points: N(0, I), or U(-1, 1) per coordinate (DCGAN-tensorflow's)."""
    if distribution == "uniform":
        return torch.rand(n, dim, device=device, generator=generator).mul_(2).sub_(1)
    return torch.randn(n, dim, device=device, generator=generator)


@dataclass
class GAN:
    """The two networks, their optimisers and the phases of one training step."""

    generator: nn.Module
    discriminator: nn.Module
    g_optimizer: torch.optim.Optimizer
    d_optimizer: torch.optim.Optimizer
    objective: Objective
    labels: Labels
    data: Dataset
    latent_dim: int
    batch_size: int
    phases: list[Phase]
    regularization: Regularization = field(default_factory=lambda: Regularization({}))
    autocast: Callable[[], AbstractContextManager] = contextlib.nullcontext
    channels_last: bool = False
    pack: int = 1
    latent_distribution: str = "normal"
    runs: OneRun = field(default_factory=OneRun)
    steps_done: int = 0  # steps taken (the loop sets it on resume): lazy phases count them
    _carried: dict[str, Tensor] = field(default_factory=dict)  # a lazy phase's last figures

    # ---- the passes ----
    def latent(self, n: int) -> Tensor:
        return self.runs.draw(lambda: sample_latent(n, self.latent_dim, self.latent_distribution,
                                                    self.data.train.device))

    def real_batch(self, n: int) -> Tensor:
        """n packs of real samples: [n · pack, …]."""
        real = self.runs.draw(lambda: self.data.sample(n * self.pack))
        return real.contiguous(memory_format=torch.channels_last) if self.channels_last else real

    def targets(self, n_real: int, n_fake: int) -> tuple[Tensor, Tensor]:
        """D's label targets for n_real real and n_fake generated samples (the label hacks)."""
        return self.runs.draw(lambda: self.labels(n_real, n_fake))

    def fake_batch(self, z: Tensor) -> Tensor:
        """Packs of generated samples from latents [n · pack, …], G run once per pack slot
        (on rows slot·n … slot·n + n − 1): [n · pack, …], row pack·i + j = pack i, slot j."""
        if self.pack == 1:
            return self.G(z)
        bd = self.runs.batch_dim
        slots = [self.G(chunk) for chunk in z.split(z.shape[bd] // self.pack, dim=bd)]
        return torch.stack(slots, dim=bd + 1).flatten(bd, bd + 1)

    def D(self, x: Tensor) -> Tensor:
        """D's outputs in the run's full precision, whatever its forward pass ran in."""
        with self.autocast():
            return full_precision(self.discriminator(x))

    def G(self, z: Tensor) -> Tensor:
        with self.autocast():
            return self.generator(z)

    def d_outputs(self, real: Tensor, fake: Tensor, separate: bool) -> tuple[Tensor, Tensor]:
        """D's outputs on real and generated samples: two passes (batch statistics of all-real
        and all-fake batches), or one mixed pass whose batch statistics mix them."""
        if separate:
            return self.D(real), self.D(fake)
        n_real, n_fake = real.shape[self.runs.batch_dim], fake.shape[self.runs.batch_dim]
        n_real, n_fake = n_real // self.pack, n_fake // self.pack
        out = self.D(torch.cat([real, fake], self.runs.batch_dim))
        return out.split([n_real, n_fake], dim=-1)

    def g_loss(self, out_fake: Tensor, out_real: Tensor | None) -> Tensor:
        """G's loss, one per run; D's outputs on real samples only where the loss compares with
        them (a relativistic loss), so the other losses draw no real batch for G."""
        if out_real is None:
            return self.runs.per_run(self.objective.g, out_fake)
        return self.runs.per_run(self.objective.g, out_fake, out_real)

    def penalise(self, real: Tensor, fake: Tensor, scale: float = 1.0
                 ) -> tuple[Tensor, dict[str, Tensor]]:
        """What D pays for its regularisers on these samples, and each one's value."""
        return self.regularization.penalise(self.D, full_precision(real), full_precision(fake),
                                            self.runs.draw, self.runs.batch_dim, scale)

    def d_optimizer_step(self, loss: Tensor) -> Tensor:
        """One D optimiser step on `loss` (one per run), its weight constraints after; the norm
        of the gradient it stepped on."""
        self.d_optimizer.zero_grad(set_to_none=True)
        loss.sum().backward(inputs=[p for p in self.discriminator.parameters()
                                    if p.requires_grad])
        norm = self.runs.grad_norm(self.discriminator)
        self.d_optimizer.step()
        self.regularization.project(self.discriminator)
        return norm

    # ---- the step ----
    def step(self) -> dict[str, Tensor]:
        """One training step: the phases in order; each figure is its mean over the phases that
        reported it, a lazy phase's carried over the steps it skips."""
        self.steps_done += 1
        shared: dict[str, Tensor] = {}
        reported = []
        for phase in self.phases:
            if (self.steps_done - 1) % phase.every == 0:
                figures = phase(self, shared)
                if phase.every > 1:
                    self._carried = dict(figures)
                reported.append(figures)
            else:  # not measured since the last time it ran (NaN before its first, on resume)
                nan = torch.full_like(reported[0]["d_loss"], float("nan"))
                reported.append(self._carried or {k: nan for k in phase.names(self)})
        return mean_figures(reported)

    # ---- run k of a batch of runs, as a run of its own ----
    def run_figures(self, figures: dict[str, Tensor], k: int) -> dict[str, Tensor]:
        return self.runs.figures_of(figures, k)

    def member(self, k: int, optimizers: bool = False) -> GAN:
        """Run k as a GAN of its own (for evaluation, samples and its checkpoint)."""
        return self.runs.member(self, k, optimizers)

    def rng(self, k: int) -> contextlib.AbstractContextManager:
        """Run k's random streams as the global generators (evaluation draws from them)."""
        return self.runs.rng(k)

    def rng_state(self, k: int) -> dict[str, Any]:
        return self.runs.rng_state(k)

    # ---- samples and state ----
    def sample(self, n: int) -> Tensor:
        return self.generate(self.latent(n))

    @torch.no_grad()
    def generate(self, z: Tensor) -> Tensor:
        """Samples for figures and metrics: G in eval mode, training mode restored after."""
        was_training = self.generator.training
        self.generator.eval()
        try:
            bd = self.runs.batch_dim
            return self.data.as_signed(
                torch.cat([full_precision(self.G(chunk)) for chunk in z.split(1000, bd)], bd))
        finally:
            self.generator.train(was_training)

    def parameters_finite(self) -> bool:
        """One host sync: for the epoch-end checkpoint, never in the step."""
        params = [p for m in (self.generator, self.discriminator) for p in m.parameters()]
        return bool(torch.stack([torch.isfinite(p).all() for p in params]).all())

    def state_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name).state_dict() for name in NETS}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in NETS:
            getattr(self, name).load_state_dict(state[name])


def build_gan(cfg: DictConfig, data: Dataset, device: torch.device) -> GAN:
    """The GAN of an effective config (`config.effective_config`) on `data`."""
    model = cfg.model
    networks = build_unit(model.networks, "model.networks", "name a builder of "
                          "gancompare.networks.architectures as conf/model/ does, e.g. "
                          "{_target_: gancompare.networks.architectures.dcgan28, _partial_: true}")
    generator, discriminator = build_models(
        networks, data.shape, model.latent_dim, model.d_norm, model.g_norm, model.init_std,
        image_output=data.is_image, pack=model.pack, norm_init_std=model.norm_init_std)
    convolutional = any(isinstance(m, nn.Conv2d) for m in discriminator.modules())
    channels_last = bool(cfg.trainer.channels_last) and data.is_image and convolutional
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    generator.to(device, memory_format=memory_format)
    discriminator.to(device, memory_format=memory_format)
    regularization = build_regularization(cfg.regularizer)
    if cfg.trainer.compile:
        compile_or_warn(generator, "G")
        if regularization.penalties:  # torch.compile has no double backward
            log.warning("trainer.compile: D stays eager (a gradient penalty differentiates "
                        "through D's gradient, which torch.compile does not support)")
        else:
            compile_or_warn(discriminator, "D")
    return GAN(
        generator=generator, discriminator=discriminator,
        g_optimizer=make_optimizer(cfg.optimizer.g, generator, cfg.trainer.fused_optimizers, "g"),
        d_optimizer=make_optimizer(cfg.optimizer.d, discriminator, cfg.trainer.fused_optimizers,
                                   "d"),
        objective=build_objective(cfg.loss.objective), labels=Labels(cfg.hacks, device), data=data,
        latent_dim=model.latent_dim, batch_size=cfg.trainer.batch_size, phases=schedule(cfg),
        regularization=regularization,
        autocast=autocast(resolve_precision(cfg.trainer.precision, device), device),
        channels_last=channels_last, pack=model.pack,
        latent_distribution=model.latent_distribution)


def make_optimizer(settings: DictConfig, module: nn.Module, fused: bool,
                   name: str) -> torch.optim.Optimizer:
    """`optimizer.d` / `optimizer.g`, with the fused kernel where the class has one (one kernel
    for all parameters instead of one per tensor)."""
    factory = build_unit(settings, f"optimizer.{name}", "name a torch.optim class with "
                         "_partial_: true and its arguments, as conf/optimizer/ does")
    cls = getattr(factory, "func", factory)
    if fused and "fused" in inspect.signature(cls).parameters and "fused" not in settings:
        return factory(module.parameters(), fused=True)
    return factory(module.parameters())


def compile_or_warn(module: nn.Module, name: str) -> None:
    """torch.compile in place (state_dict keys unchanged); where it cannot compile here (no C++
    compiler, an unsupported layer), the module stays eager with a warning."""
    try:
        module.compile()
    except Exception as error:  # a missing toolchain or an unsupported layer
        log.warning("trainer.compile: %s stays eager (%s)", name, error)
