"""Build the FLAN-T5 stand-in: ``python -m course_lib.standins build --help``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch

from .. import data
from ..device import configure_threads
from . import t5


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m course_lib.standins", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="train the T5 stand-in on DialogSum and write it (weights, tokenizer, card)",
                       description="Train the FLAN-T5 stand-in with course_lib's recipe and write it atomically. "
                                   "Needs the real DialogSum (--dialogsum-dir or DIALOGSUM_DIR) for a full build.")
    b.add_argument("--out", default=str(t5.SHIPPED_DIR), help="output folder (default: the shipped one, %(default)s)")
    b.add_argument("--work", default="build/standin-work", help="checkpoints; a build restarted with the same folder resumes")
    b.add_argument("--dialogsum-dir", default=os.environ.get("DIALOGSUM_DIR"),
                   help="DialogSum folder (upstream JSONL or mirror CSV layout); default $DIALOGSUM_DIR")
    b.add_argument("--smoke", action="store_true", help="the tiny recipe (seconds), e.g. to test the build")
    b.add_argument("--steps", type=int, help="override the number of optimizer steps")
    b.add_argument("--precision", choices=["auto", "fp32", "bf16"], help="override the training precision")
    b.add_argument("--threads", type=int, help="torch threads (default: course_lib's choice, see COURSE_THREADS)")
    b.add_argument("--note", default="", help="a sentence about this build for its card (e.g. a schedule changed on resume)")
    return ap


def build(args) -> int:
    config = t5.SMOKE_CONFIG if args.smoke else t5.FULL_CONFIG
    overrides = {k: v for k, v in {"steps": args.steps, "precision": args.precision}.items() if v is not None}
    config = dataclasses.replace(config, **overrides)
    if args.dialogsum_dir:
        os.environ["DIALOGSUM_DIR"] = args.dialogsum_dir
    elif not args.smoke:
        print("A full build needs the real DialogSum: pass --dialogsum-dir or set DIALOGSUM_DIR.", file=sys.stderr)
        return 2
    configure_threads(args.threads)
    rows = list(data.load_dialogsum("train"))
    test = list(data.load_dialogsum("test", test_view="dialogues"))
    source = f"{'DIALOGSUM_DIR' if args.dialogsum_dir else 'embedded sample'} ({len(rows)} train rows)"
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(f"building {t5.standin_name(config)}: {config.steps} steps on {len(rows)} dialogues, "
          f"{torch.get_num_threads()} thread(s), precision {config.precision}; checkpoints in {work}")
    start, done = time.perf_counter(), False
    try:
        card = t5.build(rows, args.out, config, work_dir=work, eval_rows=test, data_source=source, note=args.note)
        done = True
    finally:
        if not done:  # remember this session's time for the card of the build that finishes
            path = work / "sessions.json"
            seconds = json.loads(path.read_text())["seconds"] if path.exists() else []
            path.write_text(json.dumps({"seconds": seconds + [round(time.perf_counter() - start, 1)]}))
    print(card.readme)
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    return build(args)


if __name__ == "__main__":
    sys.exit(main())
