"""A tiny next-token model and its batches, shared by tests/test_training.py and the torchrun runs it launches."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.training import TrainConfig

VOCAB = 32


class TinyLM(nn.Module):
    """Embedding, two residual MLP blocks (a ModuleList, so FSDP can shard them), a head; returns (logits, loss)."""

    def __init__(self, vocab: int = VOCAB, d: int = 16, dropout: float = 0.0):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList([nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d)) for _ in range(2)])
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, input_ids, labels=None):
        x = self.emb(input_ids)  # (B, T, d)
        for block in self.blocks:
            x = x + self.drop(block(x))
        logits = self.head(self.norm(x))  # (B, T, vocab)
        loss = None if labels is None else F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        return logits, loss


def batch(index: int, batch_size: int = 4, seq_len: int = 12) -> dict:
    """Batch ``index`` of a noisy 'next = 3 * prev + 1 mod V' sequence: the same tensors for the same index."""
    g = torch.Generator().manual_seed(1000 + index)
    start = torch.randint(0, VOCAB, (batch_size, 1), generator=g)
    steps = [start]
    for _ in range(seq_len):
        noise = (torch.rand(batch_size, 1, generator=g) < 0.1).long() * torch.randint(0, VOCAB, (batch_size, 1), generator=g)
        steps.append((3 * steps[-1] + 1 + noise) % VOCAB)
    seq = torch.cat(steps, dim=1)
    return {"input_ids": seq[:, :-1], "labels": seq[:, 1:].clone()}


def global_batch(index: int, world: int = 2, batch_size: int = 4) -> dict:
    """What `world` ranks see together at micro-batch ``index``: their batches stacked."""
    parts = [batch(index * world + r, batch_size) for r in range(world)]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def build(steps: int = 6, strategy: str = "auto", accum: int = 1):
    torch.manual_seed(0)
    cfg = TrainConfig(max_steps=steps, lr=1e-2, warmup_steps=2, grad_accum_steps=accum, eval_every=0,
                      progress=False, device="cpu", strategy=strategy)
    return TinyLM(), batch, cfg
