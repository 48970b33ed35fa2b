"""Several seeds of one config trained as one batched computation (`trainer.seeds=[0,1,...]`).

Each run is first built exactly as its own process would build it (`build.build` with
`seed=<s>`: its data, weights, evaluator, sample latents and the RNG state they leave). Then:
- `StackedModule`: the K copies of G (of D) become one module whose parameters and buffers carry
  a leading run dimension (`torch.func.stack_module_state`); its forward is the single network
  under `torch.func.vmap`, so linears become batched matmuls, convolutions grouped ones and
  batch norm keeps per-run statistics.
- One optimiser over the stacked parameters: Adam, RMSprop and SGD act elementwise, so each run
  keeps its own moments; their shared step count is the same for every run.
- `RunStreams`: every random draw (data batches, latents, label noise, penalty interpolation,
  dropout masks) is made for each run with the global generators set to that run's own state,
  so run k sees the numbers its own process would draw, in the same order.
- `StackedRuns.member(gan, k)` writes run k's slice back into its own `GAN`, for its evaluation,
  samples and checkpoint, which are then exactly those of a single run.
Each run matches the same seed trained alone up to float summation order (a batched matmul or
grouped convolution may sum in another order than the single one); tests/test_seeds.py checks it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from gancompare.networks.layers import Dropout
from gancompare.run import checkpoint
from gancompare.step.gan import GAN, make_optimizer
from gancompare.step.phases import OneRun


class RunStreams:
    """Each run's RNG state (in `checkpoint.rng_state()`'s format). `use(k)` makes run k's
    torch (and CUDA) generators the global ones for a draw; `use_all(k)` also Python's and
    NumPy's, for evaluation, which may draw from them."""

    def __init__(self, states: list[dict[str, Any]]) -> None:
        self.states = [dict(s) for s in states]

    def __len__(self) -> int:
        return len(self.states)

    @contextlib.contextmanager
    def use(self, k: int) -> Iterator[None]:
        state = self.states[k]
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        try:
            yield
        finally:
            state["torch"] = torch.get_rng_state()
            if "cuda" in state and torch.cuda.is_available():
                state["cuda"] = torch.cuda.get_rng_state_all()

    @contextlib.contextmanager
    def use_all(self, k: int) -> Iterator[None]:
        checkpoint.restore_rng(self.states[k])
        try:
            yield
        finally:
            self.states[k] = checkpoint.rng_state()

    def draw(self, make: Callable[[], Any]) -> list[Any]:
        """make() once per run, each with its run's generators."""
        results = []
        for k in range(len(self)):
            with self.use(k):
                results.append(make())
        return results


class StackedModule(nn.Module):
    """K networks of one architecture as one: parameters [K, ...] in the single network's
    `parameters()` order, forward over inputs [K, N, ...] by vmap of the single network."""

    def __init__(self, modules: list[nn.Module], streams: RunStreams) -> None:
        super().__init__()
        params, buffers = stack_module_state(modules)
        self.param_names, self.buffer_names = list(params), list(buffers)
        self.stacked = nn.ParameterList([nn.Parameter(p) for p in params.values()])
        for i, b in enumerate(buffers.values()):
            self.register_buffer(f"buffer{i}", b)
        # The architecture without weights; kept out of the module tree (no parameters of its
        # own for the optimiser or state_dict).
        self.__dict__["template"] = copy.deepcopy(modules[0]).to("meta")
        self.__dict__["streams"] = streams
        self._dropout_shapes: dict[tuple[int, ...], list[torch.Size]] = {}
        for module in self.template.modules():
            if type(module) is nn.Linear:
                module.forward = types.MethodType(_weight_major_linear, module)
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.register_forward_pre_hook(_norm_in_float32)
                module.register_forward_hook(_norm_out_in_input_dtype)

    @property
    def stacked_buffers(self) -> list[Tensor]:
        return [getattr(self, f"buffer{i}") for i in range(len(self.buffer_names))]

    def train(self, mode: bool = True) -> StackedModule:
        self.template.train(mode)
        return super().train(mode)

    def dropouts(self) -> list[Dropout]:
        return [m for m in self.template.modules() if isinstance(m, Dropout) and m.draws]

    def dropout_shapes(self, sample_shape: tuple[int, ...]) -> list[torch.Size]:
        """The shapes each drawing dropout layer sees for one input of `sample_shape` (found once
        per shape by a pass on the meta device, which computes shapes only)."""
        if sample_shape not in self._dropout_shapes:
            shapes: list[torch.Size] = []
            hooks = [m.register_forward_pre_hook(lambda _, args: shapes.append(args[0].shape))
                     for m in self.dropouts()]
            try:
                with torch.no_grad():
                    self.template(torch.empty(sample_shape, device="meta"))
            finally:
                for hook in hooks:
                    hook.remove()
            self._dropout_shapes[sample_shape] = shapes
        return self._dropout_shapes[sample_shape]

    def forward(self, x: Tensor) -> Tensor:
        dropouts = self.dropouts()
        noise: list[Tensor] = []
        if dropouts:  # each run's masks from its own stream, in the single network's order
            shapes = self.dropout_shapes(tuple(x.shape[1:]))
            per_run = self.streams.draw(
                lambda: [torch.rand(s, device=x.device) for s in shapes])
            noise = [torch.stack(layer) for layer in zip(*per_run, strict=True)]

        def run(params: list[Tensor], buffers: list[Tensor], noise: list[Tensor],
                x: Tensor) -> Tensor:
            for layer, u in zip(dropouts, noise, strict=True):
                layer.noise = u
            try:
                return functional_call(self.template, (
                    dict(zip(self.param_names, params, strict=True)),
                    dict(zip(self.buffer_names, buffers, strict=True))), (x,))
            finally:
                for layer in dropouts:
                    layer.noise = None

        # randomness="error": a draw not routed through the run streams would be shared
        return vmap(run, randomness="error")(list(self.stacked), self.stacked_buffers, noise, x)

    @torch.no_grad()
    def copy_to(self, module: nn.Module, k: int) -> None:
        """Write run k's parameters and buffers into a single network."""
        for p, s in zip(module.parameters(), self.stacked, strict=True):
            p.copy_(s[k])
        for b, s in zip(module.buffers(), self.stacked_buffers, strict=True):
            b.copy_(s[k])


def _weight_major_linear(self: nn.Linear, x: Tensor) -> Tensor:
    """nn.Linear as (W xᵀ)ᵀ: under vmap its weight gradient then comes out in the weight's own
    layout (x Wᵀ gives it transposed, and backward copied it back: a fifth of an mlp step). The
    output is a transposed view, which the next matmul reads as it is."""
    if x.dim() != 2:
        return F.linear(x, self.weight, self.bias)
    y = (self.weight @ x.mT).mT
    return y if self.bias is None else y + self.bias


def _norm_in_float32(module: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Under autocast a single network's batch norm takes bf16 input with float32 weights (and
    returns bf16); vmap's batch norm wants one dtype, so it runs in float32 and the output is
    cast back, as the single one computes it."""
    x = args[0]
    module.__dict__["input_dtype"] = x.dtype
    return (x.float(), *args[1:]) if x.dtype in (torch.bfloat16, torch.float16) else args


def _norm_out_in_input_dtype(module: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> Tensor:
    return out.to(module.__dict__.pop("input_dtype", out.dtype))


def _params(optimizer: torch.optim.Optimizer) -> list[Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def stack_optimizer_state(optimizers: list[torch.optim.Optimizer],
                          stacked: torch.optim.Optimizer) -> dict[str, Any]:
    """The state dict of one optimiser over stacked parameters, from K single ones. Each
    moment is laid out as its parameter: a fused optimiser reads them all as flat memory."""
    states = [o.state_dict() for o in optimizers]
    params = _params(stacked)
    state_dict = copy.deepcopy(states[0])
    for i, state in state_dict["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value) and key != "step":  # the step count is shared
                state[key] = torch.empty_like(params[i]).copy_(
                    torch.stack([s["state"][i][key] for s in states]))
    return state_dict


def optimizer_state_of(state_dict: dict[str, Any], k: int,
                       optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Run k's share of a stacked optimiser's state dict for its own `optimizer`: copies laid
    out as its parameters (a view would keep, and a checkpoint save, every run's moments)."""
    params = _params(optimizer)
    return {"param_groups": state_dict["param_groups"],
            "state": {i: {key: (torch.empty_like(params[i]).copy_(value[k]) if key != "step"
                                else value.clone()) if torch.is_tensor(value) else value
                          for key, value in state.items()}
                      for i, state in state_dict["state"].items()}}


class StackedRuns(OneRun):
    """K runs in one batched computation: samples in dimension 1 (after the run), every draw made
    once per run from its own stream, losses vmapped to one value per run, gradient norms per
    run. `member(gan, k)` writes run k's slice back into its own `GAN`."""

    batch_dim = 1

    def __init__(self, members: list[GAN], streams: RunStreams) -> None:
        self.members, self.streams = members, streams
        self.count = len(members)
        self._synced: dict[int, tuple[int, bool]] = {}  # run k: (steps_done, with optimisers)

    def draw(self, make: Callable[[], Any]) -> Any:
        per_run = self.streams.draw(make)
        if isinstance(per_run[0], tuple):  # several tensors per draw (real and fake labels)
            return tuple(torch.stack(parts) for parts in zip(*per_run, strict=True))
        return torch.stack(per_run)

    def per_run(self, loss: Callable[..., Any], *args: Tensor) -> Any:
        return vmap(loss)(*args)

    def grad_norm(self, module: nn.Module) -> Tensor:
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if not grads:
            return torch.zeros(self.count, device=next(module.parameters()).device)
        return torch.stack([g.flatten(1).norm(2, dim=1) for g in grads]).norm(2, dim=0)

    def figures_of(self, figures: dict[str, Tensor], k: int) -> dict[str, Tensor]:
        return {name: value[k] for name, value in figures.items()}

    def member(self, gan: GAN, k: int, optimizers: bool = False) -> GAN:
        member = self.members[k]
        synced = self._synced.get(k)
        if synced is None or synced[0] != gan.steps_done or (optimizers and not synced[1]):
            gan.generator.copy_to(member.generator, k)
            gan.discriminator.copy_to(member.discriminator, k)
            if optimizers:
                for name in ("g_optimizer", "d_optimizer"):
                    getattr(member, name).load_state_dict(optimizer_state_of(
                        getattr(gan, name).state_dict(), k, getattr(member, name)))
            self._synced[k] = (gan.steps_done, optimizers)
        return member

    def rng(self, k: int) -> contextlib.AbstractContextManager:
        return self.streams.use_all(k)

    def rng_state(self, k: int) -> dict[str, Any]:
        return self.streams.states[k]


def stack_runs(members: list[GAN], streams: RunStreams, cfg_optimizer: Any,
               fused: bool) -> GAN:
    """K built (and possibly resumed) runs of one config as one GAN whose networks are stacked
    and whose `runs` is a `StackedRuns`; their optimisers' state is carried over."""
    first = members[0]
    generator = StackedModule([m.generator for m in members], streams)
    discriminator = StackedModule([m.discriminator for m in members], streams)
    fields = {f.name: getattr(first, f.name) for f in dataclasses.fields(GAN)
              if not f.name.startswith("_")}
    gan = GAN(**fields | dict(
        generator=generator, discriminator=discriminator,
        g_optimizer=make_optimizer(cfg_optimizer.g, generator, fused, "g"),
        d_optimizer=make_optimizer(cfg_optimizer.d, discriminator, fused, "d"),
        channels_last=False, runs=StackedRuns(members, streams)))
    for name in ("g_optimizer", "d_optimizer"):
        getattr(gan, name).load_state_dict(stack_optimizer_state(
            [getattr(m, name) for m in members], getattr(gan, name)))
    return gan
