import csv
import json

import pytest

from course_lib import data

REQUIRED = ["id", "dialogue", "summary", "topic"]


def test_upstream_jsonl_from_shared(real_dialogsum_dir, monkeypatch):
    monkeypatch.setenv("DIALOGSUM_DIR", str(real_dialogsum_dir))
    train = data.load_dialogsum("train")
    assert train.num_rows == 12460 and train.column_names == REQUIRED
    assert data.load_dialogsum("validation").num_rows == 500
    test = data.load_dialogsum("test")  # the hub mirror's view: one row per reference
    assert test.num_rows == 1500
    upstream = [json.loads(line) for line in open(real_dialogsum_dir / "dialogsum.test.jsonl", encoding="utf-8")]
    # row i is upstream test_{i//3} with summary{i%3+1} (the mirror's layout, per the data README)
    for i in (0, 40, 200, 1499):
        src = upstream[i // 3]
        assert test[i]["id"] == src["fname"] == f"test_{i // 3}"
        assert test[i]["summary"] == src[f"summary{i % 3 + 1}"] and test[i]["topic"] == src[f"topic{i % 3 + 1}"]
    dialogues = data.load_dialogsum("test", test_view="dialogues")
    assert dialogues.num_rows == 500 and len(dialogues[13]["references"]) == 3
    assert dialogues[13]["references"][1] == upstream[13]["summary2"]


def test_mirror_csv_written_here(tmp_path, monkeypatch):
    rows = [
        {"id": "test_0_1", "dialogue": "#Person1#: Hi.\n#Person2#: Hello.", "summary": "They greet.", "topic": "greeting"},
        {"id": "test_0_2", "dialogue": "#Person1#: Hi.\n#Person2#: Hello.", "summary": "Two people say hello.", "topic": "greeting"},
        {"id": "test_1_1", "dialogue": "#Person1#: Bye.\n#Person2#: See you.", "summary": "They part.", "topic": "farewell"},
    ]
    with open(tmp_path / "test.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=REQUIRED)
        writer.writeheader()
        writer.writerows(rows)
    monkeypatch.setenv("DIALOGSUM_DIR", str(tmp_path))
    mirror = data.load_dialogsum("test")
    assert mirror.num_rows == 3 and mirror[1]["summary"] == "Two people say hello." and mirror.column_names == REQUIRED
    grouped = data.load_dialogsum("test", test_view="dialogues")
    assert grouped.num_rows == 2 and grouped[0]["references"] == ["They greet.", "Two people say hello."]
    with pytest.raises(FileNotFoundError, match="train.csv"):
        data.load_dialogsum("train")


def test_embedded_sample(monkeypatch):
    monkeypatch.delenv("DIALOGSUM_DIR", raising=False)
    for split in ("train", "validation"):
        ds = data.load_dialogsum(split)
        assert ds.column_names == REQUIRED and ds.num_rows >= 10
        assert all(d.startswith("#Person1#:") and "#Person2#:" in d for d in ds["dialogue"])
    test = data.load_dialogsum("test")
    grouped = data.load_dialogsum("test", test_view="dialogues")
    assert test.num_rows == 3 * grouped.num_rows
    assert all(len(set(r)) == 3 for r in grouped["references"])
    from course_lib import hub

    assert hub.served()[-1].kind == "embedded-sample" and not hub.served()[-1].is_real


def test_malformed_jsonl_names_file_and_line(tmp_path, monkeypatch):
    good = {"fname": "train_0", "dialogue": "#Person1#: a", "summary": "s", "topic": "t"}
    (tmp_path / "dialogsum.train.jsonl").write_text(json.dumps(good) + "\n{not json\n", encoding="utf-8")
    monkeypatch.setenv("DIALOGSUM_DIR", str(tmp_path))
    with pytest.raises(data.DialogSumFormatError, match=r"dialogsum\.train\.jsonl, line 2: not valid JSON"):
        data.load_dialogsum("train")
    (tmp_path / "dialogsum.train.jsonl").write_text(json.dumps({**good, "summary": ""}) + "\n", encoding="utf-8")
    with pytest.raises(data.DialogSumFormatError, match=r"line 1: missing or empty field\(s\) \['summary'\]"):
        data.load_dialogsum("train")


def test_malformed_csv_and_bad_arguments(tmp_path, monkeypatch):
    (tmp_path / "validation.csv").write_text("id,text\n1,hello\n", encoding="utf-8")
    monkeypatch.setenv("DIALOGSUM_DIR", str(tmp_path))
    with pytest.raises(data.DialogSumFormatError, match=r"validation\.csv, line 1: header"):
        data.load_dialogsum("validation")
    with pytest.raises(ValueError, match="split="):
        data.load_dialogsum("training")
    monkeypatch.setenv("DIALOGSUM_DIR", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        data.load_dialogsum("train")
