"""`hydra/sweeper=study`: Hydra's Optuna sweeper with the project's study loop
(gancompare/search/study.py). Hydra finds sweepers only in the `hydra_plugins` package, so this
module holds the plugin's config and a thin class; optuna loads when a sweep starts. (No
`from __future__ import annotations`: Hydra's scanner runs the module before it is in
sys.modules, where dataclasses look string annotations up.)"""


import sys
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf, SamplerConfig
from omegaconf import DictConfig


@dataclass
class TrialSeededSamplerConf(SamplerConfig):
    _target_: str = "gancompare.search.study.TrialSeededSampler"
    seed: int = 0


@dataclass
class StudySweeperConf(OptunaSweeperConf):
    _target_: str = "hydra_plugins.gancompare_study_sweeper.study_sweeper.StudySweeper"
    # Lucic et al.'s protocol samples at random; hydra/sweeper/sampler=tpe is Optuna's TPE.
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "trial-seeded"}])
    n_jobs: int = 1  # trials launched at once (hydra/launcher=joblib runs them in parallel)


class StudySweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        from gancompare.search.study import StudySweeperImpl

        self.sweeper = StudySweeperImpl(**settings)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function,
                           config=config)

    def sweep(self, arguments: list[str]) -> None:
        from gancompare.errors import ConfigError

        try:
            return self.sweeper.sweep(arguments)
        except ConfigError as error:  # bad input: one line, as src/train.py reports it
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)


ConfigStore.instance().store(group="hydra/sweeper", name="study", node=StudySweeperConf,
                             provider="gancompare")
ConfigStore.instance().store(group="hydra/sweeper/sampler", name="trial-seeded",
                             node=TrialSeededSamplerConf, provider="gancompare")
