"""The range of every numeric key a user can set, in one table.

Hydra's schema (`schema.py`) checks types while composing; what a type cannot say (a positive
batch size, a fraction, a seed NumPy accepts) is here, so that a value out of range ends in one
line naming the key and the fix instead of a traceback deep in torch or NumPy. `check_ranges`
runs in `config.check_config`; tests/test_ranges.py checks that every numeric leaf of every
composable config has an entry, so a new key cannot slip through unchecked.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from omegaconf import DictConfig, ListConfig, OmegaConf

from gancompare.errors import ConfigError

_ABSENT = object()


@dataclass(frozen=True)
class Range:
    """An interval for a number (or for each element of a list of numbers)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself excluded
    high_open: bool = False
    integer: bool = False
    optional: bool = False  # null allowed (the key's "none")
    example: str = ""
    note: str = ""  # what an edge value means, said with the range

    def admits(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.integer and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self, with_note: bool = True) -> str:
        kind = "integer" if self.integer else "number"
        if self.high is None and self.low == (1 if self.integer else 0) and \
                (self.integer or self.low_open):
            text = f"a positive {kind}"
        elif self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            text = f"{'an' if self.integer else 'a'} {kind} in {left}{_g(self.low)}, " \
                   f"{_g(self.high)}{right}"
        elif self.low is not None:
            text = f"{'an' if self.integer else 'a'} {kind} {'>' if self.low_open else '>='} " \
                   f"{_g(self.low)}"
        else:
            text = f"a finite {kind}"
        return text + (f" ({self.note})" if self.note and with_note else "")


def _g(x: float) -> str:
    return f"{x:g}" if abs(x) < 1e6 else f"2^{round(math.log2(x + 1))} - 1"


def integer(low: int, high: int | None = None, **kw: object) -> Range:
    return Range(low=low, high=high, integer=True, **kw)  # type: ignore[arg-type]


def positive(**kw: object) -> Range:
    return Range(low=0, low_open=True, **kw)  # type: ignore[arg-type]


def fraction(**kw: object) -> Range:
    return Range(low=0, high=1, **kw)  # type: ignore[arg-type]


SEED = integer(0, 2**32 - 1, example="0")  # what NumPy's seed accepts
OPTIMIZER = {  # torch.optim's arguments, for optimizer.d and optimizer.g
    "lr": positive(example="2e-4"),
    "betas": Range(low=0, high=1, high_open=True, example="[0.5,0.999]"),
    "eps": Range(low=0, example="1e-8"),
    "weight_decay": Range(low=0, example="0"),
    "momentum": Range(low=0, example="0"),
    "alpha": Range(low=0, high=1, high_open=True, example="0.99"),
}

RANGES: dict[str, Range] = {
    "seed": SEED,
    # data before trainer: trainer.batch_size defaults to ${data.batch_size}
    "data.batch_size": integer(2, example="128", note="D needs one real and one fake sample"),
    "data.n_samples": integer(1, example="100000"),
    "data.n_test_samples": integer(1, example="10000"),
    "data.seed": SEED,
    "data.resolution": integer(1, optional=True, example="64"),
    "data.classes": integer(0, 9, optional=True, example="[8]"),
    "trainer.epochs": integer(1, example="10"),
    "trainer.max_steps": integer(1, optional=True, example="200"),
    "trainer.batch_size": integer(2, example="128", note="D needs one real and one fake sample"),
    "trainer.log_every": integer(1, example="25"),
    "trainer.sample_grid": integer(1, example="10"),
    "trainer.keep_checkpoints": integer(0, example="2", note="0 keeps them all"),
    "trainer.threads": integer(1, optional=True, example="2"),
    "eval.every_steps": integer(1, optional=True, example="250"),
    "eval.epoch_samples": integer(2, example="1000"),
    "eval.final_samples": integer(0, example="10000", note="0 skips the final evaluation"),
    "eval.reference_samples": integer(2, example="10000"),
    "eval.ndb_bins": integer(2, example="100"),
    "eval.prdc_k": integer(1, example="5"),
    "eval.prdc_samples": integer(2, example="5000"),
    "eval.kid_subset_size": integer(2, example="1000"),
    "eval.kid_subsets": integer(1, example="100"),
    "eval.duplicate_quantile": Range(low=0, high=1, low_open=True, high_open=True,
                                     example="0.01"),
    "eval.mixture_samples": integer(1, example="2500"),
    "eval.stacked_samples": integer(1, example="26000"),
    "eval.seed": SEED,
    "verdict.window": Range(low=0, high=1, low_open=True, example="0.5"),
    "verdict.d_loss_max": Range(low=0, example="0.05"),
    "verdict.d_acc_min": fraction(example="0.98"),
    "verdict.sustained_min": fraction(example="0.8"),
    "verdict.g_loss_climbing_min": Range(example="5.0"),
    "verdict.precision_min": fraction(example="0.05"),
    "verdict.distinct_min": fraction(example="0.5"),
    "verdict.distinct_spread_max": Range(low=0, example="0.6"),  # a ratio: may exceed 1
    "verdict.coverage_min": fraction(example="0.03"),
    "verdict.mode_share_min": fraction(example="0.75"),
    "verdict.class_share_min": fraction(example="0.8"),
    "verdict.oscillation_autocorr_min": Range(low=-1, high=1, example="0.3"),
    "verdict.d_acc_fake_min": fraction(example="0.9"),
    "model.latent_dim": integer(1, example="50"),
    "model.pack": integer(1, optional=True, example="2"),
    "model.resolution": integer(1, optional=True, example="28"),
    "model.init_std": positive(example="0.02"),
    "model.norm_init_std": Range(low=0, optional=True, example="0.02"),
    "regularizer.every": integer(1, example="16", note="1: the penalties in every D update"),
    "regularizer.gp.weight": Range(low=0, example="10"),
    "regularizer.dragan.weight": Range(low=0, example="10"),
    "regularizer.r1.gamma": Range(low=0, example="1"),
    "regularizer.r2.gamma": Range(low=0, example="1"),
    "regularizer.clip.limit": positive(example="0.01"),
    "optimizer.d_steps": integer(1, example="5"),
    "optimizer.g_steps": integer(1, example="2"),
    **{f"optimizer.{net}.{arg}": r for net in ("d", "g") for arg, r in OPTIMIZER.items()},
    "hacks.noisy.flip": Range(low=0, high=0.5, example="0.05",
                              note="a share of D's labels flipped; above 0.5 they mean the "
                                   "opposite"),
    "hacks.smoothing.real": Range(low=0, example="[0.7,1.2]"),
    "hacks.smoothing.fake": Range(low=0, optional=True, example="[0.0,0.3]"),
}


def numeric_leaves(cfg: DictConfig, prefix: str = "") -> Iterator[tuple[str, object]]:
    """Every number in cfg, by dotted key; a list of numbers is one key (its elements share a
    range). Keys whose interpolation cannot resolve are skipped."""
    for key in cfg:
        path = f"{prefix}{key}"
        try:
            value = cfg[key]
        except Exception:  # noqa: BLE001  (an unresolvable interpolation: not a number here)
            continue
        if isinstance(value, DictConfig):
            yield from numeric_leaves(value, f"{path}.")
        elif isinstance(value, ListConfig):
            if any(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
                yield path, value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            yield path, value


def check_ranges(cfg: DictConfig) -> None:
    """Refuse the first key of RANGES whose value is out of its range (one line, with the fix)."""
    for key, expected in RANGES.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is _ABSENT or (value is None and expected.optional):
            continue
        values = list(value) if isinstance(value, ListConfig | list | tuple) else [value]
        bad = [v for v in values if not expected.admits(v)]
        if bad or not values:
            what = expected.describe()
            if isinstance(value, ListConfig | list | tuple):
                problem = f"{list(value)!r} holds {bad[0]!r}, which is not {what}" if bad \
                    else "an empty list"
            else:
                problem = f"{value!r} is not {what}"
            example = f", e.g. {key}={expected.example}" if expected.example else ""
            null = " (or null)" if expected.optional else ""
            raise ConfigError(key, problem,
                              f"set {key} to {expected.describe(False)}{null}{example}")
