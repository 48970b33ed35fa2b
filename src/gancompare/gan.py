"""One GAN training step, in one of two update schemes (`optimizer.updates`).

`alternating` (DCGAN and most papers): `optimizer.d_steps` discriminator updates, then
`optimizer.g_steps` generator updates. Each D update sees half a batch of real samples and half a
batch of generated ones: one mixed pass and one optimiser step; with `optimizer.d_passes=separate`
an all-real and an all-fake pass and one step (DCGAN's code: batch norm never mixes them); with
`hacks=[separate-batches]` an all-real pass and step then an all-fake pass and step. G is updated
through D with target "real", D's weights frozen, on a full batch of fresh latent points, or with
`optimizer.g_latents=shared` on the latent points of the last D update's generated half
(DCGAN-tensorflow's feed_dict, which PacGAN's Stacked MNIST code runs twice per D update).

`simultaneous` (ALI's and PacGAN's code): one pass of D over half a batch of real and half a
batch of generated samples gives both losses; both gradients are taken at the same weights and
both optimisers step.

With packing (`model.pack=m`) every sample D judges is m samples: m times as many real points
are drawn, and G runs once per pack slot, so its batch norm sees the slot's batch as PacGAN's
does. The step never reads a value back to the host: its figures stay tensors on the device.
Nothing here branches on a loss's name: the `Objective` says what D's output means, whether its
loss separates by side (separate-batches needs that) and whether G's loss compares with D's
outputs on real samples (then G's update draws as many real samples as it generates).

The step is written once for one run and for K runs trained as one batched computation
(`seeds.StackedGAN`, `trainer.seeds`): there every tensor has a leading run dimension, losses
and figures are one per run, and the hooks below (`batch_dim`, `per_run`, the draws, the
gradient norms) are overridden.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor, nn

from gancompare import checkpoint
from gancompare.datasets import Dataset
from gancompare.hacks import Labels
from gancompare.losses import Objective, clip_weights, get_objective, gradient_penalty
from gancompare.models import build_models
from gancompare.precision import autocast, full_precision, resolve_precision

log = logging.getLogger(__name__)
NETS = ("generator", "discriminator", "g_optimizer", "d_optimizer")
LATENTS = ("normal", "uniform")


def sample_latent(n: int, dim: int, distribution: str, device: torch.device | str | None = None,
                  generator: torch.Generator | None = None) -> Tensor:
    """n latent points: N(0, I), or U(-1, 1) per coordinate (DCGAN-tensorflow's)."""
    if distribution == "uniform":
        return torch.rand(n, dim, device=device, generator=generator).mul_(2).sub_(1)
    return torch.randn(n, dim, device=device, generator=generator)


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


def grad_norm(module: nn.Module) -> Tensor:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())


@dataclass
class GAN:
    """The two networks, their optimisers and the rules of one training step."""

    generator: nn.Module
    discriminator: nn.Module
    g_optimizer: torch.optim.Optimizer
    d_optimizer: torch.optim.Optimizer
    objective: Objective
    labels: Labels
    data: Dataset
    latent_dim: int
    batch_size: int
    d_steps: int = 1
    separate_batches: bool = False
    penalty_weight: float | None = None
    clip: float | None = None
    autocast: Callable[[], AbstractContextManager] = contextlib.nullcontext
    channels_last: bool = False
    pack: int = 1
    simultaneous: bool = False
    g_steps: int = 1
    g_shares_latents: bool = False  # G's updates on the last D update's generated latents
    separate_passes: bool = False  # D's real and generated halves in separate passes
    latent_distribution: str = "normal"
    batch_dim: ClassVar[int] = 0  # the dimension that indexes samples (StackedGAN: 1, after runs)

    # ---- the hooks a batch of runs overrides (seeds.StackedGAN) ----
    def per_run(self, loss: Callable[..., Tensor], *args: Tensor) -> Tensor:
        """A loss of D's outputs, one value per run (here the one run: a scalar)."""
        return loss(*args)

    def targets(self, n_real: int, n_fake: int) -> tuple[Tensor, Tensor]:
        return self.labels(n_real, n_fake)

    def grad_norm(self, module: nn.Module) -> Tensor:
        return grad_norm(module)

    def penalty_alpha(self, real: Tensor) -> Tensor | None:
        """The gradient penalty's interpolation weights (None: drawn by the penalty itself)."""
        return None

    @property
    def runs(self) -> int:
        return 1

    def run_figures(self, figures: dict[str, Tensor], k: int) -> dict[str, Tensor]:
        """Run k's share of a step's figures."""
        return figures

    def member(self, k: int, optimizers: bool = False) -> GAN:
        """Run k as a GAN of its own (for evaluation, samples and its checkpoint)."""
        return self

    def rng(self, k: int) -> contextlib.AbstractContextManager:
        """Run k's random streams as the global generators (evaluation draws from them)."""
        return contextlib.nullcontext()

    def rng_state(self, k: int) -> dict[str, Any]:
        return checkpoint.rng_state()

    # ---- the step ----
    def latent(self, n: int) -> Tensor:
        return sample_latent(n, self.latent_dim, self.latent_distribution, self.data.train.device)

    def real_batch(self, n: int) -> Tensor:
        """n packs of real samples: [n · pack, …]."""
        real = self.data.sample(n * self.pack)
        return real.contiguous(memory_format=torch.channels_last) if self.channels_last else real

    def fake_batch(self, z: Tensor) -> Tensor:
        """Packs of generated samples from latents [n · pack, …], G run once per pack slot
        (on rows slot·n … slot·n + n − 1): [n · pack, …], row pack·i + j = pack i, slot j."""
        if self.pack == 1:
            return self.G(z)
        bd = self.batch_dim
        slots = [self.G(chunk) for chunk in z.split(z.shape[bd] // self.pack, dim=bd)]
        return torch.stack(slots, dim=bd + 1).flatten(bd, bd + 1)

    def D(self, x: Tensor) -> Tensor:
        """D's outputs in the run's full precision, whatever its forward pass ran in."""
        with self.autocast():
            return full_precision(self.discriminator(x))

    def G(self, z: Tensor) -> Tensor:
        with self.autocast():
            return self.generator(z)

    def step(self) -> dict[str, Tensor]:
        if self.simultaneous:
            return self.simultaneous_update()
        d_figures = []
        for _ in range(self.d_steps):
            figures, latents = self.discriminator_update()
            d_figures.append(figures)
        shared = latents if self.g_shares_latents else None
        g_figures = [self.generator_update(shared) for _ in range(self.g_steps)]
        return {k: torch.stack([f[k] for f in fs]).mean(0) for fs in (d_figures, g_figures)
                for k in fs[0]}

    def discriminator_update(self) -> tuple[dict[str, Tensor], Tensor]:
        """One D update; its figures and the latent points of its generated half."""
        D, objective = self.D, self.objective
        n_real = self.batch_size // 2
        n_fake = self.batch_size - n_real
        real = self.real_batch(n_real)
        latents = self.latent(n_fake * self.pack)
        with torch.no_grad():
            fake = self.fake_batch(latents)
        target_real, target_fake = self.targets(n_real, n_fake)
        if self.separate_batches:  # the tutorial's two train_on_batch calls: real, then fake
            out_real = D(real)
            loss_real = self.per_run(objective.d_real, out_real, target_real)
            norms = [self._d_optimizer_step(loss_real)]
            out_fake = D(fake)
            loss_fake = self.per_run(objective.d_fake, out_fake, target_fake)
            penalty = self._penalty(real, fake)
            norms.append(self._d_optimizer_step(loss_fake + penalty))
        else:
            if self.separate_passes:  # batch statistics of all-real and all-fake batches
                out_real, out_fake = D(real), D(fake)
            else:  # one mixed batch: D's batch statistics mix real and fake
                out_real, out_fake = D(torch.cat([real, fake], self.batch_dim)).split(
                    [n_real, n_fake], dim=-1)
            loss_real, loss_fake = self.per_run(objective.d, out_real, out_fake, target_real,
                                                target_fake)
            penalty = self._penalty(real, fake)
            norms = [self._d_optimizer_step(loss_real + loss_fake + penalty)]
        return self._d_figures(loss_real, loss_fake, penalty, torch.stack(norms).mean(0),
                               out_real, out_fake), latents

    def _d_figures(self, loss_real: Tensor, loss_fake: Tensor, penalty: Tensor, norm: Tensor,
                   out_real: Tensor, out_fake: Tensor) -> dict[str, Tensor]:
        objective = self.objective
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
        if self.penalty_weight:
            figures["gradient_penalty"] = penalty.detach() / self.penalty_weight
        return figures

    def simultaneous_update(self) -> dict[str, Tensor]:
        """Both losses from one pass of D over real and generated samples; both gradients at
        the same weights (ALI's `ali_algorithm`, which PacGAN's code trains with)."""
        objective = self.objective
        n_real = self.batch_size // 2
        n_fake = self.batch_size - n_real
        real = self.real_batch(n_real)
        fake = self.fake_batch(self.latent(n_fake * self.pack))
        target_real, target_fake = self.targets(n_real, n_fake)
        out_real, out_fake = self.D(torch.cat([real, fake], self.batch_dim)).split(
            [n_real, n_fake], dim=-1)
        loss_real, loss_fake = self.per_run(objective.d, out_real, out_fake, target_real,
                                            target_fake)
        penalty = self._penalty(real, fake.detach())
        g_loss = self.g_loss(out_fake, out_real.detach())
        d_params = [p for p in self.discriminator.parameters() if p.requires_grad]
        g_params = [p for p in self.generator.parameters() if p.requires_grad]
        # .sum(): the runs' losses are independent, so each run's gradient is its own loss's
        d_grads = torch.autograd.grad((loss_real + loss_fake + penalty).sum(), d_params,
                                      retain_graph=True)
        g_grads = torch.autograd.grad(g_loss.sum(), g_params)
        for params, grads in ((d_params, d_grads), (g_params, g_grads)):
            for p, grad in zip(params, grads, strict=True):
                # In the parameter's layout, as backward() leaves it: fused Adam on CPU (torch
                # 2.14) reads a gradient with other strides as if it had the parameter's.
                p.grad = grad if grad.stride() == p.stride() else torch.empty_like(p).copy_(grad)
        d_norm, g_norm = self.grad_norm(self.discriminator), self.grad_norm(self.generator)
        self.d_optimizer.step()
        if self.clip:
            clip_weights(self.discriminator, self.clip)
        self.g_optimizer.step()
        figures = self._d_figures(loss_real, loss_fake, penalty, d_norm, out_real, out_fake)
        figures.update(g_loss=g_loss.detach(), g_grad_norm=g_norm)
        return figures

    def g_loss(self, out_fake: Tensor, out_real: Tensor | None) -> Tensor:
        """G's loss, one per run; D's outputs on real samples only where the loss compares with
        them (a relativistic loss), so the other losses draw no real batch for G."""
        if out_real is None:
            return self.per_run(self.objective.g, out_fake)
        return self.per_run(self.objective.g, out_fake, out_real)

    def _penalty(self, real: Tensor, fake: Tensor) -> Tensor:
        if not self.penalty_weight:
            return torch.zeros((), device=real.device)
        return self.penalty_weight * gradient_penalty(
            self.D, full_precision(real), full_precision(fake), self.penalty_alpha(real),
            self.batch_dim + 1)

    def _d_optimizer_step(self, loss: Tensor) -> Tensor:
        self.d_optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        norm = self.grad_norm(self.discriminator)
        self.d_optimizer.step()
        if self.clip:
            clip_weights(self.discriminator, self.clip)
        return norm

    def generator_update(self, latents: Tensor | None = None) -> dict[str, Tensor]:
        """One G update on `latents`, or on a full batch of fresh ones."""
        if latents is None:
            latents = self.latent(self.batch_size * self.pack)
        with frozen(self.discriminator):
            fake = self.fake_batch(latents)
            out_real = None
            if self.objective.g_sees_real:  # as many real samples as generated ones
                with torch.no_grad():
                    out_real = self.D(self.real_batch(latents.shape[self.batch_dim] // self.pack))
            loss = self.g_loss(self.D(fake), out_real)
            self.g_optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
        norm = self.grad_norm(self.generator)
        self.g_optimizer.step()
        return {"g_loss": loss.detach(), "g_grad_norm": norm}

    def sample(self, n: int) -> Tensor:
        return self.generate(self.latent(n))

    @torch.no_grad()
    def generate(self, z: Tensor) -> Tensor:
        """Samples for figures and metrics: G in eval mode, training mode restored after."""
        was_training = self.generator.training
        self.generator.eval()
        try:
            bd = self.batch_dim
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
    generator, discriminator = build_models(
        cfg.model.arch, data.shape, cfg.model.latent_dim, cfg.model.d_norm, cfg.model.g_norm,
        cfg.model.init_std, image_output=data.is_image, pack=cfg.model.get("pack", 1),
        norm_init_std=cfg.model.get("norm_init_std"))  # .get: runs saved before these keys
    channels_last = bool(cfg.trainer.channels_last) and data.is_image and cfg.model.arch != "mlp"
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    generator.to(device, memory_format=memory_format)
    discriminator.to(device, memory_format=memory_format)
    penalty = cfg.loss.get("gradient_penalty")
    if cfg.trainer.compile:
        compile_or_warn(generator, "G")
        if penalty:  # torch.compile has no double backward, which the penalty needs
            log.warning("trainer.compile: D stays eager (the gradient penalty differentiates "
                        "through D's gradient, which torch.compile does not support)")
        else:
            compile_or_warn(discriminator, "D")
    return GAN(
        generator=generator, discriminator=discriminator,
        g_optimizer=make_optimizer(cfg.optimizer.g, generator, cfg.trainer.fused_optimizers),
        d_optimizer=make_optimizer(cfg.optimizer.d, discriminator, cfg.trainer.fused_optimizers),
        objective=get_objective(cfg.loss.objective), labels=Labels(cfg.hacks, device), data=data,
        latent_dim=cfg.model.latent_dim, batch_size=cfg.trainer.batch_size,
        d_steps=cfg.optimizer.d_steps, separate_batches="separate-batches" in cfg.hacks,
        penalty_weight=penalty, clip=cfg.loss.get("clip_weights"),
        autocast=autocast(resolve_precision(cfg.trainer.precision, device), device),
        channels_last=channels_last, pack=cfg.model.get("pack", 1),
        simultaneous=cfg.optimizer.get("updates") == "simultaneous",
        g_steps=cfg.optimizer.get("g_steps", 1),
        g_shares_latents=cfg.optimizer.get("g_latents") == "shared",
        separate_passes=cfg.optimizer.get("d_passes") == "separate",
        latent_distribution=cfg.model.get("latent_distribution", "normal"))


def make_optimizer(settings: DictConfig, module: nn.Module, fused: bool) -> torch.optim.Optimizer:
    """`optimizer.d` / `optimizer.g`, with the fused kernel where the class has one (one kernel
    for all parameters instead of one per tensor)."""
    factory = instantiate(settings)
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
