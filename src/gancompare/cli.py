"""Checks of the command line that run before Hydra and torch are loaded (fast feedback)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from gancompare.errors import ConfigError


def _names(value: object) -> Iterable[str]:
    if isinstance(value, list | tuple):
        for item in value:
            yield from _names(item)
    elif isinstance(value, str):
        yield value


def check_group_choices(args: Sequence[str], conf_dir: Path) -> None:
    """Refuse `group=option` overrides naming an option that has no YAML file, in one line that
    lists the valid options (Hydra's own message, the fallback, spans a dozen lines)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    candidates = [a for a in args if not a.startswith("-") and "=" in a]
    try:
        overrides = OverridesParser.create().parse_overrides(candidates)
    except HydraException:
        return  # malformed: Hydra explains the syntax error itself
    for override in overrides:
        group = override.key_or_group
        folder = Path(conf_dir) / group
        if override.is_delete() or group.startswith("hydra") or not folder.is_dir():
            continue
        value = override.value()
        if override.is_sweep_override():
            try:
                value = list(override.sweep_iterator())
            except Exception:  # glob / range sweeps: leave them to Hydra
                continue
        options = sorted(p.stem for p in folder.glob("*.yaml"))
        for name in _names(value):
            if name not in options and name != "null":
                raise ConfigError(group, f"no option '{name}' in config group '{group}'",
                                  f"choose from {', '.join(options)}")
