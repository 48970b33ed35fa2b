"""How every pluggable unit is built: a loss, a regulariser, an optimiser, a pair of networks and
a data loader are each named in their YAML file by `_target_` (Hydra's `instantiate`), so adding
one is one unit in `src/` plus one YAML file, and a misspelt one is one line that names its key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gancompare.errors import ConfigError


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
