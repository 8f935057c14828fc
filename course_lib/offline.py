"""The bottom of course_lib: is the hub reachable, what served each load, and the run log.

Imports nothing of course_lib, so every module may use it. ``hub`` (the fallback ladder) and ``data`` record
here what served; ``device.environment_report`` logs the device; the lab runner reads the log back with
``read_run_log``. One writer (``log_event``), one reader.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

RUN_LOG_ENV = "COURSE_SERVED_LOG"  # set by the lab runner: a JSON-lines file per executed lab
HUB_HOST = "huggingface.co"
PROBE_MODEL = "google/flan-t5-base"  # any public model: the probe asks for its metadata, never downloads
HUB_TIMEOUT_S = float(os.environ.get("COURSE_HUB_TIMEOUT", "2.0"))

@dataclass
class Served:
    """What answered a load request."""

    requested: str  # the name the lab asked for, e.g. 'google/flan-t5-base'
    served: str  # what actually loaded: a hub name, a path, or a stand-in's name
    kind: str  # 'hub', 'hf-cache', 'packaged', 'stand-in', 'local-dir' or 'embedded-sample'
    what: str  # 'model', 'tokenizer' or 'dataset'
    seconds: float  # time the load took, fallback included
    note: str = ""  # one line a student can read

    @property
    def is_real(self) -> bool:
        return self.kind in {"hub", "hf-cache", "packaged", "local-dir"}


_SERVED: list[Served] = []
_REACHABLE: dict[str, bool] = {}


def offline_forced() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in {"1", "true", "yes", "on"}


def hub_reachable(timeout: float | None = None) -> bool:
    """True when the hub answers an HTTP request within ``timeout`` seconds.

    The request goes through huggingface_hub's own HTTP session, so it takes the same route as every
    later download: through ``HTTPS_PROXY`` / ``HTTP_PROXY`` when they are set (managed notebooks often
    need one), to ``HF_ENDPOINT`` when that is set. Any HTTP answer counts as reachable. DNS lookups
    have no timeout of their own, so the probe runs in a daemon thread and is abandoned after
    ``timeout``: an unplugged network costs at most that long, once per process.
    """
    if offline_forced():
        return False
    if HUB_HOST in _REACHABLE:
        return _REACHABLE[HUB_HOST]
    timeout = HUB_TIMEOUT_S if timeout is None else timeout
    result = {"ok": False}

    def probe():
        try:
            from huggingface_hub import constants
            from huggingface_hub.utils import get_session

            answer = get_session().head(f"{constants.ENDPOINT}/api/models/{PROBE_MODEL}", timeout=timeout,
                                        follow_redirects=False)
            result["ok"] = answer.status_code < 500  # a proxy's 502/503 means it could not reach the hub
        except Exception:  # no route, refused, timed out, proxy down: all mean "not reachable now"
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    _REACHABLE[HUB_HOST] = result["ok"]
    if not result["ok"]:
        # Make every library below (transformers, datasets, huggingface_hub) skip the network too. The variable
        # alone is not enough once huggingface_hub is imported (it reads it at import): without the constant,
        # transformers' adapter lookup (peft installed) retries the hub for ~25 s on every model load.
        os.environ["HF_HUB_OFFLINE"] = "1"
        try:
            from huggingface_hub import constants

            constants.HF_HUB_OFFLINE = True
        except ImportError:
            pass
    return result["ok"]


def record(served: Served) -> Served:
    """Print the notice for ``served`` and log it for the lab runner."""
    _SERVED.append(served)
    flag = "" if served.is_real else "  [STAND-IN, not the requested model]"
    print(f"[course_lib.hub] {served.what} '{served.requested}' served by {served.kind}: {served.served}{flag}")
    if served.note:
        print(f"[course_lib.hub]   {served.note}")
    log_event(asdict(served))
    return served


def served() -> list[Served]:
    """Everything loaded so far in this process."""
    return list(_SERVED)


def last_served(what: str = "model") -> Served:
    """The most recent load of ``what`` ('model', 'tokenizer' or 'dataset')."""
    for record in reversed(_SERVED):
        if record.what == what:
            return record
    raise LookupError(f"nothing of kind {what!r} has been loaded in this process yet")


def local_cache_env(cache_dir: str | os.PathLike) -> dict[str, str]:
    """Environment variables that make a new process read models only from the Hugging Face cache in
    ``cache_dir`` (the hub treated as unreachable): how the lab runner and the tests use the real-model fixture."""
    return {"HF_HUB_CACHE": str(Path(cache_dir).resolve()), "HF_HUB_OFFLINE": "1"}


# --- the run log -------------------------------------------------------------------


def log_event(event: dict) -> None:
    """Append one JSON line to the run log, when the lab runner asked for one (``COURSE_SERVED_LOG``)."""
    path = os.environ.get(RUN_LOG_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(event) + "\n")


def log_environment(device: str, precision: str) -> None:
    """The device and precision a lab chose (``device.environment_report`` calls this)."""
    log_event({"what": "environment", "device": device, "precision": precision})


def read_run_log(path: str | os.PathLike) -> tuple[str, list[str]]:
    """(device, ['requested -> served (kind)', ...]) from a run log; ('?', []) when there is none."""
    device, loads = "?", []
    path = Path(path)
    if not path.exists():
        return device, loads
    for line in path.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event.get("what") == "environment":
            device = f"{event['device']} ({event['precision']})"
        else:
            entry = f"{event['requested']} -> {event['served']} ({event['kind']})"
            if entry not in loads:
                loads.append(entry)
    return device, loads
