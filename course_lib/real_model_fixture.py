"""A local Hugging Face cache holding models under the hub names the labs ask for, for tests and CI.

Students on SageMaker load real models from the hub or the local Hugging Face cache; CI cannot. This module
writes a cache (the layout huggingface_hub reads: ``models--org--name/snapshots/<commit>/`` plus
``refs/main``) in which ``google/flan-t5-base`` and ``bert-base-uncased`` resolve, so that ``course_lib.hub``
serves them from the ``hf-cache`` rung with ``is_real=True`` and every branch written for a real model runs.

What is inside is small and honest about itself: real architectures (``T5ForConditionalGeneration``,
``BertModel``) holding the weights course_lib already has offline (its trained T5 stand-in, the packaged
MiniLM encoder), saved with ``save_pretrained``, each with a README saying it is a fixture. Nothing fakes a
fact of the real checkpoints: vocabulary sizes, ids and parameter counts are the small models' own, and labs
check such facts against the config that served.

    python -m course_lib.real_model_fixture DIR      # write the cache into DIR
    python -m course_lib.labs --smoke --real-fixture  # run the labs through it
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from .atomic import atomic_write_text
from .offline import local_cache_env
from .standins import load_t5_standin, packaged_minilm_dir

FIXTURE_NOTE = ("**course_lib test fixture.** Not the model this hub name refers to: {what}, saved with "
                "`save_pretrained` under the name `{name}` so that tests can exercise the local-cache path. "
                "Written by `python -m course_lib.real_model_fixture`.\n\n")


def _t5_standin(snapshot: Path) -> str:
    model, tokenizer, card = load_t5_standin()
    model.save_pretrained(snapshot)
    tokenizer.save_pretrained(snapshot)
    return f"course_lib's small T5 trained on DialogSum ({card.name})\n\n" + card.readme


def _bert_minilm(snapshot: Path) -> str:
    from transformers import AutoTokenizer, BertModel

    source = packaged_minilm_dir()
    BertModel.from_pretrained(source).save_pretrained(snapshot)
    AutoTokenizer.from_pretrained(source).save_pretrained(snapshot)
    return "the pretrained MiniLM encoder (all-MiniLM-L6-v2, a BERT architecture with the bert-base-uncased vocabulary)"


# hub name -> writer(snapshot folder) returning what the weights are, for the README
MODELS: dict[str, Callable[[Path], str]] = {
    "google/flan-t5-base": _t5_standin,
    "bert-base-uncased": _bert_minilm,
}


def _commit(name: str) -> str:
    return hashlib.sha1(f"course_lib fixture {name}".encode()).hexdigest()


def write_hf_cache(cache_dir: str | os.PathLike, names: list[str] | None = None) -> dict[str, Path]:
    """Write each model of ``names`` (default: all of ``MODELS``) into the Hugging Face cache at ``cache_dir``.

    Returns name -> snapshot folder. A model already written is kept (its README is the marker).
    """
    cache_dir = Path(cache_dir)
    unknown = sorted(set(names or []) - set(MODELS))
    if unknown:
        raise ValueError(f"No fixture for {unknown}; the fixture holds {sorted(MODELS)}.")
    written = {}
    for name in names or list(MODELS):
        repo = cache_dir / ("models--" + name.replace("/", "--"))
        commit = _commit(name)
        snapshot = repo / "snapshots" / commit
        if not (snapshot / "README.md").exists():
            partial = repo / "snapshots" / (commit + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            what = MODELS[name](partial)
            atomic_write_text(partial / "README.md", FIXTURE_NOTE.format(what=what.splitlines()[0], name=name) + what)
            shutil.rmtree(snapshot, ignore_errors=True)
            partial.rename(snapshot)  # the snapshot appears whole or not at all
        atomic_write_text(repo / "refs" / "main", commit)
        written[name] = snapshot
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.real_model_fixture", description=__doc__.splitlines()[0])
    parser.add_argument("cache_dir", help="folder to write the Hugging Face cache into")
    args = parser.parse_args(argv)
    for name, snapshot in write_hf_cache(args.cache_dir).items():
        print(f"{name}: {snapshot}")
    print("use it with: " + " ".join(f"{k}={v}" for k, v in local_cache_env(args.cache_dir).items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
