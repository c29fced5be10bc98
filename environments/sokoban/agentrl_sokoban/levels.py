"""Sokoban levels: an immutable grid type and its XSB text form.

XSB symbols: `#` wall, ` ` floor (`-` and `_` also read as floor), `$` box,
`.` target, `*` box on target, `@` player, `+` player on target.
Positions are (row, col) tuples; anything outside the grid counts as wall, so a
level whose outer wall ring was cropped away plays the same.
"""
from __future__ import annotations

from dataclasses import dataclass

Pos = tuple[int, int]

#: Canonical action words and their (row, col) deltas, in a fixed order.
DIRECTIONS: dict[str, Pos] = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}

_FLOOR_CHARS = frozenset(" -_")
LEVEL_CHARS = frozenset("#$.*@+") | _FLOOR_CHARS


class LevelError(ValueError):
    """A level text that is malformed or not a playable Sokoban level."""


@dataclass(frozen=True)
class MoveResult:
    level: "Level"
    moved: bool  # False when a wall or an immovable box blocked the move (a legal no-op)
    pushed: tuple[Pos, Pos] | None  # (from, to) of the pushed box, if any


@dataclass(frozen=True)
class Level:
    height: int
    width: int
    walls: frozenset[Pos]
    targets: frozenset[Pos]
    boxes: frozenset[Pos]
    player: Pos

    def is_wall(self, pos: Pos) -> bool:
        r, c = pos
        return not (0 <= r < self.height and 0 <= c < self.width) or pos in self.walls

    @property
    def boxes_on_target(self) -> int:
        return len(self.boxes & self.targets)

    @property
    def solved(self) -> bool:
        return self.boxes == self.targets

    def move(self, direction: str) -> MoveResult:
        """Move the player one square; push a box if one is in the way and the square behind is free."""
        dr, dc = DIRECTIONS[direction]
        r, c = self.player
        nxt = (r + dr, c + dc)
        if self.is_wall(nxt):
            return MoveResult(self, False, None)
        if nxt in self.boxes:
            beyond = (r + 2 * dr, c + 2 * dc)
            if self.is_wall(beyond) or beyond in self.boxes:
                return MoveResult(self, False, None)
            boxes = (self.boxes - {nxt}) | {beyond}
            moved = Level(self.height, self.width, self.walls, self.targets, boxes, nxt)
            return MoveResult(moved, True, (nxt, beyond))
        return MoveResult(Level(self.height, self.width, self.walls, self.targets, self.boxes, nxt), True, None)


def parse_level(text: str) -> Level:
    """Parse XSB text (rows may be ragged; short rows are padded with floor). Raises LevelError."""
    rows = [line.rstrip("\r\n") for line in text.split("\n")]
    while rows and not rows[0].strip():
        rows.pop(0)
    while rows and not rows[-1].strip():
        rows.pop()
    if not rows:
        raise LevelError("empty level")
    walls, targets, boxes, players = set(), set(), set(), []
    for r, row in enumerate(rows):
        for c, ch in enumerate(row):
            if ch not in LEVEL_CHARS:
                raise LevelError(f"unknown symbol {ch!r} at row {r}, column {c}")
            pos = (r, c)
            if ch == "#":
                walls.add(pos)
            if ch in ".*+":
                targets.add(pos)
            if ch in "$*":
                boxes.add(pos)
            if ch in "@+":
                players.append(pos)
    if len(players) != 1:
        raise LevelError(f"a level needs exactly one player ('@' or '+'), found {len(players)}")
    if not boxes:
        raise LevelError("a level needs at least one box ('$' or '*')")
    if len(boxes) != len(targets):
        raise LevelError(f"number of boxes ({len(boxes)}) differs from number of targets ({len(targets)})")
    width = max(len(row) for row in rows)
    return Level(len(rows), width, frozenset(walls), frozenset(targets), frozenset(boxes), players[0])


def render_level(level: Level, floor: str = " ", crop: bool = False) -> str:
    """XSB text of `level`, one row per line (no trailing newline); `crop` applies `crop_border`."""
    lines = []
    for r in range(level.height):
        chars = []
        for c in range(level.width):
            pos = (r, c)
            if pos in level.walls:
                chars.append("#")
            elif pos == level.player:
                chars.append("+" if pos in level.targets else "@")
            elif pos in level.boxes:
                chars.append("*" if pos in level.targets else "$")
            elif pos in level.targets:
                chars.append(".")
            else:
                chars.append(floor)
        lines.append("".join(chars))
    text = "\n".join(lines)
    return crop_border(text) if crop else text


def crop_border(text: str) -> str:
    """Drop edge rows and columns made only of walls, repeatedly.

    Sound because everything outside the grid is wall; it keeps prompts short.
    """
    rows = text.split("\n")
    width = max(len(row) for row in rows)
    rows = [row.ljust(width) for row in rows]
    while len(rows) > 1 and set(rows[0]) == {"#"}:
        rows.pop(0)
    while len(rows) > 1 and set(rows[-1]) == {"#"}:
        rows.pop()
    while len(rows[0]) > 1 and all(row[0] == "#" for row in rows):
        rows = [row[1:] for row in rows]
    while len(rows[0]) > 1 and all(row[-1] == "#" for row in rows):
        rows = [row[:-1] for row in rows]
    return "\n".join(rows)


def play(level: Level, actions: list[str]) -> Level:
    """The level after applying `actions` (canonical words) in order; blocked moves are no-ops."""
    for action in actions:
        level = level.move(action).level
    return level
