"""Lab 07's offline experiment: teach a model a task it was never trained on, three ways, and measure forgetting.

The DialogSum stand-in was trained to summarize, never to name a dialogue's topic. Each method starts from
the same weights and trains on the same topic batches for the same number of steps:

- full fine-tuning: every weight trains;
- LoRA: low-rank adapters on the attention's q and v projections, the rest frozen;
- prompt tuning: k trainable virtual tokens in front of the input, the whole model frozen.

Then each is scored on held-out dialogues: the topic it names (ROUGE-1 against DialogSum's topic, and exact
matches), and the summary it writes when asked to summarize (ROUGE-1 against the reference summary), which
is what fine-tuning may have made it forget. LoRA and prompt tuning are scored with the adapter on and off.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

from .. import evaluation, generation, prompting
from ..checks import check_int, check_number
from ..device import set_seed
from ..memory.measure import measure_training_state, storage_bytes
from ..training import TrainConfig, train
from . import instructions
from .lora import add_lora, count_trainable, set_lora_enabled
from .soft_prompt import SoftPrompt

METHODS = ("full", "lora", "prompt tuning")


@dataclass
class TopicExperimentConfig:
    n_train: int | None = None  # training dialogues (None: every one that served)
    n_eval: int = 30  # held-out test dialogues scored per method
    steps: int = 150  # optimizer steps per method, the same batches for all
    batch_size: int = 8  # examples per step
    max_source_tokens: int = 256  # dialogues are cut here to keep CPU steps short (the model reads up to 512)
    lr_full: float = 3e-4  # AdamW peak learning rate, full fine-tuning
    lr_lora: float = 2e-3  # ... LoRA (adapters start at zero, so they take a larger step)
    lr_prompt: float = 3.0  # ... prompt tuning: a few vectors need big steps (at 0.3 the stand-in's loss did not move in 150)
    lora_rank: int = 8  # r of every adapter
    lora_alpha: float = 16.0  # the adapter's output is scaled by alpha / r
    lora_targets: tuple[str, ...] = ("q", "v")  # T5 attention projections that get adapters
    n_virtual_tokens: int = 20  # prompt tuning's trainable tokens
    max_new_tokens_topic: int = 12  # a topic is a short phrase
    max_new_tokens_summary: int = 60  # a summary is a sentence or two
    seed: int = 0  # batch order, template choice, adapter initialisation

    def __post_init__(self):
        for name in ("n_eval", "steps", "batch_size", "max_source_tokens", "lora_rank", "n_virtual_tokens",
                     "max_new_tokens_topic", "max_new_tokens_summary"):
            check_int("TopicExperimentConfig", name, getattr(self, name), 1)
        if self.n_train is not None:
            check_int("TopicExperimentConfig", "n_train", self.n_train, 1)
        check_int("TopicExperimentConfig", "seed", self.seed, 0)
        for name in ("lr_full", "lr_lora", "lr_prompt", "lora_alpha"):
            check_number("TopicExperimentConfig", name, getattr(self, name), 0.0, low_open=True)
        if self.max_source_tokens + self.n_virtual_tokens > prompting.DEFAULT_CONTEXT:
            raise ValueError(f"TopicExperimentConfig: max_source_tokens + n_virtual_tokens = "
                             f"{self.max_source_tokens + self.n_virtual_tokens} exceeds the {prompting.DEFAULT_CONTEXT}-token budget.")


SMOKE_CONFIG = TopicExperimentConfig(n_train=8, n_eval=3, steps=3, batch_size=2, max_source_tokens=64,
                                     max_new_tokens_topic=4, max_new_tokens_summary=8, n_virtual_tokens=4)


def topic_prompt(dialogue: str) -> str:
    """The fixed prompt every method is scored with (the first topic template)."""
    return instructions.TEMPLATES["topic"][0].format(dialogue=dialogue.strip())


def topic_batches(tokenizer, rows, cfg: TopicExperimentConfig):
    """index -> batch of topic examples (a template drawn per example), reshuffled every pass, seeded."""
    return instructions.instruction_batches(tokenizer, rows, ("topic",), cfg.batch_size, cfg.seed,
                                            cfg.max_source_tokens, cfg.max_new_tokens_topic)


def _prepare(base, method: str, cfg: TopicExperimentConfig):
    """(trainable model, its learning rate): a fresh copy of ``base`` set up for ``method``."""
    model = copy.deepcopy(base)
    if method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model, cfg.lr_full
    if method == "lora":
        set_seed(cfg.seed)
        return add_lora(model, cfg.lora_rank, cfg.lora_alpha, list(cfg.lora_targets)), cfg.lr_lora
    if method == "prompt tuning":
        return SoftPrompt(model, cfg.n_virtual_tokens, seed=cfg.seed), cfg.lr_prompt
    raise ValueError(f"method={method!r}: expected one of {METHODS}.")


def _generate(model, tokenizer, prompts, max_new_tokens: int, max_input_tokens: int) -> list[str]:
    settings = generation.GenerationSettings(max_new_tokens=max_new_tokens)
    return generation.summarize(model, tokenizer, prompts, settings, engine="hf", max_input_tokens=max_input_tokens)


def score(model, tokenizer, rows, cfg: TopicExperimentConfig, reserved: int = 0) -> dict:
    """Topic ROUGE-1 and exact matches, and summary ROUGE-1, on ``rows`` (greedy, the fixed prompts)."""
    limit = cfg.max_source_tokens
    topics = _generate(model, tokenizer, [topic_prompt(r["dialogue"]) for r in rows], cfg.max_new_tokens_topic, limit)
    summaries = _generate(model, tokenizer, [prompting.flan_prompt(r["dialogue"]) for r in rows],
                          cfg.max_new_tokens_summary, limit)
    wanted = [r["topic"].strip() for r in rows]
    exact = sum(t.strip().lower() == w.lower() for t, w in zip(topics, wanted)) / len(rows)
    return {"topic ROUGE-1": evaluation.rouge(topics, wanted)["rouge1"], "topic exact": exact,
            "summary ROUGE-1": evaluation.rouge(summaries, [r.get("references") or r["summary"] for r in rows])["rouge1"],
            "example topic": topics[0], "example summary": summaries[0]}


def run_topic_experiment(base, tokenizer, train_rows, test_rows, cfg: TopicExperimentConfig, device="cpu",
                         methods=METHODS, progress: bool = True):
    """Train every method on the same topic batches; return (results DataFrame, {method: History})."""
    import pandas as pd

    train_rows = list(train_rows)[: cfg.n_train] if cfg.n_train else list(train_rows)
    test_rows = list(test_rows)[: cfg.n_eval]
    base = base.to(device).eval()
    batches = topic_batches(tokenizer, train_rows, cfg)
    _, total = count_trainable(base)
    rows = [{"method": "before (zero-shot)", "adapter": "-", "trainable": 0, "trainable share": 0.0, "seconds": 0.0,
             **score(base, tokenizer, test_rows, cfg)}]
    histories = {}
    for method in methods:
        model, lr = _prepare(base, method, cfg)
        trainable, _ = count_trainable(model)
        start = time.perf_counter()
        histories[method] = train(model, batches, TrainConfig(max_steps=cfg.steps, lr=lr, warmup_steps=min(10, cfg.steps // 5),
                                                              eval_every=0, weight_decay=0.0, device=str(device),
                                                              seed=cfg.seed, progress=progress))
        seconds = time.perf_counter() - start
        model.eval()
        common = {"method": method, "trainable": trainable, "trainable share": trainable / total, "seconds": seconds}
        rows.append({**common, "adapter": "on" if method != "full" else "-", **score(model, tokenizer, test_rows, cfg)})
        if method == "lora":
            set_lora_enabled(model, False)
            rows.append({**common, "adapter": "off", **score(model, tokenizer, test_rows, cfg)})
            set_lora_enabled(model, True)
        if method == "prompt tuning":
            rows.append({**common, "adapter": "off", **score(model.model, tokenizer, test_rows, cfg)})
        del model
    return pd.DataFrame(rows), histories


def training_memory(base, method: str, batch: dict, cfg: TopicExperimentConfig) -> dict:
    """One AdamW step of ``method`` on ``batch``: measured bytes of every weight (frozen ones too), gradient and
    optimizer state, next to the prediction 4 x all weights + (4 + 8) x trainable + one 4-byte step counter per
    trainable tensor (float32)."""
    model, lr = _prepare(base, method, cfg)
    model.train()
    params = list(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    state = measure_training_state(model, batch, lr=lr)
    weights = storage_bytes(params)
    measured = weights + state["grad_bytes"] + state["optimizer_bytes"] + state["step_counter_bytes"]
    n_all, n_train = sum(p.numel() for p in params), sum(p.numel() for p in trainable)
    predicted = 4 * n_all + 12 * n_train + 4 * len(trainable)
    return {"method": method, "trainable": n_train, "weights": weights, "gradients": state["grad_bytes"],
            "optimizer": state["optimizer_bytes"] + state["step_counter_bytes"], "measured": measured,
            "predicted": predicted}
