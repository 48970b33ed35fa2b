"""Every numeric key a user can set has a range, and a value outside it is one line naming the
key and the fix; the edge of every range is accepted."""

from __future__ import annotations

import re

import pytest
from conftest import CONF, make_cfg
from omegaconf import OmegaConf, open_dict

from gancompare.errors import ConfigError
from gancompare.ranges import RANGES, Range, check_ranges, numeric_leaves

GROUPS = ("model", "loss", "optimizer", "regularizer", "data", "experiment", "sweep")


def composable_configs() -> list[list[str]]:
    """The baseline with each option of each group, and with every hack (regulariser) at
    once."""
    configs = [[], ["hacks=[smoothing,noisy,separate-batches]"],
               ["regularizer=[gp,dragan,r1,r2,clip]"]]
    for group in GROUPS:
        configs += [[f"{group}={p.stem}"] for p in sorted((CONF / group).glob("*.yaml"))]
    return configs + [["debug=fast"], ["debug=eval"]]


def test_every_numeric_key_of_every_config_has_a_range():
    unranged = set()
    for overrides in composable_configs():
        cfg = make_cfg(*overrides, debug=None)
        for key, _ in numeric_leaves(cfg):
            if key not in RANGES and not key.startswith(("hydra.", "logger.")):
                unranged.add(f"{key} (in {' '.join(overrides) or 'the baseline'})")
    assert not unranged, f"numeric keys without a range in ranges.py: {sorted(unranged)}"


def test_every_config_that_composes_is_within_its_ranges():
    for overrides in composable_configs():
        check_ranges(make_cfg(*overrides, debug=None))


def outside(r: Range) -> object:
    """A value just outside r (or not finite, for an unbounded one)."""
    if r.low is not None:
        below = r.low if r.low_open else r.low - (1 if r.integer else 0.5)
        return int(below) if r.integer else float(below)
    if r.high is not None:
        return r.high + 1
    return float("inf")


def edge(r: Range) -> object:
    """The value at r's closed end (or inside, next to an open one)."""
    if r.low is not None:
        value = r.low + (1 if r.integer else 1e-3) * r.low_open
    else:
        value = r.high if r.high is not None else 0.0
    return int(value) if r.integer else float(value)


def with_value(key: str, value: object):
    cfg = make_cfg("hacks=[smoothing,noisy]", debug=None)
    if key in ("optimizer.d.betas", "optimizer.g.betas", "hacks.smoothing.real",
               "hacks.smoothing.fake", "data.classes"):
        value = [value, value]  # the lists: each element has the range
    with open_dict(cfg):
        OmegaConf.update(cfg, key, value, force_add=True)
    return cfg


@pytest.mark.parametrize("key", sorted(RANGES))
def test_a_value_outside_a_range_is_refused_and_its_edge_accepted(key):
    r = RANGES[key]
    with pytest.raises(ConfigError) as error:
        check_ranges(with_value(key, outside(r)))
    line = str(error.value)
    assert line.startswith(f"{key}: ") and "Fix: set " in line and "\n" not in line
    assert r.describe(with_note=False) in line
    check_ranges(with_value(key, edge(r)))


@pytest.mark.parametrize(("value", "words"), [
    ("abc", "'abc' is not a positive integer"), (True, "True is not a positive integer"),
    (2.5, "2.5 is not a positive integer")])
def test_a_value_of_the_wrong_kind_is_refused_in_an_open_group(value, words):
    with pytest.raises(ConfigError, match=re.escape(f"model.latent_dim: {words}")):
        check_ranges(with_value("model.latent_dim", value))


def test_null_is_accepted_only_where_a_key_means_none_by_it():
    check_ranges(with_value("model.pack", None))
    with pytest.raises(ConfigError, match="model.latent_dim: None is not a positive integer"):
        check_ranges(with_value("model.latent_dim", None))


def test_a_list_names_its_bad_element():
    with pytest.raises(ConfigError, match=re.escape(
            "optimizer.d.betas: [0.5, 1.0] holds 1.0, which is not a number in [0, 1). "
            "Fix: set optimizer.d.betas to a number in [0, 1), e.g. "
            "optimizer.d.betas=[0.5,0.999]")):
        check_ranges(make_cfg("optimizer.d.betas=[0.5,1.0]"))


def test_a_negative_seed_is_refused_before_numpy_sees_it():
    with pytest.raises(ConfigError, match=r"seed: -1 is not an integer in \[0, 2\^32 - 1\]"):
        check_ranges(make_cfg("seed=-1"))
