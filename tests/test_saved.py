"""A run directory or a study from elsewhere is read as data: every entry point that reads one
refuses a config, a saved command line or a study that would make it import and call something
other than the project's own units, in one line, and runs nothing (a sentinel file that each
payload would create stays absent)."""

from __future__ import annotations

import base64
import json
import os
import pickle
import shutil

import optuna
import pytest
import yaml
from conftest import make_cfg, run_cli

from gancompare.analysis import result_runs, result_studies, verdict_check
from gancompare.analysis.studies import Search
from gancompare.errors import ConfigError
from gancompare.reevaluation import evaluate_run, load_run, rejudge_run
from gancompare.saved import read_saved
from gancompare.search.study import check_stored_trial
from gancompare.training import train
from gancompare.units import check_saved_units, project_units


class _Touch:
    """A pickle that creates a file when unpickled (what torch.load(weights_only=False) does)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def payloads(sentinel) -> dict[str, tuple[str, object]]:
    """key of the config -> the node put there; each would create `sentinel` if built."""
    pickled = base64.b64encode(pickle.dumps(_Touch(str(sentinel)))).decode()
    return {
        "torch.load": ("loss.objective", {
            "_target_": "torch.load", "weights_only": False,
            "f": {"_target_": "io.BytesIO", "_args_": [
                {"_target_": "base64.b64decode", "_args_": [pickled]}]}}),
        "uuid": ("regularizer.gp", {"_target_": "uuid._get_command_stdout",
                                     "_args_": ["touch", str(sentinel)]}),
        "open": ("loss.objective", {"_target_": "builtins.open",
                                     "_args_": [str(sentinel), "w"]}),
        "os.system": ("loss.objective", {"_target_": "os.system",
                                          "_args_": [f"touch {sentinel}"]}),
        # an allowed unit, with the payload nested in its arguments
        "nested": ("model.networks", {
            "_target_": "gancompare.networks.architectures.mlp", "_partial_": True,
            "hidden": [{"_target_": "os.system", "_args_": [f"touch {sentinel}"]}]}),
        # an import path through a project module to what it imported
        "through": ("loss.objective", {"_target_": "gancompare.step.losses.torch.load",
                                        "f": str(sentinel)}),
        "not a string": ("loss.objective", {"_target_": {"_target_": "os.system"}}),
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished mlp run whose summary lacks `verdict_inputs`, so rejudging rebuilds it."""
    run = tmp_path_factory.mktemp("run")
    train(make_cfg("model=mlp"), run)
    summary = json.loads((run / "summary.json").read_text())
    summary.pop("verdict_inputs")
    summary["eval"] = {"fid_mnist_cnn": 100.0}
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def poisoned(finished, tmp_path, key: str, node: object):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    parent = config
    *path, leaf = key.split(".")
    for part in path:
        parent = parent[part]
    parent[leaf] = node
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    return run


def test_the_project_units_are_those_conf_names_and_torch_optimisers():
    units = project_units()
    assert {"gancompare.step.losses.non_saturating", "gancompare.step.regularizers.R1",
            "gancompare.networks.architectures.dcgan28", "gancompare.data.datasets.mnist",
            "torch.optim.Adam", "torch.optim.SGD"} <= units
    assert not {"torch.load", "os.system", "builtins.open", "torch.optim.Optimizer.step"} & units


@pytest.mark.parametrize("payload", list(payloads("x")))
def test_every_payload_is_refused_by_every_in_process_reader(payload, finished, tmp_path):
    sentinel = tmp_path / "ran"
    key, node = payloads(sentinel)[payload]
    run = poisoned(finished, tmp_path, key, node)
    for read in (lambda: read_saved(run / "config.yaml"), lambda: load_run(run),
                 lambda: evaluate_run(run), lambda: rejudge_run(run),
                 lambda: verdict_check.rejudge(tmp_path)):
        with pytest.raises(ConfigError, match=r"\._target_: .* is not one of the project's "
                                              r"units.*Fix: "):
            read()
    assert not sentinel.exists()


@pytest.mark.parametrize("args", [[], ["--probe"]], ids=["evaluate", "probe"])
def test_the_evaluate_entrypoint_refuses_a_payload_in_one_line(args, finished, tmp_path):
    sentinel = tmp_path / "ran"
    run = poisoned(finished, tmp_path, *payloads(sentinel)["torch.load"])
    out = run_cli("src/evaluate.py", str(run), *args, timeout=300)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert lines[0].startswith("error: loss.objective._target_: ") and "'torch.load'" in lines[0]
    assert not sentinel.exists()


def test_the_rejudge_script_refuses_a_payload_in_one_line(finished, tmp_path):
    sentinel = tmp_path / "ran"
    run = poisoned(finished, tmp_path, *payloads(sentinel)["uuid"])
    out = run_cli("scripts/verdict_check.py", "rejudge", str(run.parent), timeout=300)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert lines[0].startswith("verdict_check: regularizer.gp._target_: ")
    assert "Fix: " in lines[0] and not sentinel.exists()


def test_an_interpolation_in_a_saved_config_is_refused_unresolved(finished, tmp_path):
    run = poisoned(finished, tmp_path, "loss.name", "${oc.env:HOME}")
    with pytest.raises(ConfigError, match=r"loss.name: .* holds the interpolation"):
        load_run(run)


def test_a_saved_config_takes_this_machines_paths_and_wandb_mode(finished, tmp_path,
                                                                 monkeypatch):
    run = poisoned(finished, tmp_path, "paths.data", "/etc")
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["logger"]["wandb"].update(mode="online", entity="someone-else")
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    cfg = read_saved(run / "config.yaml")
    assert cfg.paths.data.endswith("/data") and cfg.paths.data != "/etc"
    assert cfg.logger.wandb.mode == "offline"


@pytest.mark.parametrize("text, words", [
    ("loss: [a\n", "is not valid YAML"),
    ("- just\n- a list\n", "holds no mapping"),
    ("loss: {}\n", "is not a config src/train.py wrote"),
    (b"\xff\xfe\x00garbage", "is not valid YAML"),
])
def test_a_damaged_config_yaml_is_one_line(text, words, finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / "config.yaml").write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError, match=rf"^run_dir: .*config.yaml {words}.*Fix: "):
        load_run(run)


def test_a_saved_batch_command_line_is_checked_before_it_runs_again(tmp_path):
    saved = tmp_path / "overrides.yaml"
    good = ["loss=hinge", "model=mlp", "trainer.seeds=[0,1]"]
    saved.write_text(yaml.safe_dump(good))
    assert result_runs.saved_overrides(saved) == good
    for bad, words in [
        (["loss.objective._target_=os.system"], "not one of the project's units"),
        (["+loss.objective._args_=[{_target_:os.system,_args_:[id]}]"], "os.system"),
        (["hydra.callbacks.x._target_=os.system"], "Hydra's own"),
        (["+hydra/launcher=joblib"], "Hydra's own"),
        (["loss=no-such-loss"], "does not compose"),
        ("a: mapping", "not a list of overrides"),
    ]:
        saved.write_text(yaml.safe_dump(bad))
        with pytest.raises(ConfigError, match=words):
            result_runs.saved_overrides(saved)


def test_a_study_cannot_make_a_trial_set_a_key_it_does_not_search(tmp_path):
    space = {"search.lr": optuna.distributions.LogUniformDistribution(1e-5, 1e-2),
             "optimizer.d_steps": optuna.distributions.CategoricalDistribution([1, 5])}
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'studies.db'}")

    def stored(dists, run=0):
        trial = study.ask(fixed_distributions=dists)
        trial.set_user_attr("run", run)
        return trial

    check_stored_trial(stored(space), space, "studies.db")
    evil = {"loss.objective._target_":
            optuna.distributions.CategoricalDistribution(["os.system"])}
    cases = [(stored(evil), "does not search"),
             (stored({"search.lr": optuna.distributions.LogUniformDistribution(1, 10)}),
              "outside"),
             (stored(space, run="0 loss.objective._target_=os.system"), "run number")]
    for trial, words in cases:
        with pytest.raises(ConfigError, match=rf"hydra.sweeper.storage: trial .*{words}"):
            check_stored_trial(trial, space, "studies.db")


def test_a_trial_table_cannot_make_the_best_trial_set_a_key_the_space_does_not_draw():
    import pandas as pd

    trials = pd.DataFrame({"setting": ["hinge"], "score": [1.0],
                           "params_search.lr": [1e-4],
                           "params_loss.objective._target_": [1.0]})
    search = Search(trials, "fid", "minimize", ["search.lr", "loss.objective._target_"],
                    set())
    with pytest.raises(ConfigError, match=r"search: .*loss.objective._target_.*does not draw"):
        result_studies.best_overrides(search, "hinge", "lucic-wide")
    search = Search(trials[["setting", "score", "params_search.lr"]], "fid", "minimize",
                    ["search.lr"], set())
    assert result_studies.best_overrides(search, "hinge", "lucic-wide") == ["search.lr=0.0001"]


def test_the_allowlist_reads_nested_nodes_in_lists_and_arguments():
    with pytest.raises(ConfigError, match=r"^optimizer.d.betas\[1\]._target_: "):
        check_saved_units({"optimizer": {"d": {"_target_": "torch.optim.Adam", "betas": [
            0.5, {"_target_": "subprocess.run", "_args_": [["id"]]}]}}}, "config.yaml")
    check_saved_units({"optimizer": {"d": {"_target_": "torch.optim.Adam",
                                           "betas": [0.5, 0.9]}}}, "config.yaml")
