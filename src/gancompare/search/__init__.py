"""Hyperparameter studies (`search=<space>`): Lucic et al.'s protocol through Hydra's Optuna
sweeper. `space.py` adds each loss's penalty weights to a search space, `objective.py` turns a
trial's run into the value the study minimises, `study.py` is the sweep loop: a SQLite study per
setting that a killed sweep continues and two launchers share."""

# What a study writes beside its trials, `<sweep dir>/<study>/`; scripts/compare.py reads them.
STUDY_FILE = "study.json"    # its setting, metric, direction and searched keys
TRIALS_FILE = "trials.csv"   # its trial table (Optuna's dataframe)
DISTRIBUTIONS_FILE = "distributions.json"  # each searched key's distribution (Optuna JSON)
