"""Shared test setup: never touch the network; find the real DialogSum in ../shared."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parent.parent
SHARED_DIALOGSUM = Path(os.environ.get("DIALOGSUM_DIR", REPO.parent / "shared" / "data" / "dialogsum"))


@pytest.fixture
def real_dialogsum_dir() -> Path:
    """The real DialogSum (upstream JSONL), which lives outside the repo."""
    if not (SHARED_DIALOGSUM / "dialogsum.train.jsonl").exists():
        pytest.skip(f"real DialogSum not found at {SHARED_DIALOGSUM} (set DIALOGSUM_DIR)")
    return SHARED_DIALOGSUM


@pytest.fixture(scope="session")
def real_model_cache(tmp_path_factory) -> dict[str, str]:
    """A local Hugging Face cache holding small real-architecture models under the labs' hub names; returns the
    environment variables that make a new process load from it (hf-cache rung, hub unreachable)."""
    from course_lib import offline, real_model_fixture

    cache = tmp_path_factory.mktemp("hf-fixture")
    real_model_fixture.write_hf_cache(cache)
    return offline.local_cache_env(cache)
