"""Every model × loss × data × hack option trains 2 steps on CPU: both networks move, the
figures are finite and say what D's output means, and every file of a run is written. A label
hack on a loss without labels is refused instead (it means nothing there)."""

from __future__ import annotations

import itertools
import json
import math
import shutil

import pytest
import torch
from conftest import make_cfg, read_csv, write_image_folder

from gancompare.build import build
from gancompare.errors import ConfigError
from gancompare.run import checkpoint
from gancompare.training import train

MODELS = ["mlp", "dcgan28", "dcgan64"]
LOSSES = ["minimax", "non-saturating", "wasserstein", "wgan-gp", "lsgan", "hinge", "rpgan",
          "ragan"]
DATA = ["mnist8", "fashion", "zalando"]
HACKS = ["[]", "[smoothing]", "[noisy]", "[separate-batches]"]
RELATIVISTIC = {"rpgan", "ragan"}  # D's loss does not separate by side
WITHOUT_LABELS = {"wasserstein", "wgan-gp", "hinge", *RELATIVISTIC}
CRITICS = {"wasserstein", "wgan-gp", *RELATIVISTIC}  # no accuracy: no real/fake threshold
ALL = list(itertools.product(MODELS, LOSSES, DATA, HACKS))
# The default run: every model × loss × data once, the hack option rotated so that every
# (model, hack), (loss, hack) and (data, hack) pair occurs. The full product is marked slow.
COVERING = [(m, loss, d, HACKS[(MODELS.index(m) + LOSSES.index(loss) + DATA.index(d)) % 4])
            for m, loss, d in itertools.product(MODELS, LOSSES, DATA)]
COMBINATIONS = [pytest.param(*c, id="-".join(c),
                             marks=() if c in COVERING else pytest.mark.slow) for c in ALL]


@pytest.fixture(scope="module")
def zalando_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("zalando-root")
    write_image_folder(root / "zalando", n=24)
    return root


@pytest.mark.parametrize("model, loss, data, hacks", COMBINATIONS)
def test_every_combination_trains_two_steps(model, loss, data, hacks, zalando_root, tmp_path):
    overrides = [f"model={model}", f"loss={loss}", f"data={data}", f"hacks={hacks}",
                 "trainer.batch_size=8", "trainer.max_steps=2", "trainer.keep_checkpoints=1"]
    if data == "zalando":
        overrides.append(f"paths.data={zalando_root}")
    cfg = make_cfg(*overrides)
    if loss in WITHOUT_LABELS and hacks in ("[smoothing]", "[noisy]"):
        with pytest.raises(ConfigError, match="takes no labels"):
            train(cfg, tmp_path)
        return
    if loss in RELATIVISTIC and hacks == "[separate-batches]":
        with pytest.raises(ConfigError, match="compares D's outputs on both in one term"):
            train(cfg, tmp_path)
        return
    initial = build(cfg).gan.state_dict()  # the same seed: the run's starting weights
    summary = train(cfg, tmp_path)
    assert (summary["status"], summary["steps"]) == ("finished", 2)
    rows = read_csv(tmp_path / "metrics.csv")
    assert [r["step"] for r in rows] == ["1", "2"]
    for row in rows:
        assert all(math.isfinite(float(v)) for v in row.values()), row
    assert ("d_acc_real" in rows[0]) == (loss not in CRITICS)
    assert ("critic_real" in rows[0]) == (loss in WITHOUT_LABELS)
    for name in ("config.yaml", "summary.json", "curves.png", "samples/epoch_001.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    state = checkpoint.load(tmp_path / "checkpoints/last.pt")
    assert state["step"] == 2
    for net in ("generator", "discriminator"):  # both networks were trained
        assert any(not torch.equal(state[net][k], v) for k, v in initial[net].items()), net
    assert json.loads((tmp_path / "summary.json").read_text())["optimizer"] == \
        cfg.optimizer.name
    shutil.rmtree(tmp_path / "checkpoints")  # up to 300 MB each (mlp on 64×64×3); keep disk free


def test_the_covering_subset_pairs_every_hack_with_every_option():
    for axis, options in ((0, MODELS), (1, LOSSES), (2, DATA)):
        pairs = {(c[axis], c[3]) for c in COVERING}
        assert pairs == set(itertools.product(options, HACKS))


@pytest.mark.parametrize("model, data", [("dcgan28", "stacked-mnist"), ("dcgan64", "stacked-mnist"),
                                         ("mlp", "stacked-mnist"), ("mlp", "ring8"),
                                         ("mlp", "grid25")])
@pytest.mark.parametrize("loss", ["non-saturating", "wgan-gp"])
def test_every_model_that_fits_the_mode_benchmarks_trains(model, data, loss, tmp_path):
    small = ["data.n_samples=2000", "data.n_test_samples=500"] if data == "stacked-mnist" else []
    summary = train(make_cfg(f"model={model}", f"data={data}", f"loss={loss}",
                             "trainer.batch_size=8", "trainer.max_steps=2", *small), tmp_path)
    assert (summary["status"], summary["steps"]) == ("finished", 2)
    assert all(math.isfinite(float(v)) for row in read_csv(tmp_path / "metrics.csv")
               for v in row.values())
    assert (tmp_path / "samples" / "epoch_001.png").is_file()
