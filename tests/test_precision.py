"""trainer.precision, channels-last, fused optimisers and torch.compile's fallback."""

from __future__ import annotations

import logging

import pytest
import torch
from conftest import make_cfg
from torch import nn

from gancompare import precision
from gancompare.build import build
from gancompare.errors import ConfigError
from gancompare.precision import native_bf16, resolve_precision
from gancompare.training import train

CPU = torch.device("cpu")


def test_bf16_mixed_runs_the_networks_in_bf16_and_keeps_weights_losses_and_state_in_fp32():
    gan = build(make_cfg("trainer.precision=bf16-mixed", "model.d_norm=batch")).gan
    seen = []
    conv = next(m for m in gan.discriminator.modules() if isinstance(m, nn.Conv2d))
    conv.register_forward_hook(lambda module, inputs, out: seen.append(out.dtype))
    figures = gan.step()
    assert seen and set(seen) == {torch.bfloat16}
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in figures.values())
    assert all(p.dtype == torch.float32 for p in gan.generator.parameters())
    moments = [t for s in gan.d_optimizer.state.values() for t in s.values() if t.dim()]
    assert moments and all(t.dtype == torch.float32 for t in moments)
    assert gan.sample(4).dtype == torch.float32


def test_bf16_mixed_first_step_is_close_to_fp32():
    figures = {p: build(make_cfg(f"trainer.precision={p}")).gan.step() for p in
               ("32", "bf16-mixed")}
    for key in ("d_loss_real", "d_loss_fake", "g_loss"):
        assert figures["bf16-mixed"][key].item() == pytest.approx(figures["32"][key].item(),
                                                                 rel=0.02), key


def test_precision_choices():
    assert resolve_precision("auto", CPU) == ("bf16-mixed" if native_bf16(CPU) else "32")
    assert resolve_precision("32", CPU) == "32"
    with pytest.raises(ConfigError, match="trainer.precision: unknown precision 'fp8'"):
        resolve_precision("fp8", CPU)
    with pytest.raises(ConfigError, match="trainer.precision: tf32 exists on CUDA only"):
        resolve_precision("tf32", CPU)
    cfg = build(make_cfg("trainer.precision=auto")).cfg
    assert cfg.trainer.precision in ("32", "bf16-mixed")  # the saved config says what ran


AVX2_ONLY = {"fpu", "sse2", "avx", "avx2", "fma"}  # an AMD EPYC of the other kind
AVX512_BF16 = AVX2_ONLY | {"avx512f", "avx512_vnni", "avx512_bf16"}


@pytest.mark.parametrize(("flags", "native"), [(AVX2_ONLY, False), (AVX512_BF16, True),
                                               (AVX2_ONLY | {"amx_tile", "amx_bf16"}, True)],
                         ids=["avx2-only", "avx512-bf16", "amx"])
def test_auto_is_bf16_only_where_the_cpu_has_native_bf16(monkeypatch, flags, native):
    monkeypatch.setattr(precision, "cpu_flags", lambda: set(flags))
    assert native_bf16(CPU) is native
    assert resolve_precision("auto", CPU) == ("bf16-mixed" if native else "32")
    assert resolve_precision("auto", CPU, "mixture") == "32"
    assert build(make_cfg("trainer.precision=auto")).cfg.trainer.precision == \
        ("bf16-mixed" if native else "32")


def test_explicit_bf16_on_a_cpu_without_it_warns_once_with_the_cause_and_the_fix(
        monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_flags", lambda: set(AVX2_ONLY))
    monkeypatch.setattr(precision, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="gancompare.precision"):
        for _ in range(3):  # e.g. trainer.seeds builds one run per seed
            assert resolve_precision("bf16-mixed", CPU) == "bf16-mixed"  # as asked
    warnings = [r.getMessage() for r in caplog.records if "emulated" in r.getMessage()]
    assert len(warnings) == 1
    assert "this one has avx2, fma" in warnings[0] and "37x slower" in warnings[0]
    assert warnings[0].endswith("Use trainer.precision=auto (fp32 here) or 32")
    caplog.clear()
    monkeypatch.setattr(precision, "cpu_flags", lambda: set(AVX512_BF16))
    monkeypatch.setattr(precision, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="gancompare.precision"):
        resolve_precision("bf16-mixed", CPU)
    assert "emulated" not in caplog.text


def test_the_vector_extensions_are_read_from_the_cpu(monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: set(AVX512_BF16))
    assert precision.vector_extensions() == ["avx2", "fma", "avx512f", "avx512_vnni",
                                             "avx512_bf16"]
    assert "avx2" in precision.cpu_flags() or not precision.cpu_flags()  # this machine's


def test_precision_64_runs_everything_in_float64_and_the_next_build_is_float32_again():
    gan = build(make_cfg("trainer.precision=64", "model.d_norm=batch")).gan
    figures = gan.step()
    assert all(v.dtype == torch.float64 for v in figures.values())
    assert all(p.dtype == torch.float64 for m in (gan.generator, gan.discriminator)
               for p in m.parameters())
    assert gan.real_batch(4).dtype == gan.sample(4).dtype == torch.float64
    gan32 = build(make_cfg("trainer.precision=32")).gan
    assert torch.get_default_dtype() == torch.float32
    assert all(p.dtype == torch.float32 for p in gan32.generator.parameters())


def test_auto_is_fp32_for_the_2d_mixtures_whose_points_bf16_would_round_together(caplog):
    assert resolve_precision("auto", CPU, "mixture") == "32"
    built = build(make_cfg("experiment=pacgan-ring8", "trainer.precision=auto"))
    assert built.cfg.trainer.precision == "32"
    points = built.gan.sample(2000)
    assert torch.unique(points, dim=0).shape[0] == 2000  # no two of G's points collide
    assert not torch.equal(points, points.bfloat16().float())
    with caplog.at_level(logging.WARNING, logger="gancompare.precision"):
        rounded = build(make_cfg("experiment=pacgan-ring8", "trainer.precision=bf16-mixed"))
    assert "use trainer.precision=32 or auto" in caplog.text
    if native_bf16(CPU):  # every point on bf16's grid: 0.008 apart near the ring (std 0.01)
        rounded_points = rounded.gan.sample(2000)
        assert torch.equal(rounded_points, rounded_points.bfloat16().float())


def test_conv_models_are_channels_last_and_adam_is_fused():
    gan = build(make_cfg()).gan
    weight = gan.generator[4].weight  # a ConvTranspose2d
    assert weight.is_contiguous(memory_format=torch.channels_last) and weight.dim() == 4
    assert gan.d_optimizer.param_groups[0]["fused"] is True
    plain = build(make_cfg("trainer.channels_last=false", "trainer.fused_optimizers=false")).gan
    assert not plain.generator[4].weight.is_contiguous(memory_format=torch.channels_last)
    assert not plain.d_optimizer.param_groups[0]["fused"]


def test_a_model_that_cannot_compile_stays_eager_with_a_warning(tmp_path, monkeypatch, caplog):
    def cannot(self, *args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(nn.Module, "compile", cannot)
    with caplog.at_level(logging.WARNING):
        summary = train(make_cfg("model=mlp", "trainer.compile=true"), tmp_path)
    assert summary["status"] == "finished" and summary["steps"] == 3
    assert "trainer.compile: G stays eager (no C++ compiler)" in caplog.text


@pytest.mark.slow
def test_compiled_models_train(tmp_path):
    summary = train(make_cfg("model=mlp", "trainer.compile=true"), tmp_path)
    assert summary["status"] == "finished" and summary["steps"] == 3
