"""Level collections on disk: Boxoban files and XSB collections.

Both loaders return `(id, level_text)` pairs in file order, each level validated
with `parse_level` (errors name the file and the level).
"""
from __future__ import annotations

import re
from pathlib import Path

from .levels import LEVEL_CHARS, LevelError, parse_level

_BOXOBAN_HEADER = re.compile(r"^;\s*(\d+)\s*$")
_KEY_VALUE = re.compile(r"^\w+:")


def _read(path: str | Path) -> list[str]:
    return Path(path).read_text(encoding="utf-8").replace("\r\n", "\n").split("\n")


def _check(path: str | Path, level_id: str, text: str) -> None:
    try:
        parse_level(text)
    except LevelError as e:
        raise LevelError(f"{path}: level {level_id}: {e}") from None


def load_boxoban(path: str | Path) -> list[tuple[str, str]]:
    """Boxoban file: each puzzle is a `; N` line followed by its rows (10x10 in the real data)."""
    levels: list[tuple[str, list[str]]] = []
    for lineno, line in enumerate(_read(path), 1):
        header = _BOXOBAN_HEADER.match(line)
        if header:
            levels.append((header.group(1), []))
        elif line.strip():
            if not levels:
                raise LevelError(f"{path}:{lineno}: level rows before the first '; N' line")
            levels[-1][1].append(line)
    out = []
    for level_id, rows in levels:
        text = "\n".join(rows)
        _check(path, level_id, text)
        out.append((level_id, text))
    return out


def _is_row(line: str) -> bool:
    # Level rows hold only XSB symbols and at least one wall; anything else is a title or note.
    return "#" in line and all(ch in LEVEL_CHARS for ch in line)


def load_xsb(path: str | Path) -> list[tuple[str, str]]:
    """XSB collection: levels separated by blank (or non-level) lines; `;` lines are comments.

    A level's id is the last comment/title line before it (`; Foo` -> `Foo`,
    `Title: Foo` -> `Foo`), else its 1-based position; duplicates get `#<position>`.
    """
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    rows: list[str] = []
    title: str | None = None

    def flush() -> None:
        nonlocal rows, title
        if rows:
            position = len(out) + 1
            level_id = title or str(position)
            if level_id in seen:
                level_id = f"{level_id}#{position}"
            seen.add(level_id)
            text = "\n".join(rows)
            _check(path, level_id, text)
            out.append((level_id, text))
            title = None
        rows = []

    for line in _read(path):
        line = line.rstrip()
        if _is_row(line) and not line.startswith(";"):
            rows.append(line)
            continue
        flush()
        note = line.strip()
        if note.startswith(";"):
            note = note[1:].strip()
        elif note.lower().startswith("title:"):
            note = note[len("title:"):].strip()
        elif _KEY_VALUE.match(note):
            continue  # "Author: ...", "Comment: ...": metadata, not a name
        if note:
            title = note
    flush()
    return out


def detect_format(path: str | Path) -> str:
    """"boxoban" when every comment line is a `; N` header (and there is one), else "xsb"."""
    comments = [line for line in _read(path) if line.startswith(";")]
    if comments and all(_BOXOBAN_HEADER.match(line) for line in comments):
        return "boxoban"
    return "xsb"


def load_levels(path: str | Path, fmt: str = "auto") -> list[tuple[str, str]]:
    """Load a level file as "boxoban", "xsb" or "auto" (detected by `detect_format`)."""
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == "boxoban":
        return load_boxoban(path)
    if fmt == "xsb":
        return load_xsb(path)
    raise ValueError(f"unknown level file format {fmt!r} (expected auto, boxoban or xsb)")
