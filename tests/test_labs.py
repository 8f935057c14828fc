"""Every lab in labs/ runs offline in smoke mode (a new lab is covered the moment it lands)."""

import json

import pytest

from course_lib import labs

LABS = labs.discover()


@pytest.mark.lab
@pytest.mark.parametrize("path", LABS, ids=[p.stem for p in LABS])
def test_lab_runs_in_smoke_mode(path, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = labs.run_lab(path, tmp_path, smoke=True, timeout=600, html=False)
    assert result.status == "ok", f"{path.name} {result.status}:\n{result.error}"
    assert result.device != "?", "the lab's second cell must call environment_report()"
    print(f"{path.stem}: {result.seconds:.1f} s, served: {result.served}")


# Cells written for a real model, by lab: (a phrase of the cell's source, what its output must say through the
# fixture). The fixture is a small T5 and MiniLM under the real names, so facts of the real checkpoints are
# checked against what served and skipped with a message.
REAL_MODEL_CELLS = {
    "00_setup_and_orientation": [("model_cards.read_card(MODEL_NAME)", "google/flan-t5-base"),
                                 ("next(iter(cards.items()))", "(from hf-cache)")],
    "01_tokenization": [("t5_reachable = ", "the table below uses: google/flan-t5-base [hf-cache]"),
                        ("if len(t5_tokenizer) == 32100", "not FLAN-T5's 32,100"),
                        ("snippet = ", "unknown tokens:"),
                        ("wordpiece = hub.load_tokenizer(ENCODER_NAME)", "from bert-base-uncased [hf-cache]"),
                        ("encoder = hub.load_model(ENCODER_NAME", "mean cosine within a group")],
    "02_self_attention": [("hf_attentions(encoder, tokenizer, SENTENCE)", "served 'bert-base-uncased' (hf-cache)")],
    "04_prompt_engineering_dialogsum": [("IS_REAL = served.is_real", "[hf-cache]")],
    "05_quantization_and_memory": [("encoder.encoder.layer[0].intermediate", "served: bert-base-uncased (hf-cache)")],
    "07_finetuning_and_peft": [("IS_REAL = served.is_real", "model: google/flan-t5-base [hf-cache]")],
}


def _outputs(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        text = out.get("text") or out.get("data", {}).get("text/plain", "")
        parts.append("".join(text) if isinstance(text, list) else text)
    return "".join(parts)


@pytest.mark.lab
@pytest.mark.parametrize("path", LABS, ids=[p.stem for p in LABS])
def test_lab_runs_through_real_model_fixture(path, tmp_path, real_model_cache):
    """The SageMaker path without the hub: every model comes from the local Hugging Face cache (is_real), so the
    real-model branches execute; the test lists which of those cells ran and what they printed."""
    import nbformat

    result = labs.run_lab(path, tmp_path, smoke=True, timeout=600, html=False, env=real_model_cache)
    assert result.status == "ok", f"{path.name} through the hf-cache rung {result.status}:\n{result.error}"
    models = [s for s in result.served if "dialogsum" not in s]
    assert all(s.endswith("(hf-cache)") for s in models), f"a model came from another rung: {models}"
    cells = nbformat.read(result.output, as_version=4).cells
    for phrase, expected in REAL_MODEL_CELLS.get(path.stem, []):
        [cell] = [c for c in cells if c.cell_type == "code" and phrase in c.source]
        assert cell.execution_count is not None, f"the real-model cell '{phrase}' did not run"
        assert expected in _outputs(cell), f"cell '{phrase}' printed:\n{_outputs(cell)[-800:]}"
        print(f"{path.stem}: ran [{cell.execution_count}] {phrase!r} -> {expected!r}")


def test_runner_reports_failures_and_timeouts(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    lab_dir = tmp_path / "labs"
    lab_dir.mkdir()
    for name, code in {"01_ok": "x = 1", "02_fails": "raise ValueError('boom')", "03_hangs": "import time; time.sleep(60)",
                       "04_figure": "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()",
                       "05_exercise": "raise NotImplementedError('unanswered')"}.items():
        tags = ["raises-exception"] if name == "05_exercise" else []
        nb = new_notebook(cells=[new_code_cell("SMOKE = False", metadata={"tags": ["parameters"]}),
                                 new_code_cell(code, metadata={"tags": tags}), new_code_cell("y = 2")])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, lab_dir / f"{name}.ipynb")
    out = tmp_path / "build"
    results = {p.stem: labs.run_lab(p, out, smoke=True, timeout=12, html=True) for p in labs.discover(lab_dir)}
    assert results["01_ok"].status == "ok" and (out / "01_ok.html").exists()
    assert results["02_fails"].status == "failed" and "boom" in results["02_fails"].error
    assert results["03_hangs"].status == "timeout"
    # an exercise cell of the student edition may fail (tagged raises-exception): the run goes on and counts as ok
    assert results["05_exercise"].status == "ok" and "unanswered" in results["05_exercise"].error
    executed = nbformat.read(out / "01_ok.ipynb", as_version=4)
    assert any("SMOKE = True" in c.source for c in executed.cells), "papermill must inject SMOKE"
    cells = nbformat.read(out / "04_figure.ipynb", as_version=4).cells
    assert any("image/png" in o.get("data", {}) for c in cells for o in c.get("outputs", [])), "figures must land in the executed notebook"
    table = labs.summary_table(list(results.values()))
    assert "| 02_fails | failed |" in table and json.dumps([r.status for r in results.values()])
