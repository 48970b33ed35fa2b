"""What a run directory or a study holds, read as data: it may come from anywhere (a colleague's
archive, a download), so nothing in it is run. YAML that does not parse, a config naming a unit
the project does not have (`units.check_saved_units`) or holding an interpolation, is one line
naming the file; the reader's machine, not the file, says where the data lies and whether W&B
uploads."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from gancompare import PROJECT_ROOT
from gancompare.errors import ConfigError
from gancompare.units import check_saved_units


def read_saved(path: Path) -> DictConfig:
    """A run directory's config.yaml read as data, ready to build from: parsed (a YAML error is
    one line naming the file), in today's keys (`upgrade_saved`), refused when it names a unit
    the project does not have (`units.check_saved_units`) or holds an interpolation (a saved
    config is resolved, and a resolver would run when it is read), with this machine's data
    folder and W&B mode: where the data lies and whether to upload are the reader's to say."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("run_dir", f"{path.parent} holds no {path.name}",
                          "pass a run directory written by src/train.py")
    loaded = read_yaml(path)
    if not isinstance(loaded, DictConfig):
        raise ConfigError("run_dir", f"{path} holds no mapping of config keys",
                          "pass a run directory written by src/train.py")
    plain = OmegaConf.to_container(loaded, resolve=False)
    for key, value in _strings(plain):
        if "${" in value:
            raise ConfigError(key, f"{path} holds the interpolation {value!r}; a run's saved "
                              "config is resolved, and resolving one from elsewhere could read "
                              "this machine's environment", "re-evaluate runs written by "
                              "src/train.py (their config.yaml has plain values)")
    from gancompare.config import upgrade_saved

    try:
        cfg = upgrade_saved(loaded)  # renames strings, builds nothing
    except (OmegaConfBaseException, AttributeError, KeyError, TypeError) as error:
        cause = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ConfigError("run_dir", f"{path} is not a config src/train.py wrote ({cause})",
                          "pass a run directory written by src/train.py") from None
    check_saved_units(OmegaConf.to_container(cfg, resolve=False), path)
    with open_dict(cfg):
        cfg.paths = {"root": str(PROJECT_ROOT), "data": str(PROJECT_ROOT / "data"),
                     "outputs": str(PROJECT_ROOT / "outputs")}
        if OmegaConf.select(cfg, "logger.wandb") is not None:
            cfg.logger.wandb.mode = os.environ.get("WANDB_MODE", "offline")
    return cfg


def read_yaml(path: Path, key: str = "run_dir") -> DictConfig | ListConfig:
    """A YAML file of a run directory or study; a syntax error or a file that is not text is one
    line naming the file (and the line)."""
    import yaml

    try:
        return OmegaConf.load(path)
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        where = getattr(error, "problem_mark", None)
        at = f", line {where.line + 1}" if where is not None else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise ConfigError(key, f"{path} is not valid YAML ({problem}{at})",
                          "restore the file (a run's .hydra/ folder and the results archive "
                          "keep copies), or move the run directory aside") from None


def _strings(node: Any, key: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for name, value in node.items():
            yield from _strings(value, f"{key}.{name}" if key else str(name))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, f"{key}[{index}]")
    elif isinstance(node, str):
        yield key, node
