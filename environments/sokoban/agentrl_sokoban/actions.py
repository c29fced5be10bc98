"""Reading an action out of what a model wrote."""
from __future__ import annotations

import re

from agentrl.env import last_tagged

ACTIONS = ("up", "down", "left", "right")

_WORD = re.compile(r"\b(up|down|left|right)\b", re.IGNORECASE)
# A lone letter is only trusted when it is the whole answer (optionally "Action: u" / "move u").
_LETTER = re.compile(r"^(?:action\s*:\s*|move\s+)?([udlr])[.!]?$", re.IGNORECASE)
_LETTERS = {"u": "up", "d": "down", "l": "left", "r": "right"}


def _parse_plain(text: str) -> str | None:
    words = {w.lower() for w in _WORD.findall(text)}
    if len(words) == 1:
        return words.pop()
    if words:
        return None  # several different directions mentioned: ambiguous
    letter = _LETTER.match(text.strip().strip("`*\"'").strip())
    return _LETTERS[letter.group(1).lower()] if letter else None


def parse_action(text: str) -> str | None:
    """Canonical action word ("up", "down", "left", "right") in `text`, or None.

    `<action>...</action>` wins over the rest of the text (the last tag if there
    are several), so a model may reason freely before answering; without a tag
    the text must name exactly one direction (repeats are fine) or be a single
    letter u/d/l/r.
    """
    tagged = last_tagged(text)
    return _parse_plain(text if tagged is None else tagged)
