"""Turn an LVLM's free-form answer into a short risk description (the dynamic language goal).

Servers and small models answer in many shapes: plain text, JSON, markdown fences, bullet lists, refusals,
nothing at all. `parse_goal` accepts all of them and either returns a bounded, single-line description or says
why it could not (`reason`), so the caller can apply its documented fallback and count it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

DEFAULT_MAX_WORDS = 20
# Keys under which structured answers usually carry the description, most specific first.
_JSON_KEYS = ("description", "dynamic_goal", "goal", "risk", "hazard", "answer", "text", "content")
_FENCE = re.compile(r"^```[a-zA-Z0-9_-]*\s*\n?(?P<body>.*?)\n?```\s*$", re.DOTALL)
_LABEL = re.compile(r"^(?:description|dynamic goal|goal|risk|hazard|answer|output)\s*[:\-]\s*", re.IGNORECASE)
_BULLET = re.compile(r"^(?:[-*•]+|\d+[.)])\s*")
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_REFUSALS = (
    "i'm sorry",
    "i am sorry",
    "sorry, i",
    "i cannot",
    "i can't",
    "i can not",
    "i'm unable",
    "i am unable",
    "unable to assist",
    "as an ai",
    "i won't",
)
_QUOTES = "\"'`“”‘’"


@dataclass(frozen=True, slots=True)
class ParsedGoal:
    # The description, or "" when nothing usable came back.
    text: str
    # Why the answer was unusable ("" when ok): empty, not_text, refusal, no_letters, malformed.
    reason: str = ""
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return not self.reason


def _from_json(text: str) -> str | None:
    """The description inside a JSON answer; None when `text` is not JSON-like; '' when there is none.

    Broken JSON (cut off by max_tokens, say) is salvaged when a known key's string value can still be read.
    """
    if not text.startswith(("{", "[")):
        return None
    try:
        return _string_in(json.loads(text))
    except json.JSONDecodeError:
        keys = "|".join(_JSON_KEYS)
        salvaged = re.search(rf'"(?:{keys})"\s*:\s*"([^"]*)', text, re.IGNORECASE)
        return salvaged[1] if salvaged else ""


def _string_in(data: object) -> str:
    if isinstance(data, str):
        return data
    if isinstance(data, dict):
        lowered = {str(k).lower(): v for k, v in data.items()}
        for key in _JSON_KEYS:
            if key in lowered:
                return _string_in(lowered[key])
        strings = [v for v in data.values() if isinstance(v, str) and v.strip()]
        return strings[0] if len(strings) == 1 else ""
    if isinstance(data, list):
        for item in data:
            found = _string_in(item)
            if found:
                return found
    return ""


def _first_sentence(text: str) -> str:
    for raw_line in text.splitlines():
        line = _LABEL.sub("", _BULLET.sub("", raw_line.strip())).strip().strip(_QUOTES).strip()
        if line:
            return line
    return ""


def parse_goal(answer: object, max_words: int = DEFAULT_MAX_WORDS) -> ParsedGoal:
    """Parse `answer` into at most `max_words` words on one line, or a reason why it is unusable."""
    if max_words < 1:
        raise ValueError(f"max_words: must be >= 1, got {max_words}")
    if isinstance(answer, bytes):
        try:
            answer = answer.decode("utf-8")
        except UnicodeDecodeError:
            return ParsedGoal("", "not_text")
    if not isinstance(answer, str):
        return ParsedGoal("", "not_text")
    text = _THINK.sub("", answer).strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced["body"].strip()
    structured = _from_json(text)
    if structured is not None:
        if not structured.strip() and not text.rstrip().endswith(("}", "]")):
            return ParsedGoal("", "malformed")
        text = structured.strip()
    text = _first_sentence(text)
    if not text:
        return ParsedGoal("", "empty")
    lowered = text.lower()
    if any(lowered.startswith(marker) or f" {marker}" in lowered[:60] for marker in _REFUSALS):
        return ParsedGoal("", "refusal")
    if not re.search(r"[^\W\d_]", text):
        return ParsedGoal("", "no_letters")
    words = text.split()
    truncated = len(words) > max_words
    if truncated:
        words = words[:max_words]
    cleaned = " ".join(words).rstrip(",;:")
    return ParsedGoal(cleaned, "", truncated)
