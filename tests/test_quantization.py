"""course_lib.quantization against struct, numpy, torch.finfo, torch's quantizers and published values."""

import math
import struct
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from course_lib import quantization as qz
from course_lib.evaluation import stream_perplexity

FLOAT_NAMES = list(qz.FORMATS)
pytestmark = pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")

PI_FP32_BITS = "0 10000000 10010010000111111011011"  # IEEE 754 single precision of pi (SYLLABUS, Known errors)


def _observer(cls, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(**kwargs)


# --- float formats ---------------------------------------------------------------


@pytest.mark.parametrize("name", FLOAT_NAMES)
def test_format_limits_match_torch_finfo(name):
    fmt = qz.FORMATS[name]
    info = torch.finfo(fmt.dtype)
    assert fmt.total_bits == info.bits
    assert fmt.max == info.max
    assert fmt.smallest_normal == info.tiny == info.smallest_normal
    assert fmt.eps == info.eps


@pytest.mark.parametrize("name", FLOAT_NAMES)
def test_smallest_subnormal_is_the_last_step_before_zero(name):
    fmt = qz.FORMATS[name]
    tiny = fmt.smallest_subnormal
    zero_exp = "0" * fmt.exponent_bits
    assert qz.decode_bits("0", zero_exp, "0" * (fmt.mantissa_bits - 1) + "1", name) == tiny
    assert torch.tensor(tiny, dtype=torch.float64).to(fmt.dtype).double().item() == tiny
    assert torch.tensor(tiny * 0.49, dtype=torch.float64).to(fmt.dtype).double().item() == 0.0


def test_pi_fp32_bits_are_the_ieee_pattern():
    assert " ".join(qz.float_bits(math.pi, "fp32")) == PI_FP32_BITS
    ref = format(struct.unpack(">I", struct.pack(">f", math.pi))[0], "032b")
    assert "".join(qz.float_bits(math.pi, torch.float32)) == ref


def test_pi_in_each_format_matches_the_reference_table():
    # ../shared/REFERENCE_NUMBERS.md section 9 (computed with ml_dtypes)
    expected = {"fp32": 3.1415927410125732421875, "fp16": 3.140625, "bf16": 3.140625, "fp8_e4m3": 3.25, "fp8_e5m2": 3.0}
    for name, value in expected.items():
        if name in qz.FORMATS:
            assert qz.stored_value(math.pi, name) == value
    table = qz.value_table(math.pi)
    assert table.loc[table.format == "fp16", "abs_error"].item() == pytest.approx(-9.68e-4, abs=1e-6)


finite_f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(finite_f32)
def test_fp32_bits_match_struct(x):
    ref = format(struct.unpack(">I", struct.pack(">f", x))[0], "032b")
    assert "".join(qz.float_bits(x, "fp32")) == ref


@settings(max_examples=300, deadline=None)
@given(st.floats(width=16, allow_nan=False, allow_infinity=False))
def test_fp16_bits_match_struct_and_numpy(x):
    ref = format(struct.unpack(">H", struct.pack(">e", x))[0], "016b")
    assert "".join(qz.float_bits(x, "fp16")) == ref
    assert "".join(qz.float_bits(x, "fp16")) == format(int(np.array(x, dtype=np.float16).view(np.uint16)), "016b")


def _bf16_reference_bits(x: float) -> str:
    """Round the fp32 pattern to its top 16 bits, to nearest, ties to even (no torch involved)."""
    u = struct.unpack(">I", struct.pack(">f", x))[0]
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return format(u & 0xFFFF, "016b")


@settings(max_examples=300, deadline=None)
@given(finite_f32)
def test_bf16_bits_match_manual_rounding(x):
    assert "".join(qz.float_bits(x, "bf16")) == _bf16_reference_bits(x)


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6), st.sampled_from(FLOAT_NAMES))
def test_decoding_the_bits_gives_the_value_torch_stores(x, name):
    stored = qz.stored_value(x, name)
    decoded = qz.decode_bits(*qz.float_bits(x, name), dtype=name)
    assert decoded == stored or (math.isnan(decoded) and math.isnan(stored))


def test_fp16_overflows_where_bf16_does_not():
    assert qz.stored_value(65504.0, "fp16") == 65504.0
    assert math.isinf(qz.stored_value(70000.0, "fp16"))
    assert qz.float_bits(70000.0, "fp16") == ("0", "11111", "0000000000")  # +inf
    assert qz.stored_value(70000.0, "bf16") == pytest.approx(70000.0, rel=2**-8)


@pytest.mark.parametrize("bad", ["fp12", "int8", torch.int8])
def test_unknown_format_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="float format"):
        qz.float_bits(1.0, bad)


def test_non_number_value_is_rejected():
    with pytest.raises(TypeError):
        qz.float_bits("3.14", "fp32")
    with pytest.raises(ValueError):
        qz.decode_bits("0", "101", "1", "fp32")


# --- int8 tensors ------------------------------------------------------------------


def test_absmax_matches_torch_symmetric_observer_and_quantizer():
    torch.manual_seed(0)
    x = torch.randn(64, 32) * 3
    q, scale = qz.quantize_absmax(x)
    obs = _observer(torch.ao.quantization.MinMaxObserver, dtype=torch.qint8, qscheme=torch.per_tensor_symmetric,
                    quant_min=-127, quant_max=127)
    obs(x)
    ref_scale, ref_zp = obs.calculate_qparams()
    assert ref_zp.item() == 0
    assert scale.item() == pytest.approx(ref_scale.item(), rel=1e-6)
    ref_q = torch.quantize_per_tensor(x, scale.item(), 0, torch.qint8).int_repr()
    assert torch.equal(q, ref_q)
    assert q.abs().max().item() == 127


def test_per_channel_absmax_matches_torch_per_channel_quantizer():
    torch.manual_seed(1)
    w = torch.randn(16, 40) * torch.logspace(-2, 1, 16)[:, None]  # rows on very different scales
    q, scale = qz.quantize_absmax(w, axis=0)
    assert scale.shape == (16, 1)
    obs = _observer(torch.ao.quantization.PerChannelMinMaxObserver, ch_axis=0, dtype=torch.qint8,
                    qscheme=torch.per_channel_symmetric, quant_min=-127, quant_max=127)
    obs(w)
    ref_scale, _ = obs.calculate_qparams()
    torch.testing.assert_close(scale.squeeze(1), ref_scale, rtol=1e-6, atol=0)
    ref_q = torch.quantize_per_channel(w, scale.squeeze(1).double(), torch.zeros(16, dtype=torch.long), 0, torch.qint8)
    assert torch.equal(q, ref_q.int_repr())
    # the smallest row: one scale for the whole tensor rounds it almost all to 0, its own scale keeps it
    small = w[0]
    per_tensor = qz.dequantize_absmax(*qz.quantize_absmax(w))[0]
    per_channel = qz.dequantize_absmax(q, scale)[0]
    assert (per_tensor - small).norm() / small.norm() > 0.5
    assert (per_channel - small).norm() / small.norm() < 0.02


def test_zeropoint_matches_torch_affine_observer_and_quantizer():
    torch.manual_seed(2)
    x = torch.rand(50, 20) * 5 + 0.5  # one-sided data: zero-point's home ground
    q, scale, zp = qz.quantize_zeropoint(x)
    obs = _observer(torch.ao.quantization.MinMaxObserver, dtype=torch.qint8, qscheme=torch.per_tensor_affine)
    obs(x)
    ref_scale, ref_zp = obs.calculate_qparams()
    assert scale.item() == pytest.approx(ref_scale.item(), rel=1e-6)
    assert zp.item() == ref_zp.item()
    ref_q = torch.quantize_per_tensor(x, scale.item(), int(zp.item()), torch.qint8).int_repr()
    assert torch.equal(q, ref_q)
    x_zp = qz.dequantize_zeropoint(q, scale, zp)
    x_abs = qz.dequantize_absmax(*qz.quantize_absmax(x))
    assert qz.quantization_error(x, x_zp)["rmse"] < qz.quantization_error(x, x_abs)["rmse"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1e4, 1e4, allow_nan=False, width=32), min_size=1, max_size=64), st.booleans())
def test_round_trip_error_is_at_most_half_a_step(values, per_channel):
    x = torch.tensor(values, dtype=torch.float32).reshape(1, -1).repeat(2, 1)
    x[1] *= 0.5
    axis = 0 if per_channel else None
    q, scale = qz.quantize_absmax(x, axis)
    err = (qz.dequantize_absmax(q, scale) - x).abs()
    assert (err <= scale / 2 * (1 + 1e-5) + 1e-30).all()
    q, scale, zp = qz.quantize_zeropoint(x, axis)
    err = (qz.dequantize_zeropoint(q, scale, zp) - x).abs()
    assert (err <= scale / 2 * (1 + 1e-4) + 1e-30).all()


def test_all_zero_tensor_and_bad_inputs():
    q, scale = qz.quantize_absmax(torch.zeros(3, 3))
    assert torch.equal(qz.dequantize_absmax(q, scale), torch.zeros(3, 3))
    with pytest.raises(TypeError, match="floating-point"):
        qz.quantize_absmax(torch.arange(4))
    with pytest.raises(ValueError, match="inf or NaN"):
        qz.quantize_absmax(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="empty"):
        qz.quantize_zeropoint(torch.tensor([]))
    with pytest.raises(ValueError, match="axis"):
        qz.quantize_absmax(torch.ones(2, 2), axis=2)
    with pytest.raises(TypeError, match="int8"):
        qz.dequantize_absmax(torch.ones(2), torch.ones(1))


# --- int8 models -----------------------------------------------------------------------


def _mlp():
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(64, 256), nn.GELU(), nn.Linear(256, 64)).eval()


def test_int8_linear_weights_are_within_half_a_step_and_outputs_close():
    model = _mlp()
    qmodel = qz.quantize_linear_weights(model)
    assert sum(isinstance(m, qz.Int8Linear) for m in qmodel.modules()) == 2
    for lin, qlin in ((model[0], qmodel[0]), (model[2], qmodel[2])):
        err = (qlin.dequantized_weight() - lin.weight).abs()
        assert (err <= qlin.scale / 2 + 1e-7).all()
    x = torch.randn(8, 64)
    with torch.no_grad():
        ref, ours, dyn = model(x), qmodel(x), qz.torch_dynamic_int8(model)(x)
    assert torch.nn.functional.cosine_similarity(ours, ref, dim=-1).min() > 0.999
    # torch's quantize_dynamic (int8 weights *and* activations) lands close to the same answer
    assert torch.nn.functional.cosine_similarity(dyn, ref, dim=-1).min() > 0.99
    assert (ours - ref).abs().max() < (dyn - ref).abs().max() * 2


def test_int8_model_is_about_four_times_smaller_like_torch_dynamic():
    model = _mlp()
    fp32 = qz.serialized_bytes(model)
    ours = qz.serialized_bytes(qz.quantize_linear_weights(model))
    dyn = qz.serialized_bytes(qz.torch_dynamic_int8(model))
    weights = sum(m.weight.numel() for m in model if isinstance(m, nn.Linear))
    assert fp32 - ours == pytest.approx(3 * weights, rel=0.02)  # 4 bytes -> 1 byte per weight
    assert ours == pytest.approx(dyn, rel=0.1)


def test_quantize_linear_weights_rejects_models_without_linear():
    with pytest.raises(ValueError, match="no nn.Linear"):
        qz.quantize_linear_weights(nn.Sequential(nn.ReLU()))


# --- quantization.measure: size, outputs, perplexity -------------------------------


def test_perplexity_equals_exp_of_hugging_face_loss():
    from course_lib.quantization import measure as qe

    cfg = qe.ByteLMConfig(n_layers=1, d_model=32, n_heads=2, seq_len=16)
    model = qe.make_byte_decoder(cfg).eval()
    stream = qe.text_to_bytes(["hello there, how are you doing today? fine, thanks."])
    window = stream[:16].unsqueeze(0)
    with torch.no_grad():
        ref = math.exp(model(input_ids=window, labels=window).loss.item())
    assert stream_perplexity(model, stream[:17], seq_len=16) == pytest.approx(ref, rel=1e-5)


def test_compare_outputs_and_outlier_report_on_a_small_model():
    from course_lib.quantization import measure as qe

    model = _mlp()
    x = torch.randn(32, 64)
    x[:, 3] *= 40  # one outlier feature
    rows = {r["variant"]: r for r in qe.compare_outputs(qe.int8_variants(model), lambda m: m(x))}
    assert rows["fp32"]["relative_error"] == 0 and rows["fp32"]["cosine_min"] == pytest.approx(1.0)
    # quantizing activations per tensor suffers from the outlier feature; weight-only does not
    assert rows["dynamic, per channel (torch)"]["relative_error"] > 3 * rows["weight-only, per channel (course_lib)"]["relative_error"]
    outliers = qe.linear_input_outliers(model, lambda m: m(x))
    assert outliers[0]["layer"] == "0" and outliers[0]["ratio"] > 10


# --- quantization-aware training --------------------------------------------------


def test_fake_quantize_equals_torch_fake_quantize_per_channel_and_passes_gradients_straight():
    from course_lib.quantization import measure as qe

    w = torch.randn(16, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    for bits in (8, 4):
        qmax = 2 ** (bits - 1) - 1
        scale = w.abs().amax(dim=1) / qmax
        ref = torch.fake_quantize_per_channel_affine(w, scale, torch.zeros(16, dtype=torch.int32), 0, -qmax, qmax)
        torch.testing.assert_close(qe.fake_quantize(w, bits), ref, rtol=0, atol=1e-6)
        assert len(torch.unique(qe.fake_quantize(w, bits)[0])) <= 2 * qmax + 1
    x = w.clone().requires_grad_(True)
    (qe.fake_quantize(x, 4) * 3).sum().backward()
    torch.testing.assert_close(x.grad, torch.full_like(w, 3.0))  # straight through
    with pytest.raises(ValueError, match="bits"):
        qe.fake_quantize(w, 1)


def test_qat_forward_is_the_quantized_model_and_ptq_rounds_in_place():
    import copy

    from course_lib.quantization import measure as qe

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    x = torch.randn(5, 8)
    qat = qe.add_fake_quant(copy.deepcopy(net), 4)
    ptq = qe.post_training_quantize(copy.deepcopy(net), 4)
    torch.testing.assert_close(qat(x), ptq(x))  # same weights: QAT's forward is what PTQ would store
    assert not torch.equal(ptq(x), net(x))
    # training through the fake quantizer moves the float weights underneath
    before = qat[0].parametrizations.weight.original.detach().clone()
    loss = qat(x).pow(2).sum()
    loss.backward()
    assert qat[0].parametrizations.weight.original.grad is not None
    assert torch.equal(before, qat[0].parametrizations.weight.original.detach())


def test_remove_fake_quant_keeps_the_quantized_forward():
    from course_lib.quantization import measure as qe

    torch.manual_seed(1)
    net = qe.add_fake_quant(torch.nn.Sequential(torch.nn.Linear(6, 6), torch.nn.Linear(6, 3)), 3)
    x = torch.randn(4, 6)
    before = net(x)
    plain = qe.remove_fake_quant(net)  # in place (a parametrized module does not survive deepcopy)
    torch.testing.assert_close(before, plain(x))
    assert all(len(torch.unique(m.weight[r])) <= 7 for m in plain if isinstance(m, torch.nn.Linear) for r in range(m.weight.shape[0]))
