"""Bad input ends with one line naming the key and the fix, a non-zero exit and no traceback."""

from __future__ import annotations

import json

import pytest
from conftest import CONF, make_cfg, run_cli, write_image_folder

from gancompare.cli import check_composition, check_group_choices
from gancompare.errors import ConfigError
from gancompare.training import train, train_seeds

CASES = [
    (["loss=wgan-xx"], "loss", ["hinge", "lsgan", "minimax", "non-saturating", "wasserstein",
                                "wgan-gp"]),
    (["optimizer=adamw"], "optimizer", ["dcgan", "wgan-gp", "sngan", "adam-defaults"]),
    (["-m", "loss=minimax,wgan-xx"], "loss", ["wgan-gp"]),
    (["hacks=[smoothing,nosy]"], "hacks", ["noisy", "separate-batches", "smoothing"]),
    (["trainer.batch_size=0"], "trainer.batch_size", ["integer >= 2"]),
    (["trainer.batch_size=-4"], "trainer.batch_size", ["integer >= 2"]),
    (["optimizer.d.lr=-1e-4"], "optimizer.d.lr", ["positive"]),
    (["optimizer.g.lr=0"], "optimizer.g.lr", ["positive"]),
    (["optimizer.d_steps=0"], "optimizer.d_steps", ["positive"]),
    (["seed=abc"], "seed", ["could not be converted to Integer", "seed=0"]),
    (["-m", "seed=0,x"], "seed", ["could not be converted to Integer"]),
    (["trainer.epochs=ten"], "trainer.epochs", ["Integer", "trainer.epochs=10"]),
    (["trainer.epoch=3"], "trainer.epoch", ["not in", "--cfg job"]),
    (["trainer.epochs=0"], "trainer.epochs", ["positive"]),
    (["trainer.epochs=-3"], "trainer.epochs", ["positive"]),
    (["data=zalando", "data.path=/nonexistent/zalando"], "data.path",
     ["does not exist", "dqmonn/zalando-store-crawl"]),
    (["loss=wasserstein", "hacks=[smoothing]"], "hacks", ["smoothing", "no labels", "drop"]),
    (["loss=wgan-gp", "hacks=[noisy]"], "hacks", ["noisy", "no labels"]),
    (["loss=hinge", "hacks=[noisy]"], "hacks", ["noisy", "loss=hinge"]),
    (["data=fashion", "paths.data=/nonexistent"], "paths.data", ["make data"]),
    (["model=dcgan28", "data=ring8"], "model", ["mlp"]),
    (["device=cuda:0"] , "device", ["device=auto"]),
    (["model.pack=0"], "model.pack", ["positive", "model.pack=2"]),
    (["optimizer.updates=together"], "optimizer.updates", ["alternating", "simultaneous"]),
    (["optimizer.updates=simultaneous"], "optimizer.updates", ["separate-batches"]),
    (["experiment=pacgan-ring8", "optimizer.d_steps=5"], "optimizer.updates",
     ["optimizer.d_steps=1"]),
    (["experiment=pacgan-ring8", "optimizer.g_steps=2"], "optimizer.updates",
     ["optimizer.g_steps=1"]),
    (["optimizer.g_steps=0"], "optimizer.g_steps", ["positive"]),
    (["eval.every_steps=0"], "eval.every_steps", ["positive", "eval.every_steps=250"]),
    (["data.real_range=half"], "data.real_range", ["signed", "unit"]),
    (["data=ring8", "model=mlp", "+data.real_range=unit"], "data.real_range",
     ["points", "drop data.real_range"]),
    (["optimizer.d_passes=twice"], "optimizer.d_passes", ["joint", "separate"]),
    (["optimizer.g_latents=same"], "optimizer.g_latents", ["fresh", "shared"]),
    (["model.latent_distribution=gauss"], "model.latent_distribution", ["normal", "uniform"]),
    (["data=stacked-mnist", "model=mlp", "data.digits_from=all"], "data.digits_from",
     ["train+test"]),
    (["loss=rpgan", "hacks=[separate-batches]"], "hacks",
     ["separate-batches", "loss=rpgan", "hacks=[]"]),
    (["loss=ragan", "hacks=[]", "trainer.batch_size=15"], "trainer.batch_size", ["even"]),
    (["loss=ragan", "hacks=[noisy]"], "hacks", ["noisy", "no labels"]),
    (["eval.final_samples=-1"], "eval.final_samples",
     ["-1 is not an integer >= 0", "eval.final_samples=10000"]),
    (["seed=-1"], "seed", ["2^32 - 1", "seed=0"]),
    (["+optimizer.d.eps=-1e-8"], "optimizer.d.eps", ["number >= 0"]),
    (["verdict.window=0"], "verdict.window", ["(0, 1]"]),
    (["data=fashion", "data.batch_size=1"], "data.batch_size", ["integer >= 2"]),
    (["eval.feature_space=bogus"], "eval.feature_space",
     ["'bogus'", "auto, classifier, inception, pixels"]),
    (["eval.final_samples=3"], "eval.final_samples", ["too few", "at least 6"]),
    (["eval.epoch_samples=5"], "eval.epoch_samples", ["too few", "at least 6"]),
]


def one_line_error(args: list[str], tmp_path) -> str:
    """The error line the entrypoint prints for these arguments, produced in-process."""
    try:
        check_group_choices(args, CONF)
        check_composition(args, CONF)
        train(make_cfg(*[a for a in args if a != "-m" and "," not in a]), tmp_path / "run")
    except ConfigError as error:
        return f"error: {error}"
    raise AssertionError(f"{args} was accepted")


@pytest.mark.parametrize("args, key, words", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_names_the_key_and_the_fix(args, key, words, tmp_path):
    import torch

    if args == ["device=cuda:0"] and torch.cuda.is_available():
        pytest.skip("CUDA is present here")
    line = one_line_error(args, tmp_path)
    assert line.startswith(f"error: {key}:") and "Fix:" in line and "\n" not in line
    for word in words:
        assert word in line


@pytest.mark.parametrize("index", [0, 4, 9, 15, len(CASES) - 5])
def test_the_entrypoint_prints_one_line_and_exits_non_zero(index, tmp_path):
    args, key, _ = CASES[index]
    out = run_cli("src/train.py", *args, f"hydra.run.dir={tmp_path}",
                  f"hydra.sweep.dir={tmp_path / 'sweep'}", timeout=300)
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines == [one_line_error(args, tmp_path)]
    assert lines[0].startswith(f"error: {key}:")
    assert "Traceback" not in out.stdout + out.stderr


def test_an_empty_image_folder_is_refused(tmp_path):
    empty = tmp_path / "zalando"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "readme.txt").write_text("no images here")
    with pytest.raises(ConfigError, match=r"data.path: no .jpg/.jpeg/.png image under .*zalando"):
        train(make_cfg("data=zalando", f"data.path={empty}"), tmp_path / "run")


def test_the_zalando_message_says_where_to_put_the_data(tmp_path):
    with pytest.raises(ConfigError) as error:
        train(make_cfg("data=zalando", f"data.path={tmp_path / 'missing'}"),
              tmp_path / "run")
    assert str(tmp_path / "missing") in str(error.value)
    assert "kaggle datasets download -d dqmonn/zalando-store-crawl" in str(error.value)


def test_a_good_folder_trains(tmp_path):
    folder = write_image_folder(tmp_path / "photos", n=40)
    summary = train(make_cfg("data=zalando", f"data.path={folder}", "model=mlp",
                             "trainer.batch_size=8", f"paths.data={tmp_path}"), tmp_path / "run")
    assert summary["status"] == "finished" and summary["steps"] == 3


def test_a_retrained_classifier_that_is_missing_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"eval.classifier_weights: no file at .*missing.pt\. "
                                          r"Fix: give a file written by scripts/train_classifier"):
        train(make_cfg("model=mlp", f"eval.classifier_weights={tmp_path / 'missing.pt'}",
                       "eval.final_samples=100"), tmp_path / "run")



def test_a_resume_file_of_garbage_is_one_line(tmp_path):
    """Through the entrypoint; test_checkpoint.py tries more kinds of bytes in-process."""
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x80\x02abc")  # IndexError: pop from empty list, before
    out = run_cli("src/train.py", "debug=fast", f"trainer.resume={garbage}",
                  f"hydra.run.dir={tmp_path / 'run'}", timeout=300)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert lines[0].startswith(f"error: trainer.resume: {garbage}: not a torch checkpoint")
    assert "Fix: " in lines[0] and "Traceback" not in out.stdout + out.stderr


def test_an_evaluation_setting_is_refused_before_the_first_step(tmp_path):
    """The feature space is built (and its weights file looked for) before training starts."""
    with pytest.raises(ConfigError, match=r"^eval.inception_weights: .*Fix: "):
        train(make_cfg("model=mlp", "eval.feature_space=inception", debug="eval"),
              tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_config_dir_of_ones_own_is_composed_and_its_bad_yaml_is_one_line(tmp_path):
    mine = tmp_path / "mine" / "experiment"
    mine.mkdir(parents=True)
    (mine / "tiny.yaml").write_text("# @package _global_\nseed: 7\n")
    (mine / "broken.yaml").write_text("# @package _global_\ntrainer: [max_steps: 2\n")
    args = ["src/train.py", "--config-dir", str(tmp_path / "mine"), "debug=fast", "model=mlp"]
    good = run_cli(*args, "experiment=tiny", f"hydra.run.dir={tmp_path / 'run'}", timeout=300)
    assert good.returncode == 0, good.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["seed"] == 7
    bad = run_cli(*args, "experiment=broken", f"hydra.run.dir={tmp_path / 'bad'}", timeout=300)
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert bad.returncode == 2 and len(lines) == 1, bad.stderr
    assert lines[0].startswith(f"error: experiment: {mine / 'broken.yaml'}, line 3 is not valid "
                               "YAML") and "Fix: " in lines[0]


def test_a_bad_seed_among_trainer_seeds_names_trainer_seeds(tmp_path):
    with pytest.raises(ConfigError, match=r"^trainer.seeds: \[0, -1\] holds -1, which is not an "
                                          r"integer in \[0, 2\^32 - 1\]\. Fix: "):
        train_seeds(make_cfg("trainer.seeds=[0,-1]"), tmp_path)
    out = run_cli("src/train.py", "debug=fast", "trainer.seeds=[0,-1]",
                  f"hydra.run.dir={tmp_path / 'run'}", timeout=300)
    assert out.returncode == 2 and out.stderr.startswith("error: trainer.seeds: [0, -1] holds -1")
