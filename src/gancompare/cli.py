"""Checks of the command line that run before Hydra's app and torch are loaded (fast feedback,
one line each): unknown group options, and values Hydra refuses while composing (a type the
schema does not allow, a key that does not exist)."""

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


def _overrides(args: Sequence[str]) -> list:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    candidates = [a for a in args if not a.startswith("-") and "=" in a]
    try:
        return OverridesParser.create().parse_overrides(candidates)
    except HydraException:
        return []  # malformed: Hydra explains the syntax error itself


def _values(override) -> list | None:
    if not override.is_sweep_override():
        return [override.value()]
    try:
        return list(override.sweep_iterator())
    except Exception:  # glob sweeps: leave them to Hydra
        return None


def config_dirs(args: Sequence[str], conf_dir: Path) -> list[Path]:
    """The project's conf/ and the folders `--config-dir D` (`-cd D`) adds to Hydra's search
    path, whose options count as much as conf/'s."""
    dirs, args = [Path(conf_dir)], list(args)
    for i, arg in enumerate(args):
        if arg in ("--config-dir", "-cd") and i + 1 < len(args):
            dirs.append(Path(args[i + 1]))
        elif arg.startswith("--config-dir="):
            dirs.append(Path(arg.split("=", 1)[1]))
    return dirs


def check_group_choices(args: Sequence[str], conf_dir: Path) -> None:
    """Refuse `group=option` overrides naming an option that has no YAML file, in one line that
    lists the valid options (Hydra's own message, the fallback, spans a dozen lines)."""
    dirs = config_dirs(args, conf_dir)
    for override in _overrides(args):
        group = override.key_or_group
        folders = [d / group for d in dirs if (d / group).is_dir()]
        if override.is_delete() or group.startswith("hydra") or not folders:
            continue
        options = sorted({p.stem for folder in folders for p in folder.glob("*.yaml")})
        for name in _names(_values(override) or []):
            if name not in options and name != "null":
                raise ConfigError(group, f"no option '{name}' in config group '{group}'",
                                  f"choose from {', '.join(options)}")


def check_composition(args: Sequence[str], conf_dir: Path) -> None:
    """Compose the config as Hydra will, and turn what it refuses into one line: the run's
    overrides once, then each value of every swept key that is not a config group."""
    import yaml
    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException

    dirs = config_dirs(args, conf_dir)
    overrides = [o for o in _overrides(args) if not o.key_or_group.startswith("hydra")]
    fixed = [o.input_line for o in overrides if not o.is_sweep_override()]
    if len(dirs) > 1:  # --config-dir: compose over the same search path as Hydra's app
        fixed.append("hydra.searchpath=[" + ",".join(f"file://{d.resolve()}" for d in dirs[1:])
                     + "]")
    trials = [fixed]
    for o in overrides:
        if o.is_sweep_override() and not any((d / o.key_or_group).is_dir() for d in dirs):
            trials += [[*fixed, f"{o.get_key_element()}={v}"] for v in _values(o) or []]
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        for trial in trials:
            try:
                compose(config_name="train", overrides=trial)
            except ConfigCompositionException as error:
                raise _one_line(error, compose) from None
            except yaml.YAMLError as error:  # a config file of the search path is not YAML
                raise _yaml_line(error, dirs) from None


def _yaml_line(error, dirs: list[Path]) -> ConfigError:
    mark = getattr(error, "problem_mark", None)
    path = Path(mark.name) if mark is not None else None
    group = next((str(path.parent.relative_to(d)) for d in dirs
                  if path is not None and path.is_relative_to(d)), "config")
    where = f"{path}, line {mark.line + 1}" if mark is not None else "a config file"
    return ConfigError(group, f"{where} is not valid YAML "
                       f"({getattr(error, 'problem', None) or type(error).__name__})",
                       "correct the YAML syntax at that line of the file")


def _one_line(error: Exception, compose) -> ConfigError:
    from omegaconf import OmegaConf
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    cause = error.__cause__ or error
    key = getattr(cause, "full_key", None) or "overrides"
    problem = str(getattr(cause, "msg", None) or cause).splitlines()[0].rstrip(".")
    if isinstance(cause, ValidationError):
        default = OmegaConf.select(compose(config_name="train"), key, default=None)
        example = f", e.g. {key}={default}" if default is not None else ""
        fix = f"give {key} a value of its type (src/gancompare/schema.py){example}"
    elif isinstance(cause, ConfigAttributeError | ConfigKeyError):
        fix = "check the spelling: `python src/train.py --cfg job` prints every key"
    else:
        fix = "see `python src/train.py --help` for the groups and `--cfg job` for the keys"
    return ConfigError(key, problem, fix)
