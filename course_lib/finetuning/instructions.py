"""Instruction fine-tuning data from DialogSum: each dialogue asked for in several phrasings, for several tasks.

FLAN (Wei et al., 2021; Chung et al., 2022) fine-tunes on many tasks, each written out in many templates,
so that the model learns to follow the instruction rather than one fixed wording. Here a DialogSum row
('dialogue', 'summary', 'topic') gives two tasks: write the summary, or name the topic. Every template
puts the instruction before the dialogue, so an input cut to the context window loses the end of the
dialogue, never the task.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence

import torch

from ..checks import check_int
from ..objectives import seq2seq_collate
from ..prompting import DEFAULT_CONTEXT

TEMPLATES: dict[str, list[str]] = {
    "summary": [
        "Summarize the following conversation.\n\n{dialogue}\n\nSummary:",
        "Write a short summary of this dialogue.\n\n{dialogue}",
        "Read the conversation below and say in one or two sentences what happened.\n\n{dialogue}",
        "Dialogue:\n\n{dialogue}\n\nWhat was going on? Answer briefly.",
        "Briefly describe what the speakers talk about and decide.\n\n{dialogue}\n\nIn short:",
    ],
    "topic": [
        "What is the topic of the following conversation?\n\n{dialogue}\n\nTopic:",
        "Give the topic of this dialogue in a few words.\n\n{dialogue}",
        "Name the subject of the conversation below.\n\n{dialogue}",
        "Read the dialogue and label it with a short topic.\n\n{dialogue}\n\nLabel:",
    ],
}


def _check_templates(templates: dict[str, Sequence[str]], tasks: Sequence[str]) -> None:
    unknown = [t for t in tasks if t not in templates]
    if unknown:
        raise ValueError(f"tasks {unknown} have no templates; known tasks: {sorted(templates)}.")
    for task in tasks:
        if not templates[task] or not all(isinstance(t, str) and "{dialogue}" in t for t in templates[task]):
            raise ValueError(f"templates[{task!r}] must be a non-empty list of strings that each contain '{{dialogue}}'.")


def instruction_examples(rows: Iterable[dict], tasks: Sequence[str] = ("summary",), seed: int = 0,
                         templates: dict[str, Sequence[str]] | None = None) -> list[dict]:
    """One ``{'source', 'target', 'task'}`` per row per task, each in a template drawn at random (seeded).

    The target is the row's field named like the task ('summary' or 'topic'), stripped.
    """
    if isinstance(tasks, str):
        tasks = (tasks,)
    templates = TEMPLATES if templates is None else templates
    if not tasks:
        raise ValueError("instruction_examples needs at least one task, e.g. tasks=('summary', 'topic').")
    _check_templates(templates, tasks)
    rng = random.Random(seed)
    examples = []
    for i, row in enumerate(rows):
        for task in tasks:
            if not isinstance(row.get("dialogue"), str) or not isinstance(row.get(task), str):
                raise ValueError(f"row {i} needs string fields 'dialogue' and {task!r}; it has {sorted(row)}.")
            template = rng.choice(list(templates[task]))
            examples.append({"source": template.format(dialogue=row["dialogue"].strip()),
                             "target": row[task].strip(), "task": task})
    return examples


def tokenize_examples(tokenizer, examples: Sequence[dict], max_source_tokens: int = DEFAULT_CONTEXT,
                      max_target_tokens: int = 64) -> list[dict]:
    """``{'input_ids', 'labels'}`` id lists; sources cut to ``max_source_tokens`` (the end-of-sequence token kept).

    With a soft prompt of k virtual tokens, pass ``max_source_tokens=soft_prompt.source_budget(k)``.
    """
    check_int("tokenize_examples", "max_source_tokens", max_source_tokens, 2)
    check_int("tokenize_examples", "max_target_tokens", max_target_tokens, 2)
    if not examples:
        raise ValueError("tokenize_examples: no examples.")
    sources = tokenizer([e["source"] for e in examples], truncation=True, max_length=max_source_tokens)["input_ids"]
    targets = tokenizer([e["target"] for e in examples], truncation=True, max_length=max_target_tokens)["input_ids"]
    return [{"input_ids": list(s), "labels": list(t)} for s, t in zip(sources, targets)]


def collate(batch: Sequence[dict], pad_id: int = 0) -> dict:
    """Right-pad tokenized examples into ``{'input_ids', 'attention_mask', 'labels'}`` tensors (labels padded with -100)."""
    return seq2seq_collate([(ex["input_ids"], ex["labels"]) for ex in batch], pad_id)


def instruction_batches(tokenizer, rows: Iterable[dict], tasks: Sequence[str], batch_size: int, seed: int = 0,
                        max_source_tokens: int = DEFAULT_CONTEXT, max_target_tokens: int = 64) -> Callable[[int], dict]:
    """index -> a training batch of ``rows`` written as instructions for ``tasks`` (``course_lib.training.train``
    takes it): the examples reshuffled every pass, seeded, so step k always sees the same batch."""
    check_int("instruction_batches", "batch_size", batch_size, 1)
    examples = tokenize_examples(tokenizer, instruction_examples(rows, tasks=tasks, seed=seed),
                                 max_source_tokens=max_source_tokens, max_target_tokens=max_target_tokens)
    per_pass = max(1, len(examples) // batch_size)

    def batch(k: int) -> dict:
        order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed + k // per_pass))
        start = (k % per_pass) * batch_size
        return collate([examples[int(i)] for i in order[start:start + batch_size]], tokenizer.pad_token_id)

    return batch
