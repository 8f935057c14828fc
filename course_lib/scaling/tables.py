"""Published figures behind the scaling lab: GPU peaks, the GPT-3 compute table, model sizes.

Data only, each entry with its source. ``course_lib.scaling`` computes with them.
A ``status`` says how the figure was checked: "paper" (read in the paper or a
full-text copy of it and checked by arithmetic), "datasheet" (the vendor's
datasheet, as quoted by several independent copies), "secondary" (several
independent write-ups agree; the primary source was not re-read).
"""

from __future__ import annotations

# ---------------------------------------------------------------------------
# GPU peak throughput, in TFLOP/s, *dense* (no structured sparsity).
# NVIDIA quotes tensor-core figures "with sparsity" (2:4 structured sparsity,
# which doubles the number); training runs dense, so dense is what we use.
# ---------------------------------------------------------------------------
GPU_PEAK_TFLOPS = {
    # NVIDIA Tesla V100 SXM2 datasheet: FP64 7.8, FP32 15.7, Tensor (fp16 in,
    # fp32 accumulate) 125 TFLOPS. Volta has no bf16, no tf32, no sparsity.
    "V100": {"fp32": 15.7, "fp16": 125.0},
    # NVIDIA A100 (SXM4, 40/80 GB) datasheet: FP32 19.5; TF32 tensor 156;
    # BF16/FP16 tensor 312; INT8 624 -- dense. "With sparsity" doubles them
    # (TF32 312, BF16/FP16 624).
    "A100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0},
    # NVIDIA H100 SXM5 datasheet: FP32 67; TF32 989, BF16/FP16 1,979, FP8 3,958
    # TFLOPS "shown with sparsity", i.e. dense TF32 ~494.7, BF16/FP16 ~989.4,
    # FP8 ~1,978.9 (the whitepaper's dense figures).
    "H100": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4, "fp8": 1978.9},
}
# Which dtypes have a 2:4 structured-sparsity mode that doubles the quoted peak.
GPU_SPARSE_DTYPES = {"V100": set(), "A100": {"tf32", "bf16", "fp16"}, "H100": {"tf32", "bf16", "fp16", "fp8"}}
GPU_SOURCES = {
    "V100": "NVIDIA Tesla V100 datasheet (SXM2 column)",
    "A100": "NVIDIA A100 Tensor Core GPU datasheet (SXM column); dense = half the 'with sparsity' figure",
    "H100": "NVIDIA H100 Tensor Core GPU datasheet (SXM column, figures 'shown with sparsity'); dense = half",
}

# ---------------------------------------------------------------------------
# Brown et al. 2020 ("Language Models are Few-Shot Learners", arXiv 2005.14165),
# Appendix D, Table D.1: total training compute. flops_per_param_token is 6 for
# decoder-only and BERT-style models (2 forward x 3 with backward) and 3 for T5
# (an encoder-decoder: each token passes through about half the parameters).
# Status: paper (full-text copy; every row checked against 6ND or 3ND).
# ---------------------------------------------------------------------------
GPT3_TABLE_D1_SOURCE = "Brown et al. 2020, arXiv 2005.14165, Appendix D, Table D.1"
GPT3_TABLE_D1 = [
    # (model, family, pf_days, flops, params in millions, tokens in billions, flops/param/token)
    ("T5-Small", "T5", 2.08, 1.80e20, 60, 1000, 3),
    ("T5-Base", "T5", 7.64, 6.60e20, 220, 1000, 3),
    ("T5-Large", "T5", 26.7, 2.31e21, 770, 1000, 3),
    ("T5-3B", "T5", 104, 9.00e21, 3000, 1000, 3),
    ("T5-11B", "T5", 382, 3.30e22, 11000, 1000, 3),
    ("BERT-Base", "BERT", 1.89, 1.64e20, 109, 250, 6),
    ("BERT-Large", "BERT", 6.16, 5.33e20, 355, 250, 6),
    ("RoBERTa-Base", "RoBERTa", 17.4, 1.50e21, 125, 2000, 6),
    ("RoBERTa-Large", "RoBERTa", 49.3, 4.26e21, 355, 2000, 6),
    ("GPT-3 Small", "GPT-3", 2.60, 2.25e20, 125, 300, 6),
    ("GPT-3 Medium", "GPT-3", 7.42, 6.41e20, 356, 300, 6),
    ("GPT-3 Large", "GPT-3", 15.8, 1.37e21, 760, 300, 6),
    ("GPT-3 XL", "GPT-3", 27.5, 2.38e21, 1320, 300, 6),
    ("GPT-3 2.7B", "GPT-3", 55.2, 4.77e21, 2650, 300, 6),
    ("GPT-3 6.7B", "GPT-3", 139, 1.20e22, 6660, 300, 6),
    ("GPT-3 13B", "GPT-3", 268, 2.31e22, 12850, 300, 6),
    ("GPT-3 175B", "GPT-3", 3640, 3.14e23, 174600, 300, 6),
]

# ---------------------------------------------------------------------------
# Large models: parameters and the tokens each was *trained on* (not the size
# of its dataset, which can differ: BloombergGPT saw 569B of a 708B corpus).
# ---------------------------------------------------------------------------
LARGE_MODELS = [
    {"model": "GPT-3 175B", "n_params": 175e9, "n_tokens": 300e9, "status": "paper",
     "source": "Brown et al. 2020, arXiv 2005.14165, Table D.1 (174.6B params, 300B tokens)"},
    {"model": "Gopher", "n_params": 280e9, "n_tokens": 300e9, "status": "paper",
     "source": "Rae et al. 2021; Hoffmann et al. 2022, arXiv 2203.15556, Table 1"},
    {"model": "Chinchilla", "n_params": 70e9, "n_tokens": 1.4e12, "status": "paper",
     "source": "Hoffmann et al. 2022, arXiv 2203.15556 (70B params, 1.4T tokens, Gopher's compute)"},
    {"model": "LLaMA-65B", "n_params": 65e9, "n_tokens": 1.4e12, "status": "secondary",
     "source": "Touvron et al. 2023, arXiv 2302.13971 (65B and 33B trained on 1.4T tokens)"},
    {"model": "OPT-175B", "n_params": 175e9, "n_tokens": 180e9, "status": "secondary",
     "source": "Zhang et al. 2022, arXiv 2205.01068 (about 180B tokens)"},
    {"model": "BLOOM", "n_params": 176e9, "n_tokens": 366e9, "status": "secondary",
     "source": "BigScience 2022, arXiv 2211.05100 and the bigscience/bloom model card: 366B tokens "
               "seen in training; the ROOTS corpus is about 350B unique tokens (the course rounds to 350B)"},
    {"model": "BloombergGPT", "n_params": 50.6e9, "n_tokens": 569e9, "status": "secondary",
     "source": "Wu et al. 2023, arXiv 2303.17564: 50.6B params, trained 139,200 steps = 569B tokens "
               "of a 708B-token corpus (FinPile 363B financial + 345B public)"},
]

# BloombergGPT's corpus as the course gives it (Wu et al. 2023, Section 2).
BLOOMBERG_DATASET_TOKENS = {"financial (FinPile)": 363e9, "general (public)": 345e9}

# The course's comparison table (compute-optimal tokens ~ 20 x params, next to
# what each model was trained on), as the course material prints it.
COURSE_CHINCHILLA_TABLE = [
    # (model, params, course's "compute-optimal" tokens, course's actual tokens)
    ("Chinchilla", 70e9, 1.4e12, 1.4e12),
    ("LLaMA-65B", 65e9, 1.3e12, 1.4e12),
    ("GPT-3", 175e9, 3.5e12, 300e9),
    ("OPT-175B", 175e9, 3.5e12, 180e9),
    ("BLOOM", 176e9, 3.5e12, 350e9),
]
