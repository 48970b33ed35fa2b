"""`src/evaluate.py` recomputes a finished run's metrics through the training loop's code path;
every data set is evaluated in its feature space."""

from __future__ import annotations

import json

import pytest
from conftest import make_cfg, read_csv, run_cli

from gancompare.reevaluation import rejudge_run
from gancompare.training import train


def test_evaluate_reproduces_the_final_metrics_and_updates_the_summary(tmp_path):
    summary = train(make_cfg("model=mlp", debug="eval"), tmp_path)
    final = summary["eval"]
    assert {"fid_mnist_cnn", "ndb_k_mnist_cnn", "ndb_js_mnist_cnn", "precision_mnist_cnn",
            "recall_mnist_cnn", "density_mnist_cnn", "coverage_mnist_cnn", "distinct_mnist_cnn",
            "classes_mnist_cnn", "class_kl_mnist_cnn", "kid_mnist_cnn",
            "kid_std_mnist_cnn"} <= set(final)
    out = run_cli("src/evaluate.py", str(tmp_path), timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    printed = json.loads(out.stdout)
    updated = json.loads((tmp_path / "summary.json").read_text())
    for key, value in final.items():
        if key != "eval_seconds":
            assert updated["eval"][key] == pytest.approx(value, rel=1e-9), key
            assert printed[key] == pytest.approx(value, rel=1e-9), key
    assert updated["evaluated_step"] == 5 and updated["verdict"] == printed["verdict"]


def test_evaluate_with_more_samples_and_a_missing_run(tmp_path):
    out = run_cli("src/evaluate.py", str(tmp_path / "nothing"), timeout=300)
    assert out.returncode == 2 and out.stderr.startswith("error: run_dir:")


def test_epoch_metrics_land_in_the_metrics_file(tmp_path):
    train(make_cfg("model=mlp", "data=ring8", "trainer.max_steps=3", "trainer.batch_size=64",
                   debug="eval"), tmp_path)
    rows = read_csv(tmp_path / "metrics.csv")
    assert rows[-1]["epoch/mixture_modes"] != "" and rows[0]["epoch/mixture_modes"] == ""
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert 0 <= summary["eval"]["mixture_modes"] <= 8
    assert {"mixture_high_quality", "mixture_reverse_kl", "fid_points"} <= set(summary["eval"])
    assert (tmp_path / "samples" / "epoch_001.png").is_file()  # the scatter over the modes


def _fake_fid_inception_weights(path):
    """A state dict with the layout of pytorch-fid's FID Inception (random values): the real
    weights cannot be downloaded here, the plumbing that loads a local file is what is tested."""
    from unittest import mock

    import torch
    from pytorch_fid import inception

    with mock.patch.object(inception, "load_state_dict_from_url", return_value=None), \
            mock.patch.object(torch.nn.Module, "load_state_dict"):
        model = inception.fid_inception_v3()
    torch.save(model.state_dict(), path)
    return path


@pytest.mark.parametrize("data, space, extra", [
    ("fashion", "fashion_cnn", ["classes_fashion_cnn", "class_kl_fashion_cnn"]),
    ("stacked-mnist", "mnist_cnn_x3", ["stacked_modes_mnist_cnn_x3", "stacked_kl_mnist_cnn_x3"]),
    ("zalando", "pixels16", []),
    pytest.param("zalando-inception", "inception", [], marks=pytest.mark.slow),
])
def test_every_data_set_is_evaluated_in_its_feature_space(data, space, extra, tmp_path):
    from conftest import write_image_folder

    overrides = ["model=mlp", "trainer.max_steps=2", "trainer.batch_size=16",
                 "eval.every_epoch=false", "eval.final_samples=60", "eval.stacked_samples=500",
                 "eval.reference_samples=500", "eval.prdc_samples=60", "eval.kid_subsets=10"]
    if data.startswith("zalando"):
        write_image_folder(tmp_path / "photos", n=60)
        overrides += ["data=zalando", f"data.path={tmp_path / 'photos'}", f"paths.data={tmp_path}"]
        if data == "zalando-inception":
            weights = _fake_fid_inception_weights(tmp_path / "pt_inception.pth")
            overrides += [f"eval.inception_weights={weights}"]
    else:
        overrides.append(f"data={data}")
    if data == "stacked-mnist":
        overrides += ["data.n_samples=2000", "data.n_test_samples=1000"]
    summary = train(make_cfg(*overrides, debug="eval"), tmp_path / "run")
    names = set(summary["eval"])
    for metric in ("fid", "kid", "ndb_k", "precision", "recall", "density", "coverage",
                   "distinct", "spread"):
        assert f"{metric}_{space}" in names, (metric, sorted(names))
    assert set(extra) <= names
    if data == "stacked-mnist":
        assert 1 <= summary["eval"]["stacked_modes_mnist_cnn_x3"] <= 1000


def test_inception_features_come_from_a_local_weights_file(tmp_path):
    import torch

    from gancompare.evaluation.features import InceptionSpace

    space = InceptionSpace(_fake_fid_inception_weights(tmp_path / "w.pth"), torch.device("cpu"))
    features, predictions = space(torch.rand(4, 1, 28, 28) * 2 - 1)  # grayscale is repeated
    assert features.shape == (4, 2048) and predictions is None and space.name == "inception"


def test_the_probe_leaves_batch_norm_statistics_as_loaded(tmp_path):
    import torch

    from gancompare.reevaluation import load_run, probe_generator

    train(make_cfg("model=dcgan28", "model.g_norm=batch", "model.d_norm=batch",
                   "trainer.max_steps=2"), tmp_path)
    built, _, _ = load_run(tmp_path)
    nets = {"G": built.gan.generator, "D": built.gan.discriminator}
    before = {(name, k): v.clone() for name, net in nets.items()
              for k, v in net.state_dict().items()}
    assert any("running_mean" in k for _, k in before)  # batch norm to disturb
    probe_generator(built, 64)
    for name, net in nets.items():
        for key, value in net.state_dict().items():
            assert torch.equal(value, before[name, key]), f"{name}.{key}"


def test_the_probe_tells_a_saturated_generator_from_a_healthy_one(tmp_path):
    import torch

    from gancompare.reevaluation import load_run, probe_generator

    train(make_cfg("model=mlp", "trainer.max_steps=3"), tmp_path)
    built, state, _ = load_run(tmp_path)
    d_before = {k: v.clone() for k, v in built.gan.discriminator.state_dict().items()}
    healthy = probe_generator(built, 128)
    assert state["step"] == 3 and healthy["sample_spread"] > 1e-3
    assert 0 <= healthy["output_at_bound"] < 0.5 < healthy["real_at_bound"] < 1
    assert healthy["g_grad_norm"] > 1e-3 and healthy["g_loss"] > 0
    # G's last layer driven deep into tanh's flat end: one constant image, no gradient left
    last = [m for m in built.gan.generator.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.bias.fill_(100.0)
    dead = probe_generator(built, 128)
    assert dead["sample_spread"] == 0 and dead["output_at_bound"] == 1
    assert dead["g_grad_norm"] < 1e-6
    # the probe changes neither network: D's weights and statistics as loaded, no gradients kept
    for key, value in built.gan.discriminator.state_dict().items():
        assert torch.equal(value, d_before[key]), key
    assert all(p.grad is None for p in built.gan.generator.parameters())

    out = run_cli("src/evaluate.py", str(tmp_path), "--probe", "--samples", "64", timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    printed = json.loads(out.stdout)
    assert printed["step"] == 3 and printed["sample_spread"] > 1e-3
    assert not (tmp_path / "summary.json").read_text().count("evaluated_step")  # nothing written


def test_a_run_saved_before_the_regularizer_group_and_targets_re_evaluates_to_its_metrics(
        tmp_path):
    """Its config.yaml as the code before the group wrote it: the penalty a key of the loss,
    keys added since absent. (A wgan-gp run of commit 954aa46, re-evaluated by this code, gave
    its 14 final metrics to the last digit.)"""
    import yaml

    summary = train(make_cfg("model=mlp", "loss=wgan-gp", "hacks=[]", debug="eval"), tmp_path)
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    saved["loss"] |= {"gradient_penalty": saved.pop("regularizer")["gp"]["weight"],
                      "clip_weights": None}
    del saved["model"]["pack"], saved["eval"]["classifier_weights"]
    # before `_target_` named every unit: an import path, `model.arch`, `data.source` alone
    saved["loss"]["objective"] = saved["loss"]["objective"]["_target_"]
    saved["model"]["arch"] = saved["model"].pop("name")
    del saved["model"]["networks"], saved["data"]["loader"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    out = run_cli("src/evaluate.py", str(tmp_path), timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    again = json.loads(out.stdout)
    for key, value in summary["eval"].items():
        if key != "eval_seconds":
            assert again[key] == pytest.approx(value, rel=1e-9), key


def test_a_run_is_judged_again_under_todays_rules_with_its_own_verdict_overrides(tmp_path):
    summary = train(make_cfg("model=mlp", debug="eval"), tmp_path)  # 5 steps: noise
    assert (summary["verdict"], summary["verdict_evidence"]["rule"]) == (
        "convergence-failure", "off-manifold")
    # what the rules knew besides curves and figures is kept, so judging again needs no rebuild
    assert summary["verdict_inputs"] == {"critic": False, "known": {"classes": 1.0}}
    (tmp_path / "config.yaml").rename(tmp_path / "config.yaml.away")
    again = rejudge_run(tmp_path)  # the rules have not changed: the same verdict
    (tmp_path / "config.yaml.away").rename(tmp_path / "config.yaml")
    assert again["verdict_evidence"] == json.loads(json.dumps(summary["verdict_evidence"]))
    assert again["verdict_before"] == "convergence-failure"
    # a run started with `verdict.precision_min=0` keeps that threshold when judged again:
    # off-manifold cannot fire, and its near-duplicates make it a mode collapse
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text(
        "- model=mlp\n- verdict.precision_min=0.0\n")
    older = json.loads((tmp_path / "summary.json").read_text())  # a run from before they were
    del older["verdict_inputs"]  # kept: rebuilt from its checkpoint for them
    (tmp_path / "summary.json").write_text(json.dumps(older))
    after = rejudge_run(tmp_path)
    assert after["verdict_inputs"] == summary["verdict_inputs"]
    assert (after["verdict"], after["verdict_evidence"]["rule"]) == ("mode-collapse",
                                                                   "few-distinct")
    assert after["verdict_before"] == "convergence-failure"  # the first verdict is kept
    assert json.loads((tmp_path / "summary.json").read_text())["verdict"] == "mode-collapse"


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    run = tmp_path_factory.mktemp("evaluated")
    train(make_cfg("model=mlp", "eval.final_samples=300"), run)
    return run


@pytest.mark.parametrize("args, words", [
    (["--samples", "-5"], "--samples: -5 is not a positive number of samples"),
    (["--samples", "0"], "--samples: 0 is not a positive number of samples"),
    (["--samples", "1"], "--samples: 1 samples are too few to evaluate"),
    (["--probe", "--samples", "1"], "--samples: 1 latents cannot show a spread"),
])
def test_too_few_samples_are_one_line(args, words, evaluated):
    out = run_cli("src/evaluate.py", str(evaluated), *args, timeout=300)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2 and len(lines) == 1, out.stderr[-2000:]
    assert lines[0].startswith(f"error: {words}") and "Fix: " in lines[0]


@pytest.mark.parametrize("damage, words", [
    ("empty", "metrics.csv is empty"),
    ("header", "metrics.csv holds no rows"),
    ("cut", "metrics.csv is cut mid-row after step 2"),
    ("short", "metrics.csv ends at step 2 of 3"),
])
def test_a_damaged_metrics_file_is_said_and_named_in_the_verdict(damage, words, evaluated,
                                                                 tmp_path, caplog):
    import shutil

    from gancompare.reevaluation import evaluate_run

    run = tmp_path / "run"
    shutil.copytree(evaluated, run)
    text = (run / "metrics.csv").read_text()
    lines = text.splitlines(keepends=True)
    (run / "metrics.csv").write_text({"empty": "", "header": lines[0],
                                      "cut": text[: len(text) - len(lines[-1]) // 2],
                                      "short": "".join(lines[:3])}[damage])
    summary = evaluate_run(run, samples=300)
    assert words in summary["verdict_evidence"]["curves_damage"]
    assert words in caplog.text and "restore the file from the results archive" in caplog.text
    whole = evaluate_run(evaluated, samples=300)
    assert "curves_damage" not in whole["verdict_evidence"]
