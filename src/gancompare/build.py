"""`build(cfg)`: everything a run starts from, the same for training, re-evaluation, the
benchmark and the tests: the checked effective config, the device, the data on it, the GAN, the
evaluator and the fixed latents of the sample grid. Everything is seeded from `seed`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from torch import Tensor

from gancompare.config import check_config, effective_config, resolve_device, seed_everything
from gancompare.data.datasets import Dataset, load_dataset
from gancompare.errors import ConfigError
from gancompare.evaluation import Evaluator
from gancompare.precision import resolve_precision, set_default_dtype
from gancompare.step.gan import GAN, build_gan, sample_latent
from gancompare.step.phases import schedule


@dataclass
class Built:
    cfg: DictConfig  # the effective config: what actually runs
    device: torch.device
    data: Dataset
    gan: GAN
    evaluator: Evaluator
    fixed_z: Tensor  # the sample grid's latents: the same for every run of a seed
    steps_per_epoch: int
    total_steps: int


def build(cfg: DictConfig, device: str | None = None) -> Built:
    """Check cfg, seed everything, and build the run it describes (`device` overrides
    cfg.device)."""
    check_config(cfg)
    cfg = effective_config(cfg)
    schedule(cfg)  # an update scheme the phases cannot run is refused before any data loads
    torch_device = resolve_device(device or cfg.device)
    # `auto` becomes what runs here, so the saved config and the summary say it.
    cfg.trainer.precision = resolve_precision(cfg.trainer.precision, torch_device,
                                              cfg.data.source)
    set_default_dtype(cfg.trainer.precision)
    seed_everything(cfg.seed)
    data = load_dataset(cfg.data, cfg.paths.data, cfg.model.get("resolution"), torch_device)
    batch_size = cfg.trainer.batch_size
    steps_per_epoch = len(data) // batch_size
    if steps_per_epoch == 0:
        raise ConfigError("trainer.batch_size", f"{batch_size} is more than the {len(data)} "
                          f"samples of data={cfg.data.name}", "use a smaller batch size")
    total_steps = cfg.trainer.epochs * steps_per_epoch
    if cfg.trainer.max_steps:
        total_steps = min(total_steps, cfg.trainer.max_steps)
    gan = build_gan(cfg, data, torch_device)
    fixed_z = sample_latent(cfg.trainer.sample_grid ** 2, cfg.model.latent_dim,
                            gan.latent_distribution,
                            generator=torch.Generator().manual_seed(cfg.seed)).to(torch_device)
    evaluator = Evaluator(cfg.eval, cfg.data, data, torch_device)
    if cfg.eval.every_epoch or cfg.eval.every_steps or cfg.eval.final_samples:
        # its settings (feature space, weight files) are refused now, not after training; under
        # a forked RNG, as at every evaluation, so the training stream is the same either way
        with torch.random.fork_rng(devices=[torch_device] if torch_device.type == "cuda" else []):
            evaluator.space  # noqa: B018
    return Built(cfg, torch_device, data, gan, evaluator, fixed_z, steps_per_epoch, total_steps)
