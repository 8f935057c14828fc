"""Why larger models need less in-context help, in a toy that runs in a minute on a CPU.

A fixed table of facts (a pair of tokens ``(a, b)`` -> one of ``n_values`` value tokens, drawn at random once)
is the "world knowledge". Training prompts hold 0 to ``max_shots`` solved examples ``a b v`` and then a query
``a b`` whose value the model must name; in half of them one example is the query itself. A model can answer
either from its weights (it memorised the table: needs capacity) or by copying from the prompt (an induction
pattern: cheap). Decoders of several widths train on the same prompts for the same steps; then each is asked
zero-shot, with examples that hold the answer, and with examples that do not.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .checks import check_int, check_number
from .device import set_seed
from .model import DecoderOnlyLM, TransformerConfig
from .training import TrainConfig, train


@dataclass
class InContextConfig:
    n_keys: int = 32  # each half of a query, so the table holds n_keys**2 facts
    n_values: int = 16  # value tokens a fact can point to (chance = 1 / n_values)
    max_shots: int = 4  # solved examples a prompt can hold
    widths: tuple[int, ...] = (8, 12, 16, 24, 64)  # d_model of the decoders compared (2 layers each)
    n_layer: int = 2  # two layers: enough for an induction (copy-from-context) pattern
    steps: int = 2000  # optimizer steps per model
    batch_size: int = 64  # prompts per step
    lr: float = 3e-3  # peak learning rate
    eval_prompts: int = 1024  # prompts behind every accuracy
    seed: int = 0  # the fact table, the prompts and the initialisation

    def __post_init__(self):
        for name in ("n_keys", "n_values", "max_shots", "n_layer", "steps", "batch_size", "eval_prompts"):
            check_int("InContextConfig", name, getattr(self, name), 1)
        check_int("InContextConfig", "n_keys", self.n_keys, 2)
        check_int("InContextConfig", "seed", self.seed, 0)
        check_number("InContextConfig", "lr", self.lr, 0.0, low_open=True)
        if not isinstance(self.widths, (tuple, list)) or not self.widths:
            raise ValueError(f"InContextConfig.widths={self.widths!r}: give one or more widths, e.g. (16, 128).")
        for width in self.widths:
            check_int("InContextConfig", "widths", width, 2)
            if width % 2:
                raise ValueError(f"InContextConfig.widths: {width} must be even (2 or more heads of equal width).")


SMOKE_CONFIG = InContextConfig(widths=(8, 32), steps=30, eval_prompts=128)


class FactTask:
    """The fact table and the prompts built on it. Tokens: a in [0, n), b in [n, 2n), values, then PAD."""

    def __init__(self, cfg: InContextConfig):
        self.cfg = cfg
        n = cfg.n_keys
        self.value_offset = 2 * n
        self.pad = 2 * n + cfg.n_values
        self.vocab_size = self.pad + 1
        self.seq_len = 3 * (cfg.max_shots + 1)
        gen = torch.Generator().manual_seed(cfg.seed)
        self.facts = torch.randint(0, cfg.n_values, (n, n), generator=gen) + self.value_offset  # (n, n) value tokens

    def prompts(self, n_prompts: int, shots: int, answer_in_prompt, gen: torch.Generator):
        """(ids, labels), each (n_prompts, seq_len). Prompts are left-filled with PAD; ``answer_in_prompt`` (a bool
        or one per prompt) puts the query among the examples. Labels hold the value tokens, -100 elsewhere."""
        cfg, n = self.cfg, self.cfg.n_keys
        if not 0 <= shots <= cfg.max_shots:
            raise ValueError(f"shots={shots}: must be in [0, max_shots={cfg.max_shots}].")
        include = torch.as_tensor(answer_in_prompt, dtype=torch.bool).expand(n_prompts)
        ids = torch.full((n_prompts, self.seq_len), self.pad)
        qa, qb = torch.randint(0, n, (n_prompts,), generator=gen), torch.randint(0, n, (n_prompts,), generator=gen)
        ka, kb = torch.randint(0, n, (n_prompts, shots), generator=gen), torch.randint(0, n, (n_prompts, shots), generator=gen)
        clash = (ka == qa[:, None]) & (kb == qb[:, None])
        kb = torch.where(clash, (kb + 1) % n, kb)  # an example equals the query only where we put it on purpose
        if shots:
            slot = torch.randint(0, shots, (n_prompts,), generator=gen)
            rows = torch.nonzero(include).squeeze(1)
            ka[rows, slot[rows]], kb[rows, slot[rows]] = qa[rows], qb[rows]
        start = 3 * (cfg.max_shots - shots)
        ids[:, start:-3:3], ids[:, start + 1:-3:3], ids[:, start + 2:-3:3] = ka, kb + n, self.facts[ka, kb]
        ids[:, -3], ids[:, -2], ids[:, -1] = qa, qb + n, self.facts[qa, qb]
        labels = torch.full_like(ids, -100)
        labels[:, 2::3] = ids[:, 2::3]
        labels[labels == self.pad] = -100
        return ids, labels

    def batches(self, batch_size: int, seed: int):
        """index -> training batch: a random number of shots per batch, the answer in the prompt half the time."""
        gen = torch.Generator().manual_seed(seed)

        def batch(_step: int) -> dict:
            shots = int(torch.randint(0, self.cfg.max_shots + 1, (1,), generator=gen))
            ids, labels = self.prompts(batch_size, shots, torch.rand(batch_size, generator=gen) < 0.5, gen)
            return {"input_ids": ids, "labels": labels}

        return batch


def make_model(task: FactTask, width: int, cfg: InContextConfig) -> DecoderOnlyLM:
    return DecoderOnlyLM(TransformerConfig(vocab_size=task.vocab_size, d_model=width, n_head=4 if width % 4 == 0 and width >= 32 else 2,
                                           n_layer=cfg.n_layer, max_seq_len=task.seq_len, pad_token_id=task.pad,
                                           bos_token_id=task.pad, eos_token_id=None))


@torch.no_grad()
def accuracy(model, task: FactTask, shots: int, answer_in_prompt: bool, n_prompts: int, seed: int = 123) -> float:
    """Share of prompts whose query value is the model's most likely next token."""
    model.eval()
    device = next(model.parameters()).device
    ids, _ = task.prompts(n_prompts, shots, answer_in_prompt, torch.Generator().manual_seed(seed))
    logits, _ = model(ids[:, :-1].to(device))  # (B, T - 1, V): the last position predicts the answer
    return (logits[:, -1].argmax(-1).cpu() == ids[:, -1]).float().mean().item()


SETTINGS = {  # name -> (shots, answer among the examples)
    "zero-shot": (0, False),
    "1 example, holds the answer": (1, True),
    "max examples, none holds the answer": (None, False),
}


def run_in_context_experiment(cfg: InContextConfig, device: str = "cpu", progress: bool = True):
    """Train one decoder per width on the same prompts; return a DataFrame: width, parameters, setting, accuracy."""
    import pandas as pd

    task = FactTask(cfg)
    rows = []
    for width in cfg.widths:
        set_seed(cfg.seed)
        model = make_model(task, width, cfg)
        train(model, task.batches(cfg.batch_size, cfg.seed + 1),
              TrainConfig(max_steps=cfg.steps, lr=cfg.lr, warmup_steps=min(50, cfg.steps // 10), eval_every=0,
                          weight_decay=0.0, progress=progress, device=device, seed=cfg.seed))
        n_params = sum(p.numel() for p in model.parameters())
        for name, (shots, inside) in SETTINGS.items():
            shots = cfg.max_shots if shots is None else shots
            rows.append({"d_model": width, "parameters": n_params, "setting": name,
                         "accuracy": accuracy(model, task, shots, inside, cfg.eval_prompts)})
    return pd.DataFrame(rows)


def in_context_help(table):
    """Per width: accuracy with one example holding the answer minus zero-shot accuracy."""
    wide = table.pivot(index="d_model", columns="setting", values="accuracy")
    return (wide["1 example, holds the answer"] - wide["zero-shot"]).rename("in-context help")
