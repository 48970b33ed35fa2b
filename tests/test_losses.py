"""Each loss against its formula, saturation, clipping, the penalty, n_critic and the hacks."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import NO_EVAL, make_cfg
from torch import nn

from gancompare.config import effective_config
from gancompare.datasets import load_dataset
from gancompare.errors import ConfigError
from gancompare.hacks import Labels, check_hacks
from gancompare.losses import OBJECTIVES, clip_weights, get_objective, gradient_penalty
from gancompare.trainer import build_gan

LOGITS = torch.tensor([-3.0, -0.5, 0.0, 0.7, 4.0])
ONES, ZEROS = torch.ones(5), torch.zeros(5)


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def test_minimax_and_non_saturating_match_the_formulas():
    d = [sigmoid(x) for x in LOGITS.tolist()]
    for name in ("minimax", "non-saturating"):
        objective = OBJECTIVES[name]
        assert objective.d_real(LOGITS, ONES).item() == pytest.approx(mean(-math.log(p) for p in d))
        assert objective.d_fake(LOGITS, ZEROS).item() == pytest.approx(
            mean(-math.log(1 - p) for p in d))
    # minimax: G minimises log(1 - D(G(z))); non-saturating: G minimises -log D(G(z))
    assert OBJECTIVES["minimax"].g(LOGITS).item() == pytest.approx(mean(math.log(1 - p) for p in d))
    assert OBJECTIVES["non-saturating"].g(LOGITS).item() == pytest.approx(
        mean(-math.log(p) for p in d))


def test_soft_labels_enter_the_cross_entropy():
    targets = torch.tensor([0.7, 0.9, 1.1, 1.2, 0.8])
    expected = mean(-(t * math.log(sigmoid(x)) + (1 - t) * math.log(1 - sigmoid(x)))
                    for x, t in zip(LOGITS.tolist(), targets.tolist(), strict=True))
    assert OBJECTIVES["non-saturating"].d_real(LOGITS, targets).item() == pytest.approx(expected)


def test_wasserstein_and_least_squares_match_the_formulas():
    f = LOGITS.tolist()
    wgan = OBJECTIVES["wasserstein"]
    assert wgan.d_real(LOGITS, ONES).item() + wgan.d_fake(LOGITS.flip(0), ZEROS).item() == \
        pytest.approx(mean(f[::-1]) - mean(f))  # E[f(G(z))] - E[f(x)]
    assert wgan.g(LOGITS).item() == pytest.approx(-mean(f))
    ls = OBJECTIVES["least-squares"]
    assert ls.d_real(LOGITS, ONES).item() == pytest.approx(mean(0.5 * (x - 1) ** 2 for x in f))
    assert ls.d_fake(LOGITS, ZEROS).item() == pytest.approx(mean(0.5 * x ** 2 for x in f))
    assert ls.g(LOGITS).item() == pytest.approx(mean(0.5 * (x - 1) ** 2 for x in f))


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_losses_stay_finite_at_extreme_logits(name):
    extreme = torch.tensor([-200.0, -50.0, 50.0, 200.0], requires_grad=True)
    objective = OBJECTIVES[name]
    total = objective.d_real(extreme, torch.ones(4)) + objective.d_fake(extreme, torch.zeros(4)) \
        + objective.g(extreme)
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(extreme.grad).all()


def test_minimax_generator_gradient_vanishes_while_non_saturating_does_not():
    # D(G(z)) -> 0: D confidently rejects the samples (logit -> -inf).
    grads = {}
    for name in ("minimax", "non-saturating"):
        logits = torch.tensor([-15.0, -15.0], requires_grad=True)
        OBJECTIVES[name].g(logits).backward()
        grads[name] = logits.grad.abs().max().item()
    assert grads["minimax"] < 1e-6
    assert grads["non-saturating"] == pytest.approx(0.5, rel=1e-3)  # -(1 - D)/N with N = 2


def test_gradient_penalty_of_a_linear_critic_is_the_norm_gap_squared():
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(12, 1, bias=False))
    w = critic[1].weight.detach().flatten()
    real, fake = torch.randn(32, 3, 2, 2), torch.randn(32, 3, 2, 2)
    penalty = gradient_penalty(critic, real, fake)
    assert penalty.item() == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-5)
    with torch.no_grad():
        critic[1].weight.mul_(1 / w.norm())  # a 1-Lipschitz linear critic pays nothing
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(0.0, abs=1e-10)


def test_clip_weights_bounds_every_parameter():
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    clip_weights(net, 0.01)
    assert all(p.abs().max().item() <= 0.01 for p in net.parameters())


def _gan(*overrides):
    cfg = effective_config(make_cfg(*NO_EVAL, *overrides))
    data = load_dataset(cfg.data, cfg.model.resolution, torch.device("cpu"))
    return build_gan(cfg, data, torch.device("cpu"))


def test_wgan_training_keeps_critic_weights_clipped():
    gan = _gan("model=mlp", "loss=wasserstein", "hacks=[]", "trainer.batch_size=16")
    for _ in range(2):
        gan.step()
    limits = [p.abs().max().item() for p in gan.discriminator.parameters()]
    assert max(limits) <= 0.01 + 1e-9
    assert max(limits) == pytest.approx(0.01)  # the constraint is active, not vacuous


@pytest.mark.parametrize("hacks, per_step", [("[]", 1), ("[separate-batches]", 2)])
@pytest.mark.parametrize("loss, n_critic", [("wasserstein", 5), ("wgan-gp", 5), ("lsgan", 1)])
def test_n_critic_discriminator_updates_per_generator_update(loss, n_critic, hacks, per_step):
    gan = _gan("model=mlp", f"loss={loss}", f"hacks={hacks}", "trainer.batch_size=8")
    counts = {"d": 0, "g": 0}
    gan.d_optimizer.register_step_post_hook(lambda *a: counts.__setitem__("d", counts["d"] + 1))
    gan.g_optimizer.register_step_post_hook(lambda *a: counts.__setitem__("g", counts["g"] + 1))
    for _ in range(3):
        gan.step()
    assert counts == {"d": 3 * n_critic * per_step, "g": 3}


def test_smoothing_draws_stay_in_the_configured_ranges():
    torch.manual_seed(0)
    labels = Labels({"smoothing": {"real": [0.7, 1.2], "fake": [0.0, 0.3]}}, torch.device("cpu"))
    real, fake = labels(20000, 20000)
    assert real.min() >= 0.7 and real.max() <= 1.2 and fake.min() >= 0.0 and fake.max() <= 0.3
    assert real.mean().item() == pytest.approx(0.95, abs=0.01)
    one_sided = Labels({"smoothing": {"real": [0.7, 1.2], "fake": None}}, torch.device("cpu"))
    assert (one_sided(10, 500)[1] == 0).all()


def test_noisy_labels_flip_about_five_percent():
    torch.manual_seed(0)
    n = 20000
    real, fake = Labels({"noisy": {"flip": 0.05}}, torch.device("cpu"))(n, n)
    # Binomial(n, 0.05): sd = sqrt(n p (1 - p)) ~ 31; allow 5 sd.
    for flipped in ((real == 0).sum().item(), (fake == 1).sum().item()):
        assert abs(flipped - 0.05 * n) < 5 * math.sqrt(n * 0.05 * 0.95)
    assert set(real.unique().tolist()) == {0.0, 1.0}


def test_label_hacks_are_refused_for_critics():
    with pytest.raises(ConfigError, match="hacks.*smoothing.*critic"):
        check_hacks({"smoothing": {"real": [0.7, 1.2]}}, uses_labels=False, objective="wasserstein")
    check_hacks({"separate-batches": {"optimizer_steps": 2}}, uses_labels=False,
                objective="wasserstein")  # how D sees batches means something for a critic too
    assert get_objective("wasserstein").uses_labels is False


def _record_batch_norm_inputs(gan):
    seen = []
    bn = next(m for m in gan.discriminator.modules() if isinstance(m, nn.BatchNorm2d))
    bn.register_forward_hook(lambda module, inputs, out: seen.append(inputs[0].detach().clone()))
    return bn, seen


def test_separate_batches_give_d_an_all_real_and_an_all_fake_pass():
    gan = _gan("model.d_norm=batch", "hacks=[separate-batches]", "trainer.batch_size=32")
    _, seen = _record_batch_norm_inputs(gan)
    inputs = []
    gan.discriminator.register_forward_hook(lambda m, args, out: inputs.append(args[0]))
    gan.discriminator_update()
    assert [len(x) for x in seen] == [16, 16]  # two passes of 16 through batch norm
    assert _is_real(inputs[0]).all() and not _is_real(inputs[1]).any()  # all real, all fake
    # Batch norm computed two different batch statistics, one per pass.
    means = [x.mean(dim=(0, 2, 3)) for x in seen]
    assert not torch.allclose(means[0], means[1], atol=1e-4)


def test_without_separate_batches_d_sees_one_mixed_pass():
    gan = _gan("model.d_norm=batch", "hacks=[]", "trainer.batch_size=32")
    _, seen = _record_batch_norm_inputs(gan)
    inputs = []
    gan.discriminator.register_forward_hook(lambda m, args, out: inputs.append(args[0]))
    gan.discriminator_update()
    assert [len(x) for x in seen] == [32]
    is_real = _is_real(inputs[0])
    assert is_real[:16].all() and not is_real[16:].any()


def _is_real(batch: torch.Tensor) -> torch.Tensor:
    """Real pixels are k/127.5 - 1 for integer k; generated ones are not."""
    scaled = (batch + 1) * 127.5
    return (scaled - scaled.round()).abs().flatten(1).max(1).values < 1e-3
