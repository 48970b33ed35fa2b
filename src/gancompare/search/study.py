"""The search sweep loop (`hydra/sweeper=study`, which every `search=<space>` file selects).

Hydra's Optuna sweeper (hydra-optuna-sweeper) parses the search space and launches the trials;
this loop replaces its `sweep` for three things a study of GAN runs needs:

- **One study per setting.** Choice sweeps on the command line (`loss=hinge,lsgan`) are a grid of
  studies, each searched with `hydra.sweeper.n_trials` trials: Lucic et al.'s budget per loss.
  Each study is named by `search.study` (space, loss, data, model) in one SQLite file in the
  sweep directory.
- **Killed and started again, it continues.** `n_trials` is the study's size, not the number to
  add: finished trials count. A trial left running by a launcher of this machine that is gone
  is run again in its own run directory, so the run resumes from its checkpoint. Two launchers
  given the same command share the study and stop when together they reach `n_trials`.
- **Every trial counts.** A run that diverged, failed or was refused is recorded with the worst
  value (`objective.trial_value`), with its status and verdict as trial attributes.

Each trial is an ordinary run directory, `<sweep dir>/<study>/trial<k>`, and W&B run; after
every batch the study's trial table is written beside it (`<study>/trials.csv`).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobStatus
from hydra_plugins.hydra_optuna_sweeper._impl import (
    OptunaSweeperImpl,
    create_params_from_overrides,
)
from omegaconf import OmegaConf
from optuna.trial import TrialState

from gancompare.errors import ConfigError
from gancompare.search import DISTRIBUTIONS_FILE, STUDY_FILE, TRIALS_FILE
from gancompare.search.objective import metric_name, trial_value, worst_value

log = logging.getLogger(__name__)
logging.getLogger("alembic").setLevel(logging.WARNING)  # Optuna's schema set-up, at INFO
# What a study remembers of the command that started it; a different one is refused.
SETTING_ATTR = "overrides"
ASK_TO_LAUNCH_S = 600  # a trial asked for and not launched after this long was killed


class TrialSeededSampler(optuna.samplers.RandomSampler):
    """Random search whose draws depend only on (seed, trial number, parameter): a study
    continued after a kill, or shared by two launchers, draws what one launcher would have."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self.seed = seed

    def sample_independent(self, study, trial, param_name, param_distribution):  # noqa: ANN001
        key = [self.seed, trial.number, *param_name.encode()]
        self._rng = np.random.RandomState(np.array(key, dtype=np.uint32))
        return super().sample_independent(study, trial, param_name, param_distribution)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def study_grid(arguments: list[str]) -> tuple[list[list[str]], list[str]]:
    """The command line's choice sweeps (`loss=a,b`) as a grid of settings, one study each,
    and the other arguments (fixed values and Optuna's intervals)."""
    parsed = OverridesParser.create().parse_overrides(arguments)
    axes, rest = [], []
    for override, text in zip(parsed, arguments, strict=True):
        if override.is_choice_sweep():
            key = override.get_key_element()
            axes.append([f"{key}={v}" for v in override.sweep_string_iterator()])
        else:
            rest.append(text)
    return [list(point) for point in product(*axes)], rest


class StudySweeperImpl(OptunaSweeperImpl):
    def sweep(self, arguments: list[str]) -> None:
        for key, value, meaning in (("n_trials", self.n_trials, "each study's trials, e.g. 16"),
                                    ("n_jobs", self.n_jobs, "the trials run at once, e.g. 1")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"hydra.sweeper.{key}", f"{value!r} is not a positive "
                                  "integer", f"set hydra.sweeper.{key} to {meaning}")
        import sqlalchemy.exc

        self._process_searchspace_config()
        grid, rest = study_grid(list(arguments))
        space = self._parse_sweeper_params_config()
        try:
            for point in grid:
                self._run_study(point, rest, space)
        except sqlalchemy.exc.DatabaseError as error:  # a damaged file: malformed, not SQLite
            cause = str(getattr(error, "orig", error)).splitlines()[0]
            path = str(self.storage).removeprefix("sqlite:///")
            raise ConfigError("hydra.sweeper.storage", f"{path} cannot be read as a study "
                              f"({cause})", f"move it aside (mv {path} {path}.damaged) and run "
                              "the same command: each study is rebuilt from its trials.csv") \
                from None

    def _run_study(self, point: list[str], rest: list[str], space: list[str]) -> None:
        loader = self.hydra_context.config_loader
        setting = loader.load_sweep_config(self.config, [*point, *rest])
        if setting.get("search") is None:
            raise ConfigError("hydra.sweeper", "the study sweeper runs a search space",
                              "choose one with search=<name> (conf/search/)")
        if setting.trainer.seeds is not None:
            raise ConfigError("trainer.seeds", "a search trial is one run",
                              "retrain the best trial over seeds after the search")
        search = setting.search
        direction = str(search.direction)
        worst = worst_value(direction)
        metric = metric_name(search, setting.data)
        distributions, fixed = create_params_from_overrides([*space, *rest])
        for name in fixed:
            distributions.pop(name, None)
        fixed_overrides = [*point, *[f"{k}={v}" for k, v in fixed.items()]]
        study = _open_study(str(search.study), self.storage, self.sampler, direction)
        self._check_setting(study, fixed_overrides, sorted(distributions))
        study_dir = Path(self.config.hydra.sweep.dir) / str(search.study)
        study_dir.mkdir(parents=True, exist_ok=True)
        with _locked(study_dir / ".import.lock"):  # two launchers import the table once
            if not study.trials and (study_dir / DISTRIBUTIONS_FILE).is_file():
                imported = import_trials(study, study_dir)
                log.info("Study %s: %d finished trials imported from %s", study.study_name,
                         imported, study_dir / TRIALS_FILE)
        (study_dir / STUDY_FILE).write_text(json.dumps({  # what scripts/compare.py reads
            "study": study.study_name, "setting": point, "metric": metric,
            # how comparisons name it: the grid point's values, else its loss
            "label": " · ".join(o.split("=", 1)[1] for o in point) or str(setting.loss.name),
            "direction": direction, "searched": sorted(distributions), "n_trials": self.n_trials},
            indent=2))
        log.info("Study %s (%s, %s %s): %d of %d trials done", study.study_name, self.storage,
                 direction, metric, self._done(study), self.n_trials)
        extend = self.custom_search_space_extender
        host, pid = socket.gethostname(), os.getpid()
        while True:
            # claimed under a lock: two launchers must not both take a gone launcher's trial
            with _locked(study_dir / ".claim.lock"):
                resumed = self._stale(study, host)[: self.n_jobs]
                free = self.n_trials - self._done(study) - self._running(study)
                # ask(fixed_distributions) draws the space's values (optuna's public API,
                # where the stock sweeper calls the private trial._suggest)
                fresh = [study.ask(fixed_distributions=distributions)
                         for _ in range(max(0, min(self.n_jobs - len(resumed), free)))]
                fresh = within_budget(study, fresh, self.n_trials)
                for trial in fresh:
                    if extend:
                        extend(setting, trial)
                    trial.set_user_attr("run", trial.number)
                batch = resumed + fresh
                for trial in batch:  # this launcher runs them now
                    trial.set_user_attr("host", host)
                    trial.set_user_attr("pid", pid)
            if not batch:
                break
            for trial in resumed:  # from the storage: data, run only within this space
                check_stored_trial(trial, distributions, self.storage)
            jobs = [[*fixed_overrides, *[f"{k}={v}" for k, v in trial.params.items()],
                     f"search.trial={trial.user_attrs['run']}"] for trial in batch]
            if resumed:
                log.info("Study %s: running again trials %s, left running by a launcher that "
                         "has gone", study.study_name, [t.number for t in resumed])
            returns = self.launcher.launch(jobs, initial_job_idx=self.job_idx)
            self.job_idx += len(returns)
            for trial, ret in zip(batch, returns, strict=True):
                summary = _summary(ret)
                for key in ("status", "verdict"):
                    trial.set_user_attr(key, (summary or {}).get(key, "failed"))
                study.tell(trial, trial_value(summary, metric, direction))
            write_trials(study, study_dir / TRIALS_FILE)
        finished = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                    if t.value != worst]
        best = (min if direction == "minimize" else max)(
            finished, key=lambda t: t.value, default=None)
        log.info("Study %s: %d trials, %d finished; best %s", study.study_name,
                 self._done(study), len(finished),
                 f"{best.value:.4g} with {best.params}" if best else "none")
        OmegaConf.save(OmegaConf.create({
            "study": study.study_name, "metric": metric, "direction": direction,
            "trials": self._done(study), "finished": len(finished),
            "best_params": best.params if best else None,
            "best_value": best.value if best else None}), study_dir / "optimization_results.yaml")

    def _check_setting(self, study: optuna.Study, fixed: list[str], space: list[str]) -> None:
        """A study continues only the command that started it."""
        setting = {"fixed": sorted(fixed), "space": space}
        saved = study.user_attrs.get(SETTING_ATTR)
        if saved is None:
            study.set_user_attr(SETTING_ATTR, setting)
        elif saved != setting:
            raise ConfigError("search.study", f"study '{study.study_name}' in {self.storage} "
                              f"was started with {json.dumps(saved)}, this command gives "
                              f"{json.dumps(setting)}", "give the new study its own name "
                              "(search.study=<name>) or sweep directory (hydra.sweep.dir)")

    @staticmethod
    def _done(study: optuna.Study) -> int:
        return sum(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False))

    @staticmethod
    def _running(study: optuna.Study) -> int:
        return sum(t.state == TrialState.RUNNING for t in study.get_trials(deepcopy=False))

    @staticmethod
    def _stale(study: optuna.Study, host: str) -> list[optuna.Trial]:
        """Trials left running by a launcher of this machine that has gone: run them again."""
        now = datetime.datetime.now()

        def gone(t: optuna.trial.FrozenTrial) -> bool:
            if "pid" not in t.user_attrs:  # asked, and killed before it was launched
                return (now - t.datetime_start).total_seconds() > ASK_TO_LAUNCH_S
            return t.user_attrs.get("host") == host and not _alive(int(t.user_attrs["pid"]))

        stale = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                 if gone(t)]
        return [optuna.Trial(study, t._trial_id) for t in stale]


def check_stored_trial(trial: optuna.Trial, distributions: dict[str, Any],
                       storage: str | None) -> None:
    """A trial read back from a study's storage, before it is run again: its parameters are
    this command's searched keys with values inside their distributions, and its run number
    an integer; a study file from elsewhere cannot make it set any other key."""
    problem = None
    run = trial.user_attrs.get("run")
    if isinstance(run, bool) or not isinstance(run, int):
        problem = f"its run number is {run!r}"
    for key, value in trial.params.items():
        dist = distributions.get(key)
        if dist is None:
            problem = f"it sets {key!r}, which this command does not search"
        elif hasattr(dist, "choices"):
            if value not in dist.choices:
                problem = f"{key}={value!r} is none of {list(dist.choices)}"
        elif isinstance(value, bool) or not isinstance(value, int | float) \
                or not dist.low <= value <= dist.high:
            problem = f"{key}={value!r} is outside [{dist.low}, {dist.high}]"
    if problem:
        raise ConfigError("hydra.sweeper.storage", f"trial {trial.number} of {storage} cannot be "
                          f"run again: {problem}", "move the study file aside (its trials.csv "
                          "restarts the study) or give this sweep its own hydra.sweep.dir")


def within_budget(study: optuna.Study, fresh: list[optuna.Trial], n_trials: int
                  ) -> list[optuna.Trial]:
    """The trials just asked for that fit in the study's `n_trials`. Two launchers that both
    saw the last free place both asked: the lower number keeps it and the other is given up
    (state FAIL, which no table counts)."""
    kept = []
    for trial in fresh:
        ahead = sum(t.state in (TrialState.COMPLETE, TrialState.RUNNING)
                    and t.number < trial.number for t in study.get_trials(deepcopy=False))
        if ahead < n_trials:
            kept.append(trial)
        else:
            trial.set_user_attr("status", "over budget")
            study.tell(trial, state=TrialState.FAIL)
    return kept


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _open_study(name: str, storage: str | None, sampler: optuna.samplers.BaseSampler,
                direction: str) -> optuna.Study:
    """The named study, made if it is new. Launchers started together all make the SQLite
    file's schema at once and all but one fail to insert its version row: they try again."""
    import sqlalchemy.exc

    for attempt in range(10):
        try:
            return optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                       direction=direction, load_if_exists=True)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError,
                optuna.exceptions.DuplicatedStudyError):
            if attempt == 9:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _summary(ret: Any) -> dict[str, Any] | None:
    """The trial run's summary.json (a failed or refused run writes one too)."""
    if ret.status == JobStatus.COMPLETED and isinstance(ret.return_value, dict):
        return ret.return_value
    path = Path(ret.hydra_cfg.hydra.runtime.output_dir) / "summary.json" if ret.hydra_cfg \
        else None
    return json.loads(path.read_text()) if path and path.is_file() else None


def write_trials(study: optuna.Study, path: Path) -> None:
    """The study's trial table (Optuna's dataframe: number, value, state, params_*,
    user_attrs_*), small enough to commit, and beside it each parameter's distribution, so
    the table alone restarts the study on another machine (`import_trials`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    distributions = {name: optuna.distributions.distribution_to_json(d)
                     for t in study.get_trials(deepcopy=False) for name, d in
                     t.distributions.items()}
    # written whole and renamed: another launcher of the study may be writing them too
    for target, text in ((path, study.trials_dataframe().to_csv(index=False)),
                         (path.parent / DISTRIBUTIONS_FILE,
                          json.dumps(distributions, indent=1, sort_keys=True))):
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        partial.write_text(text)
        os.replace(partial, target)


def import_trials(study: optuna.Study, study_dir: Path) -> int:
    """A new, empty study filled with the finished trials of a committed trial table (a study
    continued on a machine without its SQLite file); returns how many."""
    import pandas as pd

    table = pd.read_csv(study_dir / TRIALS_FILE)
    distributions = {name: optuna.distributions.json_to_distribution(text) for name, text in
                     json.loads((study_dir / DISTRIBUTIONS_FILE).read_text()).items()}
    count = 0
    for row in table[table["state"] == "COMPLETE"].sort_values("number").to_dict("records"):
        params = {k.removeprefix("params_"): v for k, v in row.items()
                  if k.startswith("params_") and pd.notna(v)}
        params = {k: (int(v) if isinstance(distributions[k], optuna.distributions
                                          .IntUniformDistribution) else v)
                  for k, v in params.items()}
        attrs = {k.removeprefix("user_attrs_"): v for k, v in row.items()
                 if k.startswith("user_attrs_") and pd.notna(v)}
        attrs["run"] = int(attrs.get("run", row["number"]))
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: distributions[k] for k in params},
            value=float(row["value"]), user_attrs=attrs))
        count += 1
    return count
