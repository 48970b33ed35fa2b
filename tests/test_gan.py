"""One GAN step: D steps per G step, clipping, how D sees a batch, and a G step that leaves D
alone."""

from __future__ import annotations

import pytest
import torch
from conftest import make_cfg
from torch import nn

from gancompare.build import build
from gancompare.step.phases import DiscriminatorMain, GeneratorMain, Simultaneous


def _gan(*overrides):
    return build(make_cfg(*overrides)).gan


def test_wgan_training_keeps_critic_weights_clipped():
    gan = _gan("model=mlp", "loss=wasserstein", "hacks=[]")
    for _ in range(2):
        gan.step()
    limits = [p.abs().max().item() for p in gan.discriminator.parameters()]
    assert max(limits) <= 0.01 + 1e-9
    assert max(limits) == pytest.approx(0.01)  # the constraint is active, not vacuous


@pytest.mark.parametrize("hacks, per_step", [("[]", 1), ("[separate-batches]", 2)])
@pytest.mark.parametrize("loss, d_steps", [("wasserstein", 5), ("wgan-gp", 5), ("lsgan", 1),
                                           ("hinge", 5)])
def test_d_steps_discriminator_updates_per_generator_update(loss, d_steps, hacks, per_step):
    gan = _gan("model=mlp", f"loss={loss}", f"hacks={hacks}", "trainer.batch_size=8")
    assert [type(p) for p in gan.phases] == [DiscriminatorMain] * d_steps + [GeneratorMain]
    counts = {"d": 0, "g": 0}
    gan.d_optimizer.register_step_post_hook(lambda *a: counts.__setitem__("d", counts["d"] + 1))
    gan.g_optimizer.register_step_post_hook(lambda *a: counts.__setitem__("g", counts["g"] + 1))
    for _ in range(3):
        gan.step()
    assert counts == {"d": 3 * d_steps * per_step, "g": 3}


def test_one_optimizer_holds_across_losses():
    for loss in ("wasserstein", "wgan-gp", "hinge", "minimax"):
        gan = _gan("model=mlp", f"loss={loss}", "optimizer=dcgan", "hacks=[]")
        assert len(gan.phases) == 2 and isinstance(gan.d_optimizer, torch.optim.Adam)
        assert gan.d_optimizer.param_groups[0]["lr"] == 2e-4
        assert gan.d_optimizer.param_groups[0]["betas"] == (0.5, 0.999)
    wgan = _gan("model=mlp", "loss=wasserstein", "hacks=[]")
    assert isinstance(wgan.d_optimizer, torch.optim.RMSprop)
    assert [c.limit for c in wgan.regularization.constraints] == [0.01]


def test_the_generator_step_leaves_d_weights_and_optimizer_state_untouched():
    gan = _gan("model=mlp", "hacks=[]")
    gan.step()  # Adam has moments now
    weights = {k: v.clone() for k, v in gan.discriminator.state_dict().items()}
    moments = {i: {k: v.clone() for k, v in s.items()}
               for i, s in gan.d_optimizer.state_dict()["state"].items()}
    grads = [p.grad.clone() for p in gan.discriminator.parameters()]  # of the last D step
    g_before = [p.clone() for p in gan.generator.parameters()]
    GeneratorMain()(gan, {})
    for k, v in gan.discriminator.state_dict().items():
        assert torch.equal(v, weights[k]), k
    for i, s in gan.d_optimizer.state_dict()["state"].items():
        for k, v in s.items():
            assert torch.equal(v, moments[i][k]), (i, k)
    for before, p in zip(grads, gan.discriminator.parameters(), strict=True):
        assert torch.equal(p.grad, before)  # no gradient flowed into D's weights
    assert all(p.requires_grad for p in gan.discriminator.parameters())  # unfrozen after
    assert any(not torch.equal(a, b) for a, b in zip(g_before, gan.generator.parameters(),
                                                     strict=True))  # and G did move


def _record_batch_norm_inputs(gan):
    seen = []
    bn = next(m for m in gan.discriminator.modules() if isinstance(m, nn.BatchNorm2d))
    bn.register_forward_hook(lambda module, inputs, out: seen.append(inputs[0].detach().clone()))
    return seen


def _is_real(batch: torch.Tensor) -> torch.Tensor:
    """Real pixels are k/127.5 - 1 for integer k; generated ones are not."""
    scaled = (batch + 1) * 127.5
    return (scaled - scaled.round()).abs().flatten(1).max(1).values < 1e-3


def test_separate_batches_give_d_an_all_real_and_an_all_fake_pass_and_step():
    gan = _gan("model.d_norm=batch", "hacks=[separate-batches]", "trainer.batch_size=32")
    seen, inputs, steps = _record_batch_norm_inputs(gan), [], []
    gan.discriminator.register_forward_hook(lambda m, args, out: inputs.append(args[0]))
    gan.d_optimizer.register_step_post_hook(lambda *a: steps.append(len(inputs)))
    gan.phases[0](gan, {})
    assert [len(x) for x in seen] == [16, 16]  # two passes of 16 through batch norm
    assert _is_real(inputs[0]).all() and not _is_real(inputs[1]).any()  # all real, all fake
    assert steps == [1, 2]  # a step after the real pass, another after the fake pass
    means = [x.mean(dim=(0, 2, 3)) for x in seen]  # two different batch statistics
    assert not torch.allclose(means[0], means[1], atol=1e-4)


def test_without_separate_batches_d_sees_one_mixed_pass_and_one_step():
    gan = _gan("model.d_norm=batch", "hacks=[]", "trainer.batch_size=32")
    seen, inputs, steps = _record_batch_norm_inputs(gan), [], []
    gan.discriminator.register_forward_hook(lambda m, args, out: inputs.append(args[0]))
    gan.d_optimizer.register_step_post_hook(lambda *a: steps.append(len(inputs)))
    gan.phases[0](gan, {})
    assert [len(x) for x in seen] == [32] and steps == [1]
    is_real = _is_real(inputs[0])
    assert is_real[:16].all() and not is_real[16:].any()


def test_separate_passes_give_d_an_all_real_and_an_all_fake_pass_and_one_step():
    gan = _gan("model.d_norm=batch", "hacks=[]", "optimizer.d_passes=separate",
               "trainer.batch_size=32")
    seen, inputs, steps = _record_batch_norm_inputs(gan), [], []
    gan.discriminator.register_forward_hook(lambda m, args, out: inputs.append(args[0]))
    gan.d_optimizer.register_step_post_hook(lambda *a: steps.append(len(inputs)))
    gan.phases[0](gan, {})
    assert [len(x) for x in seen] == [16, 16] and steps == [2]  # two passes, then one step
    assert _is_real(inputs[0]).all() and not _is_real(inputs[1]).any()


def test_two_g_updates_on_the_latents_of_d_generated_half():
    """VEEGAN's and PacGAN's Stacked MNIST step: D on 64 real + 64 generated, then G updated
    twice on those same 64 latent points (uniform in [-1, 1])."""
    gan = _gan("experiment=stacked-mnist-veegan", "trainer.batch_size=8",
               "data.n_samples=1000")
    assert gan.phases == [DiscriminatorMain(separate_passes=True)] + \
        [GeneratorMain(shared_latents=True)] * 2
    norms = [m for m in gan.generator.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 4 and all(m.weight.eq(1).all() for m in norms)  # TF's scales start at 1
    drawn, g_inputs, steps = [], [], []
    latent = gan.latent
    gan.latent = lambda n: drawn.append(latent(n)) or drawn[-1]
    gan.generator.register_forward_hook(lambda m, args, out: g_inputs.append(args[0]))
    gan.g_optimizer.register_step_post_hook(lambda *a: steps.append(len(g_inputs)))
    figures = gan.step()
    assert len(drawn) == 1 and drawn[0].shape == (4, 100)  # one draw, for D's generated half
    assert drawn[0].abs().max() <= 1 and drawn[0].min() < 0 < drawn[0].max()
    assert len(g_inputs) == 3 and all(z is drawn[0] for z in g_inputs)  # D's, then G's two
    assert steps == [2, 3] and torch.isfinite(figures["g_loss"])


@pytest.mark.parametrize("loss, columns", [
    ("non-saturating", {"d_acc_real", "d_acc_fake"}),
    ("wgan-gp", {"critic_real", "critic_fake", "wasserstein", "reg_gp"}),
    ("hinge", {"d_acc_real", "d_acc_fake", "critic_real", "critic_fake", "wasserstein"})])
def test_a_step_reports_what_d_output_means(loss, columns):
    figures = _gan("model=mlp", f"loss={loss}", "hacks=[]").step()
    base = {"d_loss_real", "d_loss_fake", "d_loss", "d_grad_norm", "g_loss", "g_grad_norm",
            "d_grad_x_real", "d_grad_x_fake"}
    assert set(figures) == base | columns
    assert all(v.dim() == 0 and torch.isfinite(v) for v in figures.values())
    if "d_acc_real" in figures:
        assert 0 <= figures["d_acc_real"].item() <= 1



@pytest.mark.parametrize("pack", [1, 2, 4])
def test_simultaneous_updates_take_both_gradients_at_the_same_weights_from_one_pass(pack):
    """PacGAN's step (ALI's ali_algorithm), written out by hand: 100 real and 100 generated packs,
    G run once per pack slot, one pass of D, D's BCE and G's non-saturating loss, both
    gradients before either network moves."""
    gan = _gan("experiment=pacgan-ring8", f"model.pack={pack}", "trainer.batch_size=200")
    assert gan.phases == [Simultaneous()] and gan.pack == pack and gan.batch_size == 200
    G, D = gan.generator, gan.discriminator
    assert D.body[1].linear.in_features == 2 * pack
    for net in ("g_optimizer", "d_optimizer"):  # SGD with lr 1: a step subtracts the gradient
        params = getattr(gan, net).param_groups[0]["params"]
        setattr(gan, net, torch.optim.SGD(params, lr=1.0))
    before = {net: {k: v.clone() for k, v in net.named_parameters()} for net in (G, D)}
    rng = torch.get_rng_state()
    figures = gan.step()
    stepped = {net: {k: v.detach().clone() for k, v in net.named_parameters()} for net in (G, D)}

    torch.set_rng_state(rng)
    for net in (G, D):
        with torch.no_grad():
            for k, v in net.named_parameters():
                v.copy_(before[net][k])
    real = gan.data.sample(100 * pack)
    z = torch.randn(100 * pack, 2)
    fake = torch.stack([G(z_slot) for z_slot in z.split(100)], dim=1).reshape(100 * pack, 2)
    packed = torch.cat([real, fake]).reshape(200, 2 * pack)  # pack i: rows pack·i … pack·i+pack-1
    out = D.body(packed).flatten()
    d_loss = nn.functional.softplus(-out[:100]).mean() + nn.functional.softplus(out[100:]).mean()
    g_loss = nn.functional.softplus(-out[100:]).mean()
    grads = {D: torch.autograd.grad(d_loss, list(D.parameters()), retain_graph=True),
             G: torch.autograd.grad(g_loss, list(G.parameters()))}
    torch.testing.assert_close(figures["d_loss"], d_loss.detach())
    torch.testing.assert_close(figures["g_loss"], g_loss.detach())
    for net in (G, D):
        for (name, _), grad in zip(net.named_parameters(), grads[net], strict=True):
            torch.testing.assert_close(stepped[net][name], before[net][name] - grad,
                                       rtol=1e-5, atol=1e-7, msg=name)
            assert grad.abs().sum() > 0, name
