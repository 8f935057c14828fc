"""The model and batches bench/bench_training.py times (also a torchrun builder for course_lib.train_ddp)."""

from __future__ import annotations

import torch

from course_lib.model import DecoderOnlyLM, TransformerConfig
from course_lib.training import TrainConfig

BATCH, SEQ, VOCAB = 16, 64, 1056  # the lab's CPU setting: 16 rows of 64 tokens, a 1024-token BPE + 32 sentinels


def fixed_batches(n: int = 8) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        ids = torch.randint(0, VOCAB, (BATCH, SEQ), generator=g)
        out.append({"input_ids": ids, "labels": ids})
    return out


def build(steps: int = 40):
    torch.manual_seed(0)
    model = DecoderOnlyLM(TransformerConfig(vocab_size=VOCAB, d_model=128, n_head=4, n_layer=4, max_seq_len=SEQ))
    cfg = TrainConfig(max_steps=steps, warmup_steps=5, eval_every=0, progress=False, device="cpu")
    return model, fixed_batches(), cfg
