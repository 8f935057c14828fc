"""Model cards: read one (hub, a packaged model, or a course stand-in) and list its sections."""

from __future__ import annotations

import re
from pathlib import Path

from . import hub

# The sections a good model card has (Mitchell et al. 2019, "Model Cards for Model Reporting"),
# each with words that mark a heading as belonging to it.
CARD_SECTIONS = {
    "model details": ("model details", "model description", "model summary", "overview"),
    "uses": ("uses", "intended use", "usage", "how to use", "direct use"),
    "bias, risks and limitations": ("bias", "risk", "limitation", "ethical"),
    "training details": ("training", "fine-tuning", "fine tuning", "pre-training", "pretraining"),
    "evaluation": ("evaluation", "results", "benchmark", "performance"),
}


NO_CARD = ("(No model card could be read: the hub is unreachable and the local Hugging Face cache holds the "
           "model's weights but not its README.md. Read the card online at https://huggingface.co/{name}.)")


def read_card(name_or_path: str | Path) -> tuple[str, str]:
    """The card's markdown and where it came from: a local README path, 'hub', 'hf-cache', or 'unavailable'.

    Never raises for a hub name: with the hub unreachable it returns the card from the local Hugging Face
    cache when one was downloaded with the model, and otherwise a short text saying the card needs the hub.
    """
    path = Path(name_or_path)
    if path.is_dir():
        path = path / "README.md"
    if path.is_file():
        return path.read_text(encoding="utf-8"), str(path)
    name = str(name_or_path)
    if hub.hub_reachable():
        from huggingface_hub import ModelCard

        return ModelCard.load(name).content, "hub"
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "README.md")
    if isinstance(cached, str) and Path(cached).is_file():
        return Path(cached).read_text(encoding="utf-8"), "hf-cache"
    return NO_CARD.format(name=name), "unavailable"


def card_headings(markdown: str) -> list[str]:
    """Markdown headings of a card, in order, without the leading #'s (code blocks skipped)."""
    markdown = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    return [m.group(2).strip() for m in re.finditer(r"^(#{1,6})\s+(.+?)\s*#*\s*$", markdown, flags=re.MULTILINE)]


def card_sections(markdown: str) -> dict[str, list[str]]:
    """For each standard section, the card's headings that cover it (empty list: missing)."""
    headings = card_headings(markdown)
    return {section: [h for h in headings if any(word in h.lower() for word in words)]
            for section, words in CARD_SECTIONS.items()}
