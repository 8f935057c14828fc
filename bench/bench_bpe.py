"""Benchmark: course_lib.train_bpe vs Hugging Face tokenizers on ~130 KB of English dialogue.

    DIALOGSUM_DIR=../shared/data/dialogsum python bench/bench_bpe.py [--kb 130] [--vocab 500] [--repeats 5]

Prints training time (median of --repeats), the ratio to Hugging Face's BpeTrainer
on the same text and vocab size, encode throughput (MB/s) of both on held-out
dialogues, and peak memory of encode vs encode_iterable on a long stream.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path


def dialogues(split: str, n_bytes: int) -> str:
    root = os.environ.get("DIALOGSUM_DIR")
    if not root:
        sys.exit("Set DIALOGSUM_DIR to the folder with dialogsum.train.jsonl (e.g. ../shared/data/dialogsum).")
    out, size = [], 0
    with open(Path(root) / f"dialogsum.{split}.jsonl", encoding="utf-8") as fh:
        for line in fh:
            text = json.loads(line)["dialogue"]
            out.append(text)
            size += len(text.encode()) + 1
            if size >= n_bytes:
                break
    return "\n".join(out)


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kb", type=int, default=130, help="training text size in KB")
    parser.add_argument("--vocab", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from course_lib.tokenization import BPETokenizer, train_bpe
    from course_lib.tokenizer_compare import train_hf_tokenizer

    train_text = dialogues("train", args.kb * 1000)
    eval_text = dialogues("dev", 400_000)
    mb_train, mb_eval = len(train_text.encode()) / 1e6, len(eval_text.encode()) / 1e6
    print(f"train text: {mb_train * 1000:.1f} KB of DialogSum train dialogues; encode text: {mb_eval * 1000:.1f} KB of dev dialogues")

    ours_s, ours = median_time(lambda: train_bpe(train_text, args.vocab), args.repeats)
    hf_s, hf = median_time(lambda: train_hf_tokenizer([train_text], "bpe", args.vocab), args.repeats)
    print(f"train_bpe (vocab {args.vocab}):         {ours_s:.3f} s (median of {args.repeats})")
    print(f"HF tokenizers BpeTrainer:      {hf_s:.3f} s  -> ours / HF = {ours_s / hf_s:.1f}x")

    # Encode throughput: a fresh tokenizer (empty pre-token cache) each time, so the cache is earned on this text.
    cold_s, ids = median_time(lambda: BPETokenizer(ours.vocab, ours.merges).encode(eval_text), args.repeats)
    warm_s, _ = median_time(lambda: ours.encode(eval_text), args.repeats)
    fast = ours.to_hf()
    hf_enc_s, hf_ids = median_time(lambda: fast(eval_text, add_special_tokens=False)["input_ids"], args.repeats)
    raw_s, _ = median_time(lambda: hf.encode(eval_text, add_special_tokens=False), args.repeats)
    docs = eval_text.split("\n")
    batch_s, _ = median_time(lambda: hf.encode_batch(docs, add_special_tokens=False), args.repeats)
    assert hf_ids == ids, "to_hf() must give identical ids"
    print(f"encode, ours (cold cache):       {mb_eval / cold_s:.2f} MB/s  ({len(ids)} tokens)")
    print(f"encode, ours (warm cache):       {mb_eval / warm_s:.2f} MB/s")
    print(f"encode, HF fast (our merges):    {mb_eval / hf_enc_s:.2f} MB/s")
    print(
        f"encode, HF tokenizers (its own): {mb_eval / raw_s:.2f} MB/s as one string, {mb_eval / batch_s:.2f} MB/s with encode_batch over {len(docs)} lines"
    )

    # Memory: the whole stream as one string + list vs encode_iterable over lines.
    lines = eval_text.splitlines(keepends=True) * 5
    tracemalloc.start()
    n_stream = sum(1 for _ in ours.encode_iterable(iter(lines)))
    stream_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    tracemalloc.start()
    n_list = len(ours.encode("".join(lines)))
    list_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n_stream == n_list
    mb_stream = sum(len(s.encode()) for s in lines) / 1e6
    print(f"peak memory on {mb_stream:.1f} MB: encode {list_peak / 1e6:.1f} MB, encode_iterable {stream_peak / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
