"""How every pluggable unit is built: a loss, a regulariser, an optimiser, a pair of networks and
a data loader are each named in their YAML file by `_target_` (Hydra's `instantiate`), so adding
one is one unit in `src/` plus one YAML file, and a misspelt one is one line that names its key.

A config read back from a run directory (re-evaluation, a table's archive, a study) is data from
wherever the directory came from: it may name only the project's own units (`check_saved_units`),
since `instantiate` imports and calls whatever a `_target_` names. The command line may still name
any unit its user wants.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from gancompare.errors import ConfigError

CONF = Path(__file__).resolve().parents[2] / "conf"


def build_unit(spec: Any, key: str, fix: str, kind: type | tuple[type, ...] | None = None) -> Any:
    """`instantiate(spec)` for the config node at `key`; `kind`: the type the unit must have
    (None: any callable, e.g. a `_partial_` factory)."""
    from hydra.utils import instantiate

    if not isinstance(spec, Mapping) or "_target_" not in spec:
        raise ConfigError(key, f"{spec!r} names no unit (no _target_)", fix)
    try:
        unit = instantiate(spec)
    except Exception as error:  # a misspelt _target_ or argument
        cause = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"{key}._target_", f"'{spec['_target_']}' cannot be built ({cause})",
                          fix) from None
    if not (callable(unit) if kind is None else isinstance(unit, kind)):
        wanted = "a callable" if kind is None else " or ".join(
            k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ConfigError(f"{key}._target_", f"'{spec['_target_']}' built "
                          f"{type(unit).__name__}, which is not {wanted}", fix)
    return unit


def targets(node: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """(key of the node, its `_target_`) for every node that has one, nested ones included
    (in `_args_`, lists and any other value)."""
    if isinstance(node, Mapping):
        if "_target_" in node:
            yield key or "<root>", node["_target_"]
        for name, value in node.items():
            yield from targets(value, f"{key}.{name}" if key else str(name))
    elif isinstance(node, list | tuple):
        for index, value in enumerate(node):
            yield from targets(value, f"{key}[{index}]")


@functools.cache
def project_units() -> frozenset[str]:
    """The units a saved config may name: every `_target_` of the project's YAML files (conf/),
    and torch's optimisers (torch.optim.<Optimizer>), which only hold numbers."""
    import torch
    import yaml

    named: set[str] = set()
    for path in sorted(CONF.rglob("*.yaml")):
        named |= {t for _, t in targets(yaml.safe_load(path.read_text()) or {})
                  if isinstance(t, str)}
    optimisers = {f"torch.optim.{name}" for name in dir(torch.optim)
                  if isinstance(getattr(torch.optim, name), type)
                  and issubclass(getattr(torch.optim, name), torch.optim.Optimizer)}
    return frozenset(named | optimisers)


def check_saved_units(config: Mapping[str, Any], source: Path | str) -> None:
    """Refuse a saved config (a plain container) that names a unit the project does not have,
    before anything is built from it: one line naming the key, nothing imported or called."""
    allowed = project_units()
    for key, target in targets(config):
        if not isinstance(target, str) or target not in allowed:
            raise ConfigError(
                f"{key}._target_", f"{source} names {target!r}, which is not one of the "
                "project's units; a run directory is read as data, and only the units that "
                "conf/ names are built from it (nothing was imported or run)",
                "re-evaluate runs written by this project; if the unit is your own and you "
                "trust the run, name it in a YAML file under conf/ first")
