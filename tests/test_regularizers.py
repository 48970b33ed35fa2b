"""The regularizer group: each penalty against its formula or finite differences, the config
choices (a loss's own, the command line's), what D pays and logs, and lazy regularisation."""

from __future__ import annotations

import pytest
import torch
from conftest import make_cfg
from omegaconf import OmegaConf
from torch import nn

from gancompare.build import build
from gancompare.config import effective_config, upgrade_saved
from gancompare.errors import ConfigError
from gancompare.step import regularizers
from gancompare.step.phases import DiscriminatorMain, DiscriminatorRegularization
from gancompare.step.regularizers import (
    DRAGAN,
    R1,
    R2,
    GradientPenalty,
    WeightClip,
    build_regularization,
    gradient_penalty,
)

# D without dropout or batch norm (PacGAN's 2-D networks), so a pass can be redone by hand
POINTS = ("model=pacgan-mlp", "data=ring8", "optimizer=dcgan", "hacks=[]")


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

def test_r1_and_r2_are_half_gamma_times_the_squared_gradient_norm_by_finite_differences():
    """Against central differences of D in float64 (eps 1e-6, error ~1e-10), on a small critic
    whose input gradient varies by sample; R1 on real samples, R2 on generated ones, in the
    paper's convention (gamma/2), which is Mescheder's code's reg_param = gamma / 2."""
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1),
                           nn.Flatten(0)).double()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    eps, squared = 1e-6, []
    with torch.no_grad():
        for sample in x:
            grad = torch.zeros(6, dtype=torch.float64)
            for i in range(6):
                step = torch.zeros(6, dtype=torch.float64)
                step[i] = eps
                up, down = (sample.flatten() + s * step for s in (1, -1))
                grad[i] = (critic(up.view(1, 2, 3)) - critic(down.view(1, 2, 3))).item() / (2 * eps)
            squared.append(grad.pow(2).sum().item())
    expected = sum(squared) / len(squared)
    assert regularizers.zero_centred_penalty(critic, x).item() == pytest.approx(expected,
                                                                               rel=1e-7)
    assert regularizers.r1_penalty(critic, x, gamma=10.0).item() == pytest.approx(
        5 * expected, rel=1e-7)
    assert regularizers.r2_penalty(critic, x, gamma=0.3).item() == pytest.approx(0.15 * expected,
                                                                          rel=1e-7)
    # differentiable in D's weights (D pays it), per run with a leading run dimension
    regularizers.r1_penalty(critic, x, gamma=1.0).backward()
    assert critic[1].weight.grad.abs().sum() > 0
    runs = regularizers.zero_centred_penalty(lambda z: critic(z.flatten(0, 1)).view(2, 5),
                                       torch.stack([x, 2 * x]), batch_dims=2)
    assert runs.shape == (2,) and runs[0].item() == pytest.approx(expected, rel=1e-7)


def test_dragan_is_compare_gans_penalty_at_perturbed_real_samples():
    """A linear critic has gradient w everywhere: compare_gan's slopes sqrt(1e-4 + ||w||^2)."""
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(12, 1, bias=False))
    w = critic[1].weight.detach().flatten()
    real = torch.randn(16, 3, 2, 2)
    value = regularizers.dragan_penalty(critic, real, torch.rand_like(real))
    assert value.item() == pytest.approx(((1e-4 + w.norm() ** 2).sqrt().item() - 1) ** 2,
                                         rel=1e-5)
    # the perturbation: std of the whole batch times U[0, 1) - 1/2, where D is evaluated
    seen = []
    probe = nn.Sequential(nn.Flatten(), nn.Linear(12, 1, bias=False))
    probe.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    noise = torch.rand_like(real)
    regularizers.dragan_penalty(probe, real, noise)
    std = real.std(correction=0)
    torch.testing.assert_close(seen[0], real + std * (noise - 0.5))


def test_the_runs_dimension_gives_one_value_per_run():
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(12, 1))
    real, fake = torch.randn(2, 8, 3, 2, 2), torch.randn(2, 8, 3, 2, 2)
    stacked = lambda x: critic(x.flatten(0, 1)).view(x.shape[:2])  # noqa: E731
    for unit in (GradientPenalty(), DRAGAN(), R1(), R2()):
        made = []

        def draw(make, made=made):
            made.append([make(), make()])
            return torch.stack(made[-1])

        values = unit.value(stacked, real, fake, draw, batch_dim=1)
        assert values.shape == (2,), unit
        for k in range(2):  # run k alone, with run k's draws
            own = lambda make, k=k, made=made: made[-1][k]  # noqa: E731
            alone = unit.value(critic, real[k], fake[k], own, 0)
            assert values[k].item() == pytest.approx(alone.item(), rel=1e-6), unit


def test_a_loss_file_chooses_its_regularisers_and_the_command_line_replaces_them():
    reg = effective_config(make_cfg("loss=wgan-gp")).regularizer
    assert OmegaConf.to_container(reg) == {"every": 1, "gp": {
        "_target_": "gancompare.step.regularizers.GradientPenalty", "weight": 10.0}}
    assert set(effective_config(make_cfg("loss=wasserstein")).regularizer) == {"every", "clip"}
    assert set(effective_config(make_cfg("loss=wgan-gp", "regularizer=[]")).regularizer) == \
        {"every"}
    assert set(effective_config(make_cfg("loss=hinge", "regularizer=[r1,r2]")).regularizer) == \
        {"every", "r1", "r2"}
    built = build_regularization(make_cfg("loss=wasserstein", "regularizer=[r1,r2,clip]",
                                          "regularizer.r1.gamma=0.3").regularizer)
    assert built.penalties == {"r1": R1(0.3), "r2": R2(1.0)}
    assert built.constraints == (WeightClip(0.01),) and built.every == 1


def test_a_unit_that_is_no_regulariser_is_one_line():
    cfg = make_cfg("regularizer=[r1]")
    cfg.regularizer.r1._target_ = "torch.nn.Identity"
    with pytest.raises(ConfigError, match=r"regularizer.r1._target_: .torch.nn.Identity. "
                                          r"built Identity, "
                                          r"which is not WeightClip or Penalty"):
        build_regularization(cfg.regularizer)
    cfg.regularizer.r1._target_ = "gancompare.step.regularizers.R3"
    with pytest.raises(ConfigError, match=r"regularizer.r1._target_: "
                                          r".gancompare.step.regularizers.R3. "
                                          r"cannot be built"):
        build_regularization(cfg.regularizer)


@pytest.mark.parametrize("names, gammas", [("[r1]", {"r1": 10.0}), ("[r2]", {"r2": 0.5}),
                                           ("[r1,r2]", {"r1": 2.0, "r2": 4.0}),
                                           ("[gp]", {}), ("[dragan]", {})])
def test_d_pays_each_penalty_times_its_weight_and_logs_its_value(names, gammas):
    overrides = [f"regularizer.{n}.gamma={g}" for n, g in gammas.items()]
    gan = build(make_cfg("model=mlp", "hacks=[]", f"regularizer={names}", *overrides)).gan
    figures = gan.step()
    weights = {n: p.weight for n, p in gan.regularization.penalties.items()}
    paid = sum(w * figures[f"reg_{n}"] for n, w in weights.items())
    assert weights.keys() == set(names.strip("[]").split(","))
    for name, gamma in gammas.items():
        assert weights[name] == gamma / 2  # the paper's gamma / 2
    torch.testing.assert_close(figures["d_loss"] - figures["d_loss_real"]
                               - figures["d_loss_fake"], paid)
    assert all(figures[f"reg_{n}"] > 0 for n in weights)


def test_an_r1_step_is_the_losss_step_plus_the_penalty_gradient():
    """One D update with R1 against the same update without it, by hand: with SGD, D moves by
    lr · the gradient of (gamma / 2) E||grad_x D(real)||^2 more, on the same real batch."""
    plain = build(make_cfg(*POINTS)).gan
    r1 = build(make_cfg(*POINTS, "regularizer=[r1]", "regularizer.r1.gamma=4")).gan
    seen = []
    batch = r1.real_batch
    r1.real_batch = lambda n: seen.append(batch(n)) or seen[-1]
    start = {k: v.clone() for k, v in r1.discriminator.state_dict().items()}
    for gan in (plain, r1):
        gan.d_optimizer = torch.optim.SGD(gan.discriminator.parameters(), lr=1.0)
    rng = torch.get_rng_state()
    plain.phases[0](plain, {})
    torch.set_rng_state(rng)
    r1.phases[0](r1, {})
    D = build(make_cfg(*POINTS)).gan.discriminator
    D.load_state_dict(start)
    penalty = 2.0 * regularizers.zero_centred_penalty(D, seen[0])
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(
        D.parameters(), torch.autograd.grad(penalty, list(D.parameters()), allow_unused=True),
        strict=True)]  # D's last bias does not move its input gradient
    for (name, p_plain), p_r1, grad in zip(plain.discriminator.named_parameters(),
                                           r1.discriminator.parameters(), grads, strict=True):
        torch.testing.assert_close(p_plain - p_r1, grad, rtol=1e-4, atol=1e-6, msg=name)
    assert sum(g.abs().sum() for g in grads) > 0


def test_ds_input_gradient_norms_are_logged_on_real_and_generated_samples():
    gan = build(make_cfg(*POINTS)).gan
    start = {k: v.clone() for k, v in gan.discriminator.state_dict().items()}
    seen = {}
    real_batch, fake_batch = gan.real_batch, gan.fake_batch
    gan.real_batch = lambda n: seen.setdefault("real", real_batch(n))
    gan.fake_batch = lambda z: seen.setdefault("fake", fake_batch(z))
    figures = gan.phases[0](gan, {})
    D = build(make_cfg(*POINTS)).gan.discriminator
    D.load_state_dict(start)
    for side in ("real", "fake"):  # D has no batch norm: each sample's gradient is its own
        x = seen[side].detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(D(x).sum(), x)
        expected = grad.norm(dim=1).mean()
        assert figures[f"d_grad_x_{side}"].item() == pytest.approx(expected.item(), rel=1e-5)
        assert expected > 0


def test_lazy_regularisation_runs_dreg_every_k_steps_scaled_by_k_times_d_steps():
    gan = build(make_cfg("model=mlp", "loss=hinge", "hacks=[]", "regularizer=[r1]",
                         "regularizer.every=4", "trainer.max_steps=12")).gan
    kinds = [type(p) for p in gan.phases]
    assert kinds.count(DiscriminatorMain) == 5  # hinge: SN-GAN's 5 D steps
    dreg = next(p for p in gan.phases if isinstance(p, DiscriminatorRegularization))
    assert (dreg.every, dreg.scale) == (4, 20)
    assert not any(getattr(p, "with_penalties", False) for p in gan.phases)
    d_steps = []
    gan.d_optimizer.register_step_post_hook(lambda *a: d_steps.append(gan.steps_done))
    rows = [gan.step() for _ in range(9)]
    assert [d_steps.count(s) for s in range(1, 10)] == [6, 5, 5, 5, 6, 5, 5, 5, 6]
    for step, figures in enumerate(rows, 1):
        # what Dreg paid: 20 · (gamma / 2) · E||grad||^2, carried over the steps in between
        torch.testing.assert_close(figures["d_reg_loss"], 20 * 0.5 * figures["reg_r1"])
        assert torch.equal(figures["reg_r1"], rows[(step - 1) // 4 * 4]["reg_r1"])
        torch.testing.assert_close(figures["d_loss"],  # Dmain paid no penalty
                                   figures["d_loss_real"] + figures["d_loss_fake"])
    assert not torch.equal(rows[0]["reg_r1"], rows[4]["reg_r1"])


def test_a_resumed_lazy_run_reports_nan_until_its_next_regularisation():
    gan = build(make_cfg("model=mlp", "hacks=[]", "regularizer=[r1]",
                         "regularizer.every=3")).gan
    gan.steps_done = 4  # resumed after step 4: Dreg next runs at step 7
    figures = [gan.step() for _ in range(3)]
    assert torch.isnan(figures[0]["reg_r1"]) and torch.isnan(figures[1]["d_reg_loss"])
    assert torch.isfinite(figures[2]["reg_r1"])


def test_penalties_swap_batch_norm_in_d_for_layer_norm():
    for regs in ("[gp]", "[r1]", "[r1,r2]", "[dragan]"):
        cfg = effective_config(make_cfg("model.d_norm=batch", f"regularizer={regs}"))
        assert cfg.model.d_norm == "layer", regs
    assert effective_config(make_cfg("model.d_norm=batch", "regularizer=[clip]")
                            ).model.d_norm == "batch"


def test_a_config_saved_before_the_group_reads_as_it_ran():
    """config.yaml of a run saved before the regularizer group: the loss carried the penalty."""
    cfg = make_cfg("loss=wgan-gp")
    old = OmegaConf.to_container(cfg)
    del old["regularizer"]
    old["loss"] |= {"gradient_penalty": 10.0, "clip_weights": None,
                    "objective": "gancompare.losses.wasserstein"}  # before step/
    del old["model"]["pack"], old["model"]["latent_distribution"], old["optimizer"]["g_steps"]
    del old["eval"]["classifier_weights"]  # a key of issue 18
    old["model"]["arch"] = old["model"].pop("name")  # before model.networks named the builder
    del old["model"]["networks"], old["data"]["loader"]  # ... and data.loader the loader
    upgraded = upgrade_saved(OmegaConf.create(old))
    for group in ("model", "data"):
        assert OmegaConf.to_container(upgraded[group]) == OmegaConf.to_container(cfg[group]), group
    assert OmegaConf.to_container(upgraded.regularizer) == OmegaConf.to_container(
        cfg.regularizer)
    assert "gradient_penalty" not in upgraded.loss and upgraded.model.pack == 1
    assert upgraded.loss.objective == {"_target_": "gancompare.step.losses.wasserstein"}
    assert upgraded.optimizer.g_steps == 1 and upgraded.model.latent_distribution == "normal"
    assert upgraded.eval.classifier_weights is None and upgraded.eval.final_samples == 0
    wgan = dict(old, loss=old["loss"] | {"gradient_penalty": None, "clip_weights": 0.01})
    assert OmegaConf.to_container(upgrade_saved(OmegaConf.create(wgan)).regularizer) == {
        "every": 1, "clip": {"_target_": "gancompare.step.regularizers.WeightClip", "limit": 0.01}}
