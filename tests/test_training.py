"""course_lib.training: schedule, optimizer step, exact resume, DDP/FSDP on CPU, bad input."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from training_task import TinyLM, batch, build, global_batch

from course_lib import checkpoint as ckpt
from course_lib.training import BatchStream, History, TrainConfig, lr_factor, train

TESTS = Path(__file__).resolve().parent


def _cfg(**kw) -> TrainConfig:
    base = dict(max_steps=6, lr=1e-2, warmup_steps=2, eval_every=0, progress=False, device="cpu")
    return TrainConfig(**{**base, **kw})


def test_schedule_matches_hugging_face_cosine_with_min_lr():
    from transformers import get_cosine_with_min_lr_schedule_with_warmup

    cfg = _cfg(max_steps=50, warmup_steps=5, min_lr_ratio=0.1)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    hf = get_cosine_with_min_lr_schedule_with_warmup(opt, 5, 50, min_lr_rate=0.1).lr_lambdas[0]
    for s in range(50):
        # HF starts warmup at 0 (a step with lr=0); ours starts at lr / warmup, one step ahead.
        ref = hf(s + 1) if s < 5 else hf(s)
        assert lr_factor(s, cfg) == pytest.approx(ref, abs=1e-12), s
    assert lr_factor(49, cfg) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 44 / 45)))


def test_steps_match_a_bare_pytorch_loop():
    """Two micro-batches accumulated == one bare AdamW step on both stacked, with clipping and the schedule."""
    cfg = _cfg(max_steps=5, grad_accum_steps=2, clip_norm=0.5, weight_decay=0.1)
    torch.manual_seed(0)
    model = TinyLM()
    ref = TinyLM()
    ref.load_state_dict(model.state_dict())
    history = train(model, batch, cfg)

    decay = [p for p in ref.parameters() if p.dim() >= 2]
    no_decay = [p for p in ref.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(0.9, 0.95))
    losses = []
    for s in range(cfg.max_steps):
        for group in opt.param_groups:
            group["lr"] = cfg.lr * lr_factor(s, cfg)
        _, loss = ref(**global_batch(s, world=2))  # micro-batches 2s and 2s+1 stacked
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.5)
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert history.loss == pytest.approx(losses, abs=1e-5)
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-4, msg=name)
    assert history.lr[0] == pytest.approx(cfg.lr / 2) and history.step == [1, 2, 3, 4, 5]


def test_hugging_face_model_output_and_history_frame():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=32, n_positions=16, n_embd=16, n_layer=1, n_head=2,
                                       bos_token_id=None, eos_token_id=None))
    # HF causal LMs shift the labels themselves: labels = input_ids. Four batches, shorter than the run: cycled.
    data = [{"input_ids": b["input_ids"], "labels": b["input_ids"]} for b in map(batch, range(4))]
    history = train(model, data, _cfg(max_steps=30, lr=1e-2, eval_every=10, eval_steps=2, log_every=5), eval_batches=data)
    frame = history.to_frame()
    assert list(frame.index) == [5, 10, 15, 20, 25, 30]
    assert history.eval_step == [10, 20, 30] and frame["eval_loss"].notna().sum() == 3
    assert history.loss[-1] < history.loss[0] - 0.5 and history.eval_loss[-1] < history.eval_loss[0]
    assert all(t > 0 for t in history.tokens_per_s)


def _noisy_batches(index: int) -> dict:
    b = batch(index)
    b["labels"][torch.rand(b["labels"].shape) < 0.2] = -100  # draws from the global torch RNG: resume must restore it
    return b


class Crash(RuntimeError):
    pass


def test_resume_after_a_crash_is_bitwise_equal(tmp_path):
    cfg = _cfg(max_steps=10, grad_accum_steps=2, checkpoint_every=3, eval_every=4, eval_steps=2)
    torch.manual_seed(0)
    straight, crashed = TinyLM(dropout=0.2), TinyLM(dropout=0.2)
    crashed.load_state_dict(straight.state_dict())
    resumed = TinyLM(dropout=0.2)  # different initial weights: the checkpoint must overwrite them
    ref_history = train(straight, _noisy_batches, cfg, eval_batches=_noisy_batches)

    def crashing(index):
        if index == 15:  # a micro-batch of step 8: the last checkpoint is at step 6
            raise Crash
        return _noisy_batches(index)

    run = TrainConfig(**{**cfg.__dict__, "checkpoint_dir": str(tmp_path)})
    with pytest.raises(Crash):
        train(crashed, crashing, run, eval_batches=_noisy_batches)
    assert ckpt.load(ckpt.latest(tmp_path))["step"] == 6
    history = train(resumed, _noisy_batches, run, eval_batches=_noisy_batches)
    for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), f"{name} differs after resume"
    assert history.loss == ref_history.loss and history.eval_loss == ref_history.eval_loss
    assert history.step == list(range(1, 11))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary files left behind


def test_resume_from_an_iterable_replays_to_the_same_batches(tmp_path):
    data = [batch(i) for i in range(5)]  # 5 batches for 8 steps: the second pass starts mid-run
    cfg = _cfg(max_steps=8, checkpoint_every=4)
    torch.manual_seed(0)
    a, crashed, b = TinyLM(), TinyLM(), TinyLM()
    crashed.load_state_dict(a.state_dict())
    train(a, IterAgain(data), cfg)
    run = TrainConfig(**{**cfg.__dict__, "checkpoint_dir": str(tmp_path)})
    with pytest.raises(Crash):
        train(crashed, IterAgain(data, crash_at=7), run)  # dies during step 7; last checkpoint at step 4
    train(b, IterAgain(data), run)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


class IterAgain:
    """A re-iterable that is neither a list nor a function (like a DataLoader); can crash after n items."""

    def __init__(self, items, crash_at=None):
        self.items, self.crash_at, self.served = items, crash_at, 0

    def __iter__(self):
        for item in self.items:
            self.served += 1
            if self.served == self.crash_at:
                raise Crash
            yield item


def _torchrun(tmp_path, name, *args):
    out = tmp_path / f"{name}.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "course_lib.train_ddp", "training_task:build", "--out", str(out), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(out, weights_only=True)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_gloo_processes_match_one_process_with_the_global_batch(tmp_path, strategy):
    result = _torchrun(tmp_path, strategy, "--arg", "steps=4", "--arg", f"strategy={strategy}")
    assert result["world"] == 2
    model, _, cfg = build(steps=4)
    history = train(model, lambda i: global_batch(i, world=2), cfg)  # one process, both ranks' data stacked
    assert result["history"]["loss"] == pytest.approx(history.loss, abs=1e-5)
    for name, p in model.state_dict().items():
        torch.testing.assert_close(result["model"][name], p, atol=1e-5, rtol=1e-4, msg=name)


def test_bad_input_gives_clear_errors():
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=-1).validate()
    with pytest.raises(ValueError, match="grad_accum_steps"):
        TrainConfig(grad_accum_steps=0).validate()
    with pytest.raises(ValueError, match="strategy"):
        TrainConfig(strategy="zero3").validate()
    with pytest.raises(RuntimeError, match="torchrun"):
        train(TinyLM(), batch, _cfg(strategy="ddp"))
    with pytest.raises(ValueError, match="no loss"):
        train(TinyLM(), lambda i: {"input_ids": batch(i)["input_ids"]}, _cfg())
    with pytest.raises(ValueError, match="one-shot"):
        train(TinyLM(), (batch(i) for i in range(2)), _cfg(max_steps=3))
    with pytest.raises(TypeError, match="dict of tensors"):
        BatchStream([[1, 2, 3]]).next()
    with pytest.raises(ValueError, match="empty"):
        BatchStream([])


def test_history_round_trips_through_a_checkpoint(tmp_path):
    h = History(step=[1, 2], loss=[2.0, 1.5], lr=[1e-3, 2e-3], tokens_per_s=[10.0, 11.0], grad_norm=[1.0, 0.9],
                eval_step=[2], eval_loss=[1.7])
    ckpt.save_atomic({"history": h.to_dict()}, tmp_path / "h.pt")
    assert History.from_dict(ckpt.load(tmp_path / "h.pt")["history"]) == h
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        ckpt.load(tmp_path / "missing.pt")


def test_plan_steps_caps_passes_over_a_small_text():
    from course_lib.training import plan_steps

    plan = plan_steps(1000, n_tokens=9_500, tokens_per_step=1024, max_passes=10)
    assert plan.capped and plan.steps == 92 and plan.passes <= 10 and "9,500" in plan.note
    free = plan_steps(1000, n_tokens=10_000_000, tokens_per_step=1024, max_passes=10)
    assert not free.capped and free.steps == 1000 and free.passes == pytest.approx(0.1024)
    assert plan_steps(5, n_tokens=10, tokens_per_step=1024, max_passes=1).steps == 1  # never zero steps
    with pytest.raises(ValueError):
        plan_steps(0, 10, 10, 1)
