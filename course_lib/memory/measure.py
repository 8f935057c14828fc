"""Measure the memory a model really holds, to check the predictions in ``course_lib.memory.estimate``.

On CPU we sum tensor storage exactly (parameters, gradients, AdamW's states, and the
activations autograd saves for backward); on CUDA we also read the allocator's peak.
``zero_optimizer_shards`` runs torch's ZeroRedundancyOptimizer in 2 gloo processes and
reports what each rank keeps.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..atomic import atomic_write_text
from ..checks import check_int, check_number
from ..model import DecoderOnlyLM, TransformerConfig


def storage_bytes(tensors) -> int:
    """Bytes of the distinct storages behind ``tensors`` (views and aliases counted once)."""
    seen: dict[int, int] = {}
    for t in tensors:
        if t is None:
            continue
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def optimizer_state_tensors(optimizer: torch.optim.Optimizer, keys=("exp_avg", "exp_avg_sq")) -> list[torch.Tensor]:
    """The state tensors named ``keys`` (Adam's m and v by default) for every parameter."""
    return [state[k] for state in optimizer.state.values() for k in keys if k in state]


def _loss_of(model: nn.Module, batch) -> torch.Tensor:
    out = model(**batch) if isinstance(batch, dict) else model(batch)
    loss = getattr(out, "loss", out)
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        raise ValueError("The model must return a scalar loss (or an output with .loss); pass labels in the batch.")
    return loss


def measure_training_state(model: nn.Module, batch, lr: float = 1e-4) -> dict:
    """One AdamW step on ``batch``, then the bytes held by params, grads and optimizer states.

    Returns measured and predicted bytes (4 + 4 + 8 per trainable fp32 parameter), Adam's step
    counters separately (one small tensor per parameter tensor), and on CUDA the allocator's peak.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("The model has no trainable parameter.")
    device = params[0].device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    optimizer = torch.optim.AdamW(params, lr=lr)
    model.train()
    loss = _loss_of(model, batch)
    loss.backward()
    optimizer.step()
    n = sum(p.numel() for p in params)
    bytes_per = params[0].element_size()
    result = {
        "n_params": n,
        "param_bytes": storage_bytes(params),
        "grad_bytes": storage_bytes(p.grad for p in params),
        "optimizer_bytes": storage_bytes(optimizer_state_tensors(optimizer)),
        "step_counter_bytes": storage_bytes(optimizer_state_tensors(optimizer, ("step",))),
        "predicted_param_bytes": n * bytes_per,
        "predicted_grad_bytes": n * bytes_per,
        "predicted_optimizer_bytes": 2 * n * bytes_per,
        "loss": loss.item(),
    }
    if device.type == "cuda":
        result["cuda_max_allocated"] = torch.cuda.max_memory_allocated(device)
    optimizer.zero_grad(set_to_none=True)
    return result


def measure_activations(model: nn.Module, batch) -> dict:
    """Bytes of the tensors autograd saves for backward in one forward pass (parameters excluded).

    Uses ``torch.autograd.graph.saved_tensors_hooks``: every tensor an op keeps for its backward
    passes through the hook; distinct storages are summed. They all live until backward
    starts, so the sum is the activation peak of a plain (non-checkpointed) step.
    """
    param_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in param_storages and ptr != 0:
            saved[ptr] = storage.nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = _loss_of(model, batch)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return {"activation_bytes": sum(saved.values()), "n_saved_storages": len(saved)}


def dropout_mask_bytes(device: torch.device | str = "cpu") -> int:
    """Bytes per element of the mask dropout keeps for backward on ``device`` (CPU: float, CUDA: bool)."""
    sizes = []

    def pack(t):
        sizes.append((t.dtype, t.element_size()))
        return t

    x = torch.ones(8, device=device, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        nn.functional.dropout(x, 0.5, training=True)
    if not sizes:
        raise RuntimeError(f"dropout on {device} saved nothing for backward; cannot tell its mask size.")
    return min(size for _, size in sizes)


# --- ZeroRedundancyOptimizer with 2 gloo processes ----------------------------------


@dataclass
class ZeroDemoConfig:
    """A small causal LM trained for one step by ``world_size`` CPU processes."""

    world_size: int = 2  # processes (ranks), one gloo group on this machine
    vocab_size: int = 512  # token ids 0..vocab-1
    d_model: int = 64  # hidden size
    n_layers: int = 2  # torch TransformerEncoder layers with a causal mask
    n_heads: int = 4  # attention heads
    seq_len: int = 32  # tokens per sequence
    batch_per_rank: int = 4  # sequences each rank sees
    lr: float = 1e-3  # AdamW learning rate
    seed: int = 0  # same weights on every rank; data differ by rank

    def __post_init__(self):
        for name in ("world_size", "vocab_size", "d_model", "n_layers", "n_heads", "seq_len", "batch_per_rank"):
            check_int("ZeroDemoConfig", name, getattr(self, name), 1)
        check_int("ZeroDemoConfig", "seed", self.seed, 0)
        check_number("ZeroDemoConfig", "lr", self.lr, 0.0, low_open=True)
        if self.d_model % self.n_heads:
            raise ValueError(f"ZeroDemoConfig: d_model={self.d_model} must be divisible by n_heads={self.n_heads}.")


def zero_demo_model(cfg: ZeroDemoConfig) -> DecoderOnlyLM:
    """The course's own decoder (``course_lib.model``) at the demo's size, seeded so every rank starts equal."""
    torch.manual_seed(cfg.seed)
    return DecoderOnlyLM(TransformerConfig(vocab_size=cfg.vocab_size, d_model=cfg.d_model, n_head=cfg.n_heads,
                                           n_layer=cfg.n_layers, max_seq_len=cfg.seq_len, eos_token_id=None))


def zero_demo_batch(cfg: ZeroDemoConfig, rank: int) -> torch.Tensor:
    """Rank ``rank``'s token ids; concatenating all ranks' batches gives the global batch."""
    g = torch.Generator().manual_seed(cfg.seed * 1000 + 1 + rank)
    return torch.randint(0, cfg.vocab_size, (cfg.batch_per_rank, cfg.seq_len), generator=g)


def _zero_worker(rank: int, cfg: ZeroDemoConfig, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=cfg.world_size)
    try:
        model = zero_demo_model(cfg)
        ddp = DDP(model)
        optimizer = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=torch.optim.AdamW, lr=cfg.lr)
        batch = zero_demo_batch(cfg, rank)
        _, loss = ddp(batch, labels=batch)
        loss.backward()  # DDP averages gradients over ranks
        optimizer.step()  # each rank updates its shard, then broadcasts it
        local = optimizer.optim  # the AdamW that holds only this rank's parameters
        owned = [p for group in local.param_groups for p in group["params"]]
        result = {"rank": rank, "loss": loss.item(),
                  "owned_params": sum(p.numel() for p in owned),
                  "total_params": sum(p.numel() for p in model.parameters()),
                  "optimizer_bytes": storage_bytes(optimizer_state_tensors(local))}
        if rank == 0:
            flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
            torch.save(flat, Path(out_dir) / "params_after_step.pt")
        atomic_write_text(Path(out_dir) / f"rank{rank}.json", json.dumps(result))
    finally:
        dist.destroy_process_group()


def zero_optimizer_shards(cfg: ZeroDemoConfig | None = None, return_params: bool = False):
    """Run one ZeroRedundancyOptimizer step in ``cfg.world_size`` gloo processes.

    Returns one dict per rank: parameters it owns, bytes of Adam's m and v it holds, its loss.
    With ``return_params`` also the parameters after the step (flattened, from rank 0).
    """
    import torch.distributed as dist
    import torch.multiprocessing as mp

    cfg = cfg or ZeroDemoConfig()
    if cfg.world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {cfg.world_size}.")
    if not dist.is_available() or not dist.is_gloo_available():
        raise RuntimeError("This torch build has no gloo backend; ZeroRedundancyOptimizer cannot run here.")
    with tempfile.TemporaryDirectory(prefix="course_zero_") as out_dir:
        init_file = os.path.join(out_dir, "rendezvous")
        mp.spawn(_zero_worker, args=(cfg, init_file, out_dir), nprocs=cfg.world_size, join=True)
        ranks = [json.loads((Path(out_dir) / f"rank{r}.json").read_text()) for r in range(cfg.world_size)]
        flat = torch.load(Path(out_dir) / "params_after_step.pt") if return_params else None
    return (ranks, flat) if return_params else ranks

