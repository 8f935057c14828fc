"""course_lib.memory (estimate and measure) against published figures, Hugging Face models and torch."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM

from course_lib import memory as mem
from course_lib.memory import measure as mm

GB, GiB = 1e9, 2**30


# --- published figures ------------------------------------------------------------------


def test_zero_paper_example_7_5B_on_64_devices():
    # Rajbhandari et al. 2020, section 5 / Fig. 1: 120 GB, 31.4 GB, 16.6 GB, 1.9 GB
    got = [mem.zero_memory_per_device(7.5e9, 64, stage) / GB for stage in range(4)]
    assert got[0] == pytest.approx(120.0)
    assert round(got[1], 1) == 31.4 and round(got[2], 1) == 16.6 and round(got[3], 1) == 1.9
    # the paper's limits: stage 1 tends to a 4x reduction, stage 2 to 8x, stage 3 scales with Nd
    assert mem.zero_memory_per_device(1e9, 10**9, 1) == pytest.approx(16e9 / 4, rel=1e-6)
    assert mem.zero_memory_per_device(1e9, 10**9, 2) == pytest.approx(16e9 / 8, rel=1e-6)


def test_fsdp_strategy_names_map_to_zero_stages():
    n = 1e9
    assert mem.zero_memory_per_device(n, 8, "NO_SHARD") == mem.zero_memory_per_device(n, 8, 0) == 16e9
    assert mem.zero_memory_per_device(n, 8, "SHARD_GRAD_OP") == mem.zero_memory_per_device(n, 8, 2)
    assert mem.zero_memory_per_device(n, 8, "FULL_SHARD") == 2e9


def test_conventions_zero_16_and_hugging_face_18_bytes():
    assert mem.training_bytes_per_param("mixed-zero")["total"] == 16  # ZeRO section 3.1
    assert mem.training_bytes_per_param("mixed-hf")["total"] == 18  # HF "Anatomy of Model's Memory"
    assert mem.training_bytes_per_param("fp32")["total"] == 16
    # ZeRO's GPT-2 1.5B example: at least 24 GB of model states vs 3 GB of fp16 weights
    assert mem.model_state_bytes(1.5e9)["total"] == 24e9
    assert mem.weights_bytes(1.5e9, "fp16") == 3e9


def test_deepspeed_zero3_documented_t5_3b_case():
    # deepspeed docs memory.rst, T5-3B on 1 node x 8 GPUs; matches deepspeed 0.19.6 code
    expected = [  # (offload_params, offload_optimizer, zero_init): (cpu GiB, gpu GiB)
        ((True, True, True), (71.69, 0.12)), ((True, True, False), (127.45, 0.12)),
        ((False, True, True), (63.72, 0.78)), ((False, True, False), (127.45, 0.78)),
        ((False, False, True), (1.43, 6.09)), ((False, False, False), (127.45, 6.09)),
    ]
    for (op, oo, zi), (cpu, gpu) in expected:
        c, g = mem.deepspeed_zero3_estimate(2851e6, 32e6, 8, 1, op, oo, zi)
        assert (round(c / GiB, 2), round(g / GiB, 2)) == (cpu, gpu)


def test_deepspeed_zero2_doc_and_current_code():
    # the doc's 15.93 GB per GPU came from the pre-2024 formula 4P + 16P/G; the code now says 2P + 18P/G
    _, legacy = mem.deepspeed_zero2_estimate(2851e6, 8, 1, cpu_offload=False, legacy=True)
    _, current = mem.deepspeed_zero2_estimate(2851e6, 8, 1, cpu_offload=False)
    assert round(legacy / GiB, 2) == 15.93
    assert round(current / GiB, 2) == 11.28
    assert mem.deepspeed_zero2_estimate(2851e6, 8, 1)[1] == 2 * 2851e6  # offloaded: fp16 params only


# --- parameters and activations vs real models ----------------------------------------------


def test_param_count_matches_hugging_face_gpt2():
    shape = mem.TransformerShape(n_layers=3, d_model=96, n_heads=4, vocab_size=1000, max_seq_len=64)
    model = GPT2LMHeadModel(GPT2Config(n_layer=3, n_embd=96, n_head=4, vocab_size=1000, n_positions=64))
    distinct = {p.data_ptr(): p.numel() for p in model.parameters()}  # tied embeddings once
    assert mem.param_count(shape) == sum(distinct.values())


def test_param_count_of_pythia_1b_matches_gpt_neox_on_meta_device():
    shape = mem.TransformerShape(16, 2048, 8, 50304, 2048, tied_embeddings=False, learned_positions=False)
    cfg = GPTNeoXConfig(hidden_size=2048, num_hidden_layers=16, num_attention_heads=8, intermediate_size=8192,
                        vocab_size=50304, tie_word_embeddings=False)
    with torch.device("meta"):
        model = GPTNeoXForCausalLM(cfg)
    assert mem.param_count(shape) == sum(p.numel() for p in model.parameters()) == 1_011_781_632


def test_activation_formula_reduces_to_korthikanti_equation_1():
    shape = mem.TransformerShape(n_layers=5, d_model=1024, n_heads=16, vocab_size=100)
    s, b, h, a = 512, 3, 1024, 16
    assert mem.activation_bytes(shape, b, s) == pytest.approx(5 * s * b * h * (34 + 5 * a * s / h))
    assert mem.activation_bytes(shape, b, s, recompute="selective") == pytest.approx(5 * 34 * s * b * h)
    assert mem.activation_bytes(shape, b, s, recompute="full") == pytest.approx(5 * 2 * s * b * h)


def _gpt2(n_layers, h=64, heads=4, seq=64, vocab=300):
    cfg = GPT2Config(n_layer=n_layers, n_embd=h, n_head=heads, n_positions=seq, vocab_size=vocab,
                     activation_function="gelu", attn_implementation="eager", bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    return GPT2LMHeadModel(cfg)


def test_measured_activations_per_layer_equal_the_formula():
    """Saved-for-backward bytes of real HF GPT-2 blocks (dropout on, fp32 CPU) vs the formula."""
    b, s, h, heads = 2, 64, 64, 4
    ids = torch.randint(0, 300, (b, s), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "labels": ids}
    one = mm.measure_activations(_gpt2(1, h, heads, s), batch)["activation_bytes"]
    three = mm.measure_activations(_gpt2(3, h, heads, s), batch)["activation_bytes"]
    shape = mem.TransformerShape(n_layers=2, d_model=h, n_heads=heads, vocab_size=300, max_seq_len=s)
    # torch's CPU dropout keeps float32 masks, so mask_bytes=4 (the paper's GPUs keep 1-byte masks)
    predicted_two_layers = mem.activation_bytes(shape, b, s, bytes_per_value=4, mask_bytes=4)
    # each LayerNorm also keeps a float32 mean and 1/std per token: the paper's ignored small buffers
    layer_stats = 2 * 2 * 2 * b * s * 4  # 2 layers x 2 LayerNorms x 2 statistics
    assert three - one == pytest.approx(predicted_two_layers + layer_stats, rel=1e-3)


def test_measured_model_states_after_adamw_equal_the_prediction():
    model = _gpt2(2)
    ids = torch.randint(0, 300, (2, 32), generator=torch.Generator().manual_seed(1))
    r = mm.measure_training_state(model, {"input_ids": ids, "labels": ids})
    n = sum({p.data_ptr(): p.numel() for p in model.parameters()}.values())
    assert r["n_params"] == n
    fp32 = mem.model_state_bytes(n, "fp32")
    assert r["param_bytes"] == fp32["weights"]
    assert r["grad_bytes"] == fp32["gradients"]
    assert r["optimizer_bytes"] == fp32["optimizer"]
    assert r["step_counter_bytes"] == 4 * len(list(model.parameters()))  # one float32 step per tensor


def test_kv_cache_formula_matches_hugging_face_cache():
    model = _gpt2(3, h=64, heads=4, seq=64).eval()
    with torch.no_grad():
        out = model(input_ids=torch.randint(0, 300, (2, 10)), use_cache=True)
    cache = out.past_key_values
    held = sum(t.untyped_storage().nbytes() for layer in cache.layers for t in (layer.keys, layer.values))
    shape = mem.TransformerShape(n_layers=3, d_model=64, n_heads=4, vocab_size=300, max_seq_len=64)
    assert held == mem.kv_cache_bytes(3, 4, 16, seq_len=10, batch=2, dtype="fp32")
    run = mem.inference_memory(shape, batch=2, context=10, dtype="fp32")
    assert run["kv_cache"] == held and run["weights"] == 4 * mem.param_count(shape)


# --- ZeroRedundancyOptimizer in 2 processes ----------------------------------------------------


def test_zero_redundancy_optimizer_halves_adam_state_and_matches_single_process_adamw():
    cfg = mm.ZeroDemoConfig()
    ranks, after = mm.zero_optimizer_shards(cfg, return_params=True)
    n = ranks[0]["total_params"]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert sum(r["owned_params"] for r in ranks) == n
    assert sum(r["optimizer_bytes"] for r in ranks) == 8 * n  # m and v, fp32, once over all ranks
    for r in ranks:
        assert r["optimizer_bytes"] == 8 * r["owned_params"]
        assert 0.3 < r["optimizer_bytes"] / (8 * n) < 0.7  # about half each
    # independent reference: one process, plain AdamW, the two ranks' batches together
    model = mm.zero_demo_model(cfg)
    before = torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    batch = torch.cat([mm.zero_demo_batch(cfg, r) for r in range(cfg.world_size)])
    model(batch, labels=batch)[1].backward()
    opt.step()
    ref = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    assert (ref - before).abs().max() > 5e-4  # the step moved the weights by about lr
    torch.testing.assert_close(after, ref, atol=5e-5, rtol=0)


# --- planning and validation ------------------------------------------------------------------


def test_gpus_needed_agrees_with_a_brute_force_search():
    for n_params in (1e9, 13e9, 175e9):
        for stage in range(4):
            got = mem.gpus_needed(n_params, stage, 80e9)
            fits = [d for d in range(1, 5000) if mem.zero_memory_per_device(n_params, d, stage) <= 80e9]
            assert got == (fits[0] if fits else None)
    assert mem.gpus_needed(175e9, 3) == 35  # 16 B x 175e9 / 80 GB
    assert mem.gpus_needed(175e9, 0) is None  # DDP keeps a full copy everywhere


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: mem.weights_bytes(-1), ValueError),
        (lambda: mem.bytes_per_param("fp12"), ValueError),
        (lambda: mem.zero_memory_per_device(1e9, 0, 1), ValueError),
        (lambda: mem.zero_memory_per_device(1e9, 8, 4), ValueError),
        (lambda: mem.zero_memory_per_device(-5, 8, 1), ValueError),
        (lambda: mem.training_bytes_per_param("fp64"), ValueError),
        (lambda: mem.TransformerShape(2, 100, 3, 10), ValueError),
        (lambda: mem.activation_bytes(mem.TransformerShape(2, 64, 4, 10), -1, 8), ValueError),
        (lambda: mem.kv_cache_bytes(2, 2, 64, 128, 1, "int3"), ValueError),
        (lambda: mem.weights_bytes("1e9"), TypeError),
    ],
)
def test_bad_inputs_raise_clear_errors(call, error):
    with pytest.raises(error):
        call()


def test_fsdp_sharding_factor_spans_ddp_hybrid_and_zero3():
    from course_lib import memory as mem

    n, gpus = 7e9, 64
    ddp = mem.fsdp_memory_per_device(n, 1)["gpu"]
    full = mem.fsdp_memory_per_device(n, gpus)["gpu"]
    assert ddp == mem.zero_memory_per_device(n, gpus, "NO_SHARD") == 16 * n  # ZeRO's 2 + 2 + 12 bytes
    assert full == mem.zero_memory_per_device(n, gpus, "FULL_SHARD") == 16 * n / gpus
    hybrid = mem.fsdp_memory_per_device(n, 8)["gpu"]  # shard within an 8-GPU node, replicate across nodes
    assert full < hybrid < ddp and hybrid == 16 * n / 8
    # the FSDP paper's parameter formula: (K_full / F) sum(psi) + K_low max(psi), with K_full = 4, K_low = 2
    r = mem.fsdp_memory_per_device(n, gpus, largest_unit_params=0.2e9, state_bytes_per_param=4, low_precision_bytes=2)
    assert r["gpu"] == 4 * n / gpus + 2 * 0.2e9
    off = mem.fsdp_memory_per_device(n, gpus, largest_unit_params=0.2e9, cpu_offload=True)
    assert off["gpu"] == 2 * 0.2e9 and off["cpu"] == 16 * n / gpus
    with pytest.raises(ValueError, match="sharding_factor"):
        mem.fsdp_memory_per_device(n, 0)
