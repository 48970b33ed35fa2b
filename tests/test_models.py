"""The SPEC architectures: shapes, layers, initialisation and the norm rules."""

from __future__ import annotations

import pytest
import torch
from conftest import CONF, make_cfg
from omegaconf import OmegaConf
from torch import nn

from gancompare.errors import ConfigError
from gancompare.networks import architectures
from gancompare.networks.architectures import (
    Discriminator,
    Dropout,
    ImageHeadConv2d,
    Maxout,
    build_models,
)
from gancompare.units import build_unit

# Each model option's builder, as its YAML file names it
NETWORKS = {p.stem: build_unit(OmegaConf.load(p).networks, "model.networks", "")
            for p in sorted((CONF / "model").glob("*.yaml"))}


@pytest.mark.parametrize("arch, shape", [("mlp", (1, 28, 28)), ("mlp", (2,)),
                                         ("mlp", (3, 64, 64)), ("dcgan28", (1, 28, 28)),
                                         ("dcgan28", (3, 28, 28)), ("dcgan64", (3, 64, 64)),
                                         ("dcgan64", (1, 64, 64))])
def test_architectures_map_latents_to_data_and_data_to_one_logit(arch, shape):
    cfg = make_cfg(f"model={arch}").model
    g, d = build_models(NETWORKS[arch], shape, cfg.latent_dim, cfg.d_norm, cfg.g_norm, 0.02,
                        image_output=len(shape) == 3)
    fake = g(torch.randn(4, cfg.latent_dim))
    assert fake.shape == (4, *shape)
    if len(shape) == 3:
        assert fake.abs().max() <= 1  # tanh
    assert d(fake).shape == (4,)


def test_weights_start_normal_with_std_002():
    g, d = build_models(architectures.dcgan28, (1, 28, 28), 50, "batch", "none", 0.02, True)
    convs = [m.weight for m in d.modules() if isinstance(m, nn.Conv2d)]
    weights = torch.cat([w.flatten() for w in convs])
    assert weights.std().item() == pytest.approx(0.02, rel=0.05)
    assert any(isinstance(m, nn.BatchNorm2d) for m in d.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in g.modules())


def test_dcgan28_matches_the_spec_layer_by_layer():
    g, d = build_models(architectures.dcgan28, (1, 28, 28), 50, "none", "none", 0.02, True)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [(64, (4, 4), (2, 2))] * 2
    tconvs = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in tconvs] == \
        [(128, (4, 4), (2, 2))] * 2
    assert g[0].in_features == 50 and g[0].out_features == 128 * 7 * 7


@pytest.mark.parametrize("c_in, c_out, kernel, padding, size", [
    (128, 1, 7, 3, (28, 28)),   # dcgan28's head
    (64, 3, 4, 0, (67, 67)),    # dcgan64's head after its (1, 2) zero padding
    (5, 2, 3, 1, (9, 11)),
])
def test_the_image_head_conv_is_conv2d_forward_and_backward(c_in, c_out, kernel, padding, size):
    torch.manual_seed(0)
    head = ImageHeadConv2d(c_in, c_out, kernel, padding=padding).double()
    x = torch.randn(3, c_in, *size, dtype=torch.float64, requires_grad=True)
    ours = head(x)
    conv = nn.functional.conv2d(x, head.weight, head.bias, padding=padding)
    assert ours.shape == conv.shape
    torch.testing.assert_close(ours, conv, rtol=1e-10, atol=1e-10)
    grad = torch.randn_like(conv)
    inputs = (x, head.weight, head.bias)
    ours_grads = torch.autograd.grad(ours, inputs, grad)
    for a, b in zip(ours_grads, torch.autograd.grad(conv, inputs, grad), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    x_channels_last = x.detach().contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(head(x_channels_last), conv, rtol=1e-10, atol=1e-10)
    assert set(head.state_dict()) == {"weight", "bias"}  # loads as nn.Conv2d's


def test_dropout_drops_p_and_rescales_the_rest_in_training_only():
    torch.manual_seed(0)
    dropout, x = Dropout(0.3), torch.ones(1000, 1000)
    y = dropout(x)
    assert abs((y == 0).float().mean().item() - 0.3) < 0.002
    assert torch.allclose(y[y != 0], torch.tensor(1 / 0.7))
    assert abs(y.mean().item() - 1) < 0.005
    assert dropout.eval()(x) is x
    assert torch.equal(Dropout(1.0)(x), torch.zeros_like(x))  # as nn.Dropout(1.0), no NaN


def test_pacgan_mlp_is_their_create_model_brick():
    g, d = build_models(architectures.pacgan_mlp, (2,), 2, "none", "batch", 0.02, False, pack=4,
                        norm_init_std=0.0)
    linears = [m for m in g.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features, m.bias is not None) for m in linears] == \
        [(2, 400, False), (400, 400, False), (400, 400, False), (400, 400, False), (400, 2, True)]
    norms = [m for m in g.modules() if isinstance(m, nn.BatchNorm1d)]
    assert [(m.eps, m.momentum) for m in norms] == [(1e-4, 0.05)] * 4
    assert all(torch.equal(m.weight, torch.ones(400)) for m in norms)  # Blocks: scale 1
    assert sum(isinstance(m, nn.ReLU) for m in g.modules()) == 4
    maxouts = [m for m in d.modules() if isinstance(m, Maxout)]
    assert [(m.linear.in_features, m.width, m.pieces) for m in maxouts] == \
        [(8, 200, 5), (200, 200, 5), (200, 200, 5)]  # 4 packed 2-D points in
    assert d.body[-1].in_features == 200 and d.body[-1].out_features == 1
    weights = torch.cat([m.linear.weight.flatten() for m in maxouts])
    assert abs(weights.std().item() - 0.02) < 0.001
    assert all(m.linear.bias.abs().sum() == 0 for m in maxouts)
    assert g(torch.randn(100, 2)).shape == (100, 2)
    assert d(torch.randn(400, 2)).shape == (100,)  # 100 packs of 4


def test_veegan_dcgan_is_their_dcgan_tensorflow_model():
    G, D = build_models(architectures.veegan_dcgan, (3, 28, 28), 100, "batch", "batch", 0.02, True)
    sizes, x = [], torch.rand(5, 100) * 2 - 1
    for layer in G:
        x = layer(x)
        if isinstance(layer, nn.ZeroPad2d | nn.Unflatten):
            sizes.append(tuple(x.shape[1:]))
    assert sizes == [(512, 2, 2), (256, 4, 4), (128, 7, 7), (64, 14, 14), (3, 28, 28)]
    assert x.abs().max() <= 1  # tanh
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (3, 64, (5, 5), (2, 2)), (64, 128, (5, 5), (2, 2)), (128, 256, (5, 5), (2, 2)),
        (256, 512, (5, 5), (2, 2))]
    norms = [type(m).__name__ for m in D.body if isinstance(m, nn.BatchNorm2d | nn.Identity)]
    assert norms == ["Identity", "BatchNorm2d", "BatchNorm2d", "BatchNorm2d"]  # none on layer 1
    assert D(torch.rand(5, 3, 28, 28)).shape == (5,)


@pytest.mark.parametrize("size_in, size_out", [(2, 4), (4, 7), (7, 14), (14, 28)])
def test_same_deconv_is_the_adjoint_of_the_same_conv(size_in, size_out):
    """TensorFlow's conv2d_transpose is the gradient of conv2d with 'SAME' padding: with shared
    weights and no bias, <conv(x), y> = <x, deconv(y)> for every x, y."""
    from gancompare.networks.layers import conv_same, deconv_same

    conv = nn.Sequential(*conv_same(3, 4, size_out)).double()
    deconv = nn.Sequential(*deconv_same(4, 3, size_in, size_out)).double()
    deconv[0].weight.data.copy_(conv[1].weight.data)
    conv[1].bias.data.zero_()
    deconv[0].bias.data.zero_()
    x, y = torch.randn(2, 3, size_out, size_out).double(), torch.randn(2, 4, size_in, size_in)
    assert conv(x).shape == y.shape and deconv(y.double()).shape == x.shape
    torch.testing.assert_close((conv(x) * y.double()).sum(), (x * deconv(y.double())).sum())


def test_maxout_takes_the_max_over_each_units_pieces():
    layer = Maxout(3, 2, 4)
    x = torch.randn(5, 3)
    pieces = layer.linear(x).reshape(5, 2, 4)
    assert torch.equal(layer(x), pieces.max(-1).values)


def test_packing_concatenates_consecutive_samples_along_the_first_feature_axis():
    d = Discriminator(nn.Flatten(), pack=2)
    points = torch.arange(8.0).reshape(4, 2)  # 4 points → 2 packs of 2
    assert torch.equal(d(points), torch.arange(8.0))
    images = torch.arange(4 * 3 * 2 * 2.0).reshape(4, 3, 2, 2)
    packed = Discriminator(nn.Identity(), pack=2).body(
        images.unflatten(0, (-1, 2)).flatten(1, 2))
    assert packed.shape == (2, 6, 2, 2) and torch.equal(packed[1, 3:], images[3])


@pytest.mark.parametrize("arch, shape", [("mlp", (2,)), ("dcgan28", (1, 28, 28)),
                                         ("dcgan64", (3, 64, 64)), ("pacgan-mlp", (2,))])
def test_every_architecture_packs(arch, shape):
    g, d = build_models(NETWORKS[arch], shape, 8, "none", "none", 0.02, len(shape) == 3, pack=3)
    assert d(g(torch.randn(6, 8))).shape == (2,)


def test_a_pack_below_one_is_refused_with_its_key():
    with pytest.raises(ConfigError, match="model.pack"):
        build_models(architectures.mlp, (2,), 8, "none", "none", 0.02, False, pack=0)


def test_a_gradient_penalty_swaps_batch_norm_for_layer_norm():
    from gancompare.config import effective_config

    cfg = effective_config(make_cfg("model=dcgan64", "loss=wgan-gp"))
    assert cfg.model.d_norm == "layer"
    assert effective_config(make_cfg("model=dcgan64", "loss=lsgan")).model.d_norm == "batch"


def test_dcgan_refuses_point_data():
    with pytest.raises(ConfigError, match="model: dcgan64 needs 64×64 images.*model=mlp"):
        build_models(architectures.dcgan64, (2,), 100, "batch", "none", 0.02, False)


def test_every_config_option_composes():
    for group in ("model", "loss", "optimizer", "data", "hacks", "experiment", "debug"):
        for option in sorted(p.stem for p in (CONF / group).glob("*.yaml")):
            value = f"[{option}]" if group == "hacks" else option
            cfg = make_cfg(f"{group}={value}")
            OmegaConf.to_container(cfg, resolve=True)


SPECTRAL = [("mlp", (1, 28, 28)), ("dcgan28", (1, 28, 28)), ("dcgan64", (3, 64, 64)),
            ("pacgan-mlp", (2,)), ("veegan-dcgan", (1, 28, 28))]


def _weight_matrix(module: nn.Module, weight: torch.Tensor) -> torch.Tensor:
    """The matrix whose largest singular value spectral norm divides by: outputs × the rest (a
    transposed conv's outputs are its dimension 1)."""
    if isinstance(module, nn.ConvTranspose2d):
        weight = weight.transpose(0, 1)
    return weight.reshape(weight.shape[0], -1)


@pytest.mark.parametrize(("arch", "shape"), SPECTRAL, ids=[a for a, _ in SPECTRAL])
def test_spectral_norm_divides_every_weight_by_its_largest_singular_value(arch, shape):
    """Against the oracle torch.linalg.matrix_norm(W, 2) of the unnormalised weight, once the
    power iteration (one step per training forward) has converged."""
    torch.manual_seed(0)
    latent = make_cfg(f"model={arch}").model.latent_dim
    g, d = build_models(NETWORKS[arch], shape, latent, "spectral", "spectral", 0.02,
                        image_output=len(shape) == 3)
    assert not any(isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d | nn.GroupNorm | nn.LayerNorm)
                   for m in d.modules())  # the norm layers are replaced, not stacked with SN
    d(torch.randn(2, *shape)), g(torch.randn(2, latent))  # the networks run as built
    for net in (d, g):
        layers = [m for m in net.modules() if isinstance(
            m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear)]
        assert layers and all(hasattr(m, "parametrizations") for m in layers)
        for m in layers:
            original = m.parametrizations.weight.original
            with torch.no_grad():  # 300 more training-mode power iterations, without the net
                for _ in range(300):
                    m.parametrizations.weight[0](original)
            sigma = torch.linalg.matrix_norm(_weight_matrix(m, original), 2)
            with torch.no_grad():
                normalised = m.weight
            torch.testing.assert_close(normalised, original / sigma, rtol=2e-3, atol=1e-6)
            assert torch.linalg.matrix_norm(_weight_matrix(m, normalised), 2).item() == \
                pytest.approx(1.0, rel=2e-3)


def test_sngan_trains_resumes_exactly_and_is_refused_under_trainer_seeds(tmp_path):
    from gancompare.run import checkpoint
    from gancompare.training import train, train_seeds

    sngan = ["loss=hinge", "optimizer=sngan", "model.d_norm=spectral", "model=mlp",
             "trainer.log_every=1"]
    train(make_cfg(*sngan, "trainer.max_steps=4"), tmp_path / "straight")
    train(make_cfg(*sngan, "trainer.max_steps=2"), tmp_path / "resumed")
    summary = train(make_cfg(*sngan, "trainer.max_steps=4"), tmp_path / "resumed")
    assert summary["resumed_from_step"] == 2 and summary["status"] == "finished"
    a, b = (checkpoint.load(tmp_path / r / "checkpoints/last.pt") for r in ("straight", "resumed"))
    assert any(k.endswith("_u") for k in a["discriminator"])  # the power iteration's vector
    for net in ("generator", "discriminator", "d_optimizer"):
        torch.testing.assert_close(b[net], a[net], rtol=0, atol=0)
    with pytest.raises(ConfigError, match=r"model.d_norm: spectral norm's power iteration .* "
                                          r"Fix: train the seeds as separate runs"):
        train_seeds(make_cfg(*sngan, "trainer.seeds=[0,1]"), tmp_path / "seeds")


@pytest.mark.parametrize(("override", "problem"), [
    ("model.networks._target_=gancompare.networks.architectures.dcgan29", "cannot be built"),
    ("model.networks._target_=torch.nn.Identity", "Identity returned Identity, not a pair"),
], ids=["misspelt", "not-a-builder"])
def test_a_model_that_names_no_builder_is_one_line(override, problem):
    from gancompare.build import build

    with pytest.raises(ConfigError, match=rf"^model.networks._target_: .*{problem}.*Fix: .*"
                                          "conf/model/"):
        build(make_cfg("model=mlp", override))
