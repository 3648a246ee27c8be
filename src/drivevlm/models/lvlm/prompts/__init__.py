"""Versioned prompt templates shipped as package data (`<name>_v<N>.txt`).

A template is never edited in place once released: a new wording is a new version, so cached LVLM answers
(keyed by the version) and published runs stay reproducible.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

REQUIRED_PLACEHOLDERS: dict[str, frozenset[str]] = {"dynamic_goal": frozenset({"num_frames", "max_words"})}
_VERSIONED = re.compile(r"^(?P<name>[a-z0-9_]+)_v(?P<version>\d+)$")


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    # e.g. "dynamic_goal_v1": also the cache key component.
    version: str
    text: str

    def render(self, **values: object) -> str:
        missing = self.placeholders() - set(values)
        if missing:
            raise ValueError(f"prompt {self.version}: no value for placeholder(s) {sorted(missing)}")
        return self.text.format(**values)

    def placeholders(self) -> set[str]:
        return {field for _, field, _, _ in string.Formatter().parse(self.text) if field}


def available_prompts() -> list[str]:
    folder = resources.files(__package__)
    return sorted(p.name.removesuffix(".txt") for p in folder.iterdir() if p.name.endswith(".txt"))


def load_prompt(version: str, path: str | Path | None = None) -> PromptTemplate:
    """Load a packaged template by version (e.g. "dynamic_goal_v1"), or a user's file at `path`.

    The template must contain the placeholders its family needs; a template without them is an error here,
    not a silently useless prompt at training time.
    """
    match = _VERSIONED.match(version)
    if not match:
        raise ValueError(f"prompt: version {version!r} must look like <name>_v<N>, e.g. dynamic_goal_v1")
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"prompt {version}: no such file {file}")
        text = file.read_text(encoding="utf-8")
    else:
        resource = resources.files(__package__) / f"{version}.txt"
        if not resource.is_file():
            raise ValueError(
                f"prompt: unknown version {version!r}; available: {', '.join(available_prompts())}"
            )
        text = resource.read_text(encoding="utf-8")
    template = PromptTemplate(version, text.strip())
    try:
        found = template.placeholders()
    except ValueError as error:
        raise ValueError(f"prompt {version}: malformed template ({error})") from None
    required = REQUIRED_PLACEHOLDERS.get(match["name"], frozenset())
    if not required <= found:
        raise ValueError(f"prompt {version}: template lacks placeholder(s) {sorted(required - found)}")
    return template
