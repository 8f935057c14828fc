import json
import os
import socket
import time

import pytest
import torch

from course_lib import hub, offline, standins


@pytest.fixture(autouse=True)
def fresh_probe(monkeypatch):
    monkeypatch.setattr(offline, "_REACHABLE", {})
    yield


def test_offline_flag_short_circuits(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    assert hub.hub_reachable() is False
    assert time.perf_counter() - start < 0.05


def test_a_hanging_network_costs_at_most_the_timeout(monkeypatch):
    """Simulate a black-holed connection (no packets leave): the probe gives up on time."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def hang(*args, **kwargs):
        time.sleep(3)  # far past the timeout, then fail as a dead network would
        raise OSError("simulated black hole")

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.perf_counter()
    assert hub.hub_reachable(timeout=1.0) is False
    elapsed = time.perf_counter() - start
    assert elapsed < 1.5, f"fallback took {elapsed:.2f} s"
    assert offline.os.environ["HF_HUB_OFFLINE"] == "1"  # libraries below skip the network from now on


def test_this_machine_falls_back_fast_without_network(monkeypatch):
    """The real network here has no route to the hub: deciding so must take seconds, not minutes."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    start = time.perf_counter()
    reachable = hub.hub_reachable(timeout=2.0)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.5, f"probe took {elapsed:.2f} s"
    if reachable:
        pytest.skip("the hub is reachable from here; nothing to fall back from")


def test_bert_names_serve_the_packaged_pretrained_minilm(tmp_path, monkeypatch):
    log = tmp_path / "served.jsonl"
    monkeypatch.setenv("COURSE_SERVED_LOG", str(log))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tok = hub.load_model_and_tokenizer("bert-base-uncased", task="encoder")
    record = hub.last_served("model")
    assert record.kind == "packaged" and record.is_real and "MiniLM" in record.served
    assert json.loads(log.read_text().splitlines()[0])["kind"] == "packaged"
    # independent reference: sentence-transformers loads the same folder and mean-pools the same outputs
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(standins.packaged_minilm_dir()), device="cpu")
    sentence = "The teacher taught the student with the book."
    expected = st.encode([sentence], convert_to_tensor=True, normalize_embeddings=False)[0]
    enc = tok(sentence, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state[0]
    mean = hidden.mean(0)
    got = torch.nn.functional.normalize(mean, dim=0)  # all-MiniLM-L6-v2 normalises after pooling
    assert torch.allclose(got, expected, atol=1e-5)


def test_unknown_model_offline_says_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="no stand-in"):
        hub.load_model("someone/unknown-model-xyz", task="causal")


def test_wrong_task_for_a_stand_in_is_explained(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="no 'masked' head"):
        hub.load_model("bert-base-uncased", task="masked")
    with pytest.raises(ValueError, match="task="):
        hub.load_model("bert-base-uncased", task="vision")


def test_non_dialogsum_dataset_offline_fails_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="only for DialogSum"):
        hub.load_dataset("squad")


def test_a_fallback_pair_is_built_once(monkeypatch):
    """load_model_and_tokenizer must not build a stand-in twice (once for the model, once for its tokenizer)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    calls = []

    def builder(name, task, want_model=True):
        calls.append(want_model)
        return torch.nn.Linear(2, 2), "the-tokenizer", "tiny test stand-in", "stand-in", "built for a test"

    monkeypatch.setattr(hub, "_FALLBACKS", [("test-org/*", builder)])
    model, tok = hub.load_model_and_tokenizer("test-org/tiny", task="causal")
    assert calls == [True] and tok == "the-tokenizer" and isinstance(model, torch.nn.Linear)
    assert hub.last_served("model").kind == "stand-in" and not hub.last_served("model").is_real


def _proxy_probe(tmp_path, handler_status):
    """Run hub_reachable in a fresh process whose HTTP_PROXY points at a local proxy; return (result, requests seen)."""
    import http.server
    import subprocess
    import sys
    import threading

    seen = []

    class Proxy(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):  # a forward proxy receives the absolute URL of the hub
            seen.append(self.path)
            if handler_status is None:
                self.close_connection = True
                return
            self.send_response(handler_status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if k not in {"HF_HUB_OFFLINE", "NO_PROXY", "no_proxy"}}
    env.update(HF_ENDPOINT="http://hub.course-test.invalid", HTTP_PROXY=f"http://127.0.0.1:{server.server_port}",
               HTTPS_PROXY=f"http://127.0.0.1:{server.server_port}", HF_HOME=str(tmp_path))
    code = "from course_lib import hub; import time; t = time.perf_counter(); print(hub.hub_reachable(timeout=3), round(time.perf_counter() - t, 2))"
    try:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
    assert out.returncode == 0, out.stderr[-2000:]
    ok, seconds = out.stdout.split()[-2:]
    return ok == "True", float(seconds), seen


def test_the_hub_check_goes_through_the_proxy(tmp_path):
    ok, seconds, seen = _proxy_probe(tmp_path, 200)
    assert seen and seen[0].startswith("http://hub.course-test.invalid/api/models/"), seen
    assert ok and seconds < 3


def test_a_proxy_that_cannot_reach_the_hub_means_offline(tmp_path):
    ok, seconds, seen = _proxy_probe(tmp_path, 502)
    assert seen and not ok and seconds < 3.5


def test_model_card_of_a_cached_model_without_the_hub(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from course_lib import model_cards

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    snapshot = tmp_path / "models--google--flan-t5-base" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (tmp_path / "models--google--flan-t5-base" / "refs").mkdir()
    (tmp_path / "models--google--flan-t5-base" / "refs" / "main").write_text("abc123")
    (snapshot / "config.json").write_text("{}")
    # weights cached but no README: the lab still runs and says the card needs the hub
    text, source = model_cards.read_card("google/flan-t5-base")
    assert source == "unavailable" and "unreachable" in text and "huggingface.co/google/flan-t5-base" in text
    (snapshot / "README.md").write_text("# FLAN-T5 base\n\n## Model Details\n\ntext\n\n## Uses\n\nx\n")
    text, source = model_cards.read_card("google/flan-t5-base")
    assert source == "hf-cache" and text.startswith("# FLAN-T5 base")
    assert model_cards.card_sections(text)["uses"] == ["Uses"]


def test_real_model_fixture_is_served_from_the_hf_cache_rung(real_model_cache):
    """In a fresh process with the fixture's environment, both lab names load from the hf-cache rung as real
    models, and the cached card says it is a fixture."""
    import subprocess
    import sys

    code = (
        "from course_lib import hub, model_cards\n"
        "m, t = hub.load_model_and_tokenizer('google/flan-t5-base')\n"
        "s = hub.last_served()\n"
        "assert (s.kind, s.is_real, m.config.model_type) == ('hf-cache', True, 't5'), s\n"
        "e = hub.load_model('bert-base-uncased', task='encoder')\n"
        "assert hub.last_served().kind == 'hf-cache' and e.config.model_type == 'bert'\n"
        "text, source = model_cards.read_card('google/flan-t5-base')\n"
        "assert source == 'hf-cache' and 'course_lib test fixture' in text, source\n"
        "print('ok')\n")
    env = {**os.environ, **real_model_cache}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def test_real_model_fixture_refuses_unknown_names(tmp_path):
    from course_lib import real_model_fixture

    with pytest.raises(ValueError, match="No fixture for"):
        real_model_fixture.write_hf_cache(tmp_path, ["gpt2"])


def test_an_unreachable_hub_costs_no_retries_on_later_loads():
    """Once the probe finds the hub unreachable, later loads must not touch the network: transformers' adapter
    lookup (peft installed) ignores local_files_only and retried the hub with backoff for ~25 s per load."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", COURSE_HUB_TIMEOUT="2")  # nothing listens on port 9
    code = ("import time\nfrom course_lib import hub\nstart = time.perf_counter()\n"
            "hub.load_model_and_tokenizer('google/flan-t5-base')\nprint(f'seconds={time.perf_counter() - start:.1f}')\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    seconds = float(out.stdout.rsplit("seconds=", 1)[1])
    assert "Retrying" not in out.stderr and seconds < 12, f"{seconds} s; stderr: {out.stderr[-1500:]}"
