"""Bad input ends with one line naming the key and the fix, a non-zero exit and no traceback."""

from __future__ import annotations

import pytest
from conftest import CONF, NO_EVAL, make_cfg, run_cli, write_image_folder

from gancompare.cli import check_group_choices
from gancompare.errors import ConfigError
from gancompare.trainer import train

CASES = [
    (["loss=wgan-xx"], "loss", ["lsgan", "minimax", "non-saturating", "wasserstein", "wgan-gp"]),
    (["-m", "loss=minimax,wgan-xx"], "loss", ["wgan-gp"]),
    (["hacks=[smoothing,nosy]"], "hacks", ["noisy", "separate-batches", "smoothing"]),
    (["trainer.batch_size=0"], "trainer.batch_size", ["positive"]),
    (["trainer.batch_size=-4"], "trainer.batch_size", ["positive"]),
    (["loss.optimizer.d.lr=-1e-4"], "loss.optimizer.d.lr", ["positive"]),
    (["loss.optimizer.g.lr=0"], "loss.optimizer.g.lr", ["positive"]),
    (["trainer.epochs=0"], "trainer.epochs", ["positive"]),
    (["trainer.epochs=-3"], "trainer.epochs", ["positive"]),
    (["data=zalando", "data.path=/nonexistent/zalando"], "data.path",
     ["does not exist", "dqmonn/zalando-store-crawl"]),
    (["loss=wasserstein", "hacks=[smoothing]"], "hacks", ["smoothing", "critic", "drop"]),
    (["loss=wgan-gp", "hacks=[noisy]"], "hacks", ["noisy", "critic"]),
    (["model=dcgan28", "data=ring8"], "model", ["mlp"]),
    (["device=cuda:0"] , "device", ["device=auto"]),
]


def one_line_error(args: list[str], tmp_path) -> str:
    """The error line the entrypoint prints for these arguments, produced in-process."""
    try:
        check_group_choices(args, CONF)
        train(make_cfg(*NO_EVAL, *[a for a in args if a != "-m" and "," not in a]),
              tmp_path / "run")
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


@pytest.mark.parametrize("index", [0, 3, 9])
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
        train(make_cfg(*NO_EVAL, "data=zalando", f"data.path={empty}"), tmp_path / "run")


def test_the_zalando_message_says_where_to_put_the_data(tmp_path):
    with pytest.raises(ConfigError) as error:
        train(make_cfg(*NO_EVAL, "data=zalando", f"data.path={tmp_path / 'missing'}"),
              tmp_path / "run")
    assert str(tmp_path / "missing") in str(error.value)
    assert "kaggle datasets download -d dqmonn/zalando-store-crawl" in str(error.value)


def test_a_good_folder_trains(tmp_path):
    folder = write_image_folder(tmp_path / "photos", n=40)
    summary = train(make_cfg(*NO_EVAL, "data=zalando", f"data.path={folder}", "model=mlp",
                             "trainer.batch_size=8", "trainer.max_steps=2",
                             f"data.root={tmp_path}"), tmp_path / "run")
    assert summary["status"] == "finished"
