"""What an agent's turn asks for.

- a fenced ```python block (optionally after `WRITE name.py`): write the file (solution.py by
  default); a bare block is also run, a `WRITE` one is only written;
- `RUN name.py`: run a Python file of the working directory;
- `READ name`: show a file of the working directory (or the last run's output: `READ output`);
- `SUBMIT`: end the episode; the last run is graded.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)(?:```|\Z)", re.S)
_NAME = r"([A-Za-z0-9_][A-Za-z0-9_.\-]{0,63})"
# [ \t], not \s: \s also matches newlines, and `^\s*` tried at every line start made a reply of
# 100k newlines take over a minute to parse
_WRITE = re.compile(rf"^[ \t]*WRITE[ \t]+{_NAME}[ \t]*$", re.M)
_RUN = re.compile(rf"^[ \t]*RUN[ \t]+{_NAME}[ \t]*$", re.M)
_READ = re.compile(rf"^[ \t]*READ[ \t]+{_NAME}[ \t]*$", re.M)
_SUBMIT = re.compile(r"^[ \t]*SUBMIT[ \t]*$", re.M)
DEFAULT_SCRIPT = "solution.py"


@dataclass
class Action:
    kind: str  # write | run | write_run | read | submit | invalid
    name: str = ""
    code: str = ""
    reason: str = ""


def code_block(text: str) -> str | None:
    """The first fenced code block of `text` (an unclosed fence runs to the end), or None."""
    match = _BLOCK.search(text)
    return match.group(1) if match else None


def parse_action(text: str) -> Action:
    code = code_block(text)
    head = text[: text.find("```")] if code is not None else text
    write = _WRITE.search(head)
    if code is not None:
        if write:
            return Action("write", write.group(1), code)
        return Action("write_run", DEFAULT_SCRIPT, code)
    if match := _RUN.search(text):
        return Action("run", match.group(1))
    if match := _READ.search(text):
        return Action("read", match.group(1))
    if _SUBMIT.search(text):
        return Action("submit")
    return Action("invalid", reason="Invalid action. Answer with a ```python code block (it is saved as "
                                    "solution.py and run), WRITE name.py + a code block, RUN name.py, READ name, or SUBMIT.")
