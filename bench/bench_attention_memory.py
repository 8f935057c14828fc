"""Peak memory of causal self-attention vs sequence length: fused SDPA path vs explicit weights.

    python bench/bench_attention_memory.py [--lengths 512 1024 2048 4096 --d-model 256 --n-head 4] [--plot out.png]

Each (length, path) runs in a fresh process that measures the rise of its peak resident
memory (ru_maxrss) across one forward pass of course_lib's MultiHeadAttention (no grad,
batch 1, fp32). "fused" is the default path (need_weights=False: torch's fused kernel);
"explicit" asks for the weights, which forces the (n_head, T, T) matrix into memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import resource, sys, torch
from course_lib.attention import MultiHeadAttention
T, d, h, explicit = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "explicit"
torch.manual_seed(0)
mha = MultiHeadAttention(d, h).eval()
with torch.no_grad():
    mha(torch.randn(1, 16, d), is_causal=True, need_weights=explicit)  # warm-up: load kernels, allocator
    x = torch.randn(1, T, d)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    y, w = mha(x, is_causal=True, need_weights=explicit)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) / 1024)  # ru_maxrss is in KiB on Linux -> MiB
"""


def measure(T, d, h, path):
    out = subprocess.run([sys.executable, "-c", CHILD, str(T), str(d), str(h), path], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--plot", default=None, help="write a PNG of the table here")
    args = p.parse_args()
    rows = []
    print(f"{'T':>6} {'fused MiB':>10} {'explicit MiB':>13} {'one (H,T,T) fp32 matrix MiB':>28}")
    for T in args.lengths:
        row = {"T": T, "fused_mib": measure(T, args.d_model, args.n_head, "fused"),
               "explicit_mib": measure(T, args.d_model, args.n_head, "explicit"),
               "scores_matrix_mib": args.n_head * T * T * 4 / 2**20}
        rows.append(row)
        print(f"{T:>6} {row['fused_mib']:>10.1f} {row['explicit_mib']:>13.1f} {row['scores_matrix_mib']:>28.1f}")
    print(json.dumps({"d_model": args.d_model, "n_head": args.n_head, "rows": rows}))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.5, 3.5))
        Ts = [r["T"] for r in rows]
        for key, label in (("explicit_mib", "explicit weights"), ("fused_mib", "fused SDPA"), ("scores_matrix_mib", "one (H, T, T) matrix")):
            ax.plot(Ts, [r[key] for r in rows], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("symlog")
        ax.set_xlabel("sequence length T")
        ax.set_ylabel("peak memory rise (MiB)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)


if __name__ == "__main__":
    main()
