"""Run ``course_lib.training.train`` on several processes with torch.distributed.

    torchrun --nproc_per_node 2 -m course_lib.train_ddp my_pkg.my_task:build --out run.pt --arg steps=50

``build(**args)`` returns ``(model, train_batches, cfg)`` or ``(model, train_batches, cfg,
eval_batches)``. Every process calls it (same seed, so same initial weights; DDP also
broadcasts rank 0's weights), ``train`` wraps the model in DDP (or FSDP with
``cfg.strategy='fsdp'``, GPUs), and rank 0 writes ``{'history', 'model', 'world'}`` to --out.
The backend is NCCL on GPUs and gloo on CPU.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import os

import torch
import torch.distributed as dist

from . import checkpoint as ckpt
from .training import train


def load_builder(spec: str):
    """'package.module:function' -> the function."""
    if ":" not in spec:
        raise ValueError(f"builder {spec!r}: expected 'package.module:function'.")
    module, name = spec.split(":", 1)
    fn = getattr(importlib.import_module(module), name, None)
    if not callable(fn):
        raise ValueError(f"builder {spec!r}: {module} has no function {name!r}.")
    return fn


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("builder", help="package.module:function returning (model, train_batches, cfg[, eval_batches])")
    parser.add_argument("--out", required=True, help="where rank 0 writes the history and the final weights")
    parser.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE", help="keyword argument for the builder")
    args = parser.parse_args(argv)
    kwargs = {}
    for item in args.arg:
        if "=" not in item:
            parser.error(f"--arg {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        try:
            kwargs[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            kwargs[key] = value
    return args, kwargs


def main(argv=None) -> None:
    args, kwargs = parse_args(argv)
    if "RANK" not in os.environ:
        raise SystemExit("Launch this with torchrun, e.g. torchrun --nproc_per_node 2 -m course_lib.train_ddp ...")
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group(backend)
    try:
        built = load_builder(args.builder)(**kwargs)
        model, batches, cfg = built[:3]
        eval_batches = built[3] if len(built) > 3 else None
        history = train(model, batches, cfg, eval_batches=eval_batches)
        if cfg.strategy == "fsdp":
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

            state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        else:
            state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        if dist.get_rank() == 0:
            ckpt.save_atomic({"history": history.to_dict(), "model": state, "world": dist.get_world_size()}, args.out)
        dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
