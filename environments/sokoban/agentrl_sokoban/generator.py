"""Random solvable levels by reverse play.

A room is carved (border walls plus a few inner walls that keep the floor
connected), boxes start on their targets, and the player then walks backwards:
each reverse step either walks or, with a box right behind, pulls it along.
Reversing those steps is a legal solution, so every level is solvable; the
optimal solver then measures the level and we retry until the minimum number of
moves lies in [min_solution_length, max_solution_length].

All randomness comes from the numpy Generator passed in, so a seed fixes the level.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .solver import solve_grid

_PULL_PROBABILITY = 0.75  # high so boxes actually leave their targets


def _connected(floor: list[bool], cols: int, cells: list[int]) -> bool:
    start = next(c for c in cells if floor[c])
    seen = {start}
    stack = [start]
    while stack:
        c = stack.pop()
        for n in (c - cols, c + cols, c - 1, c + 1):
            if floor[n] and n not in seen:
                seen.add(n)
                stack.append(n)
    return len(seen) == sum(floor[c] for c in cells)


def _room(rng: np.random.Generator, width: int, height: int, num_boxes: int, max_inner_walls: int) -> list[bool]:
    cols = width + 2
    floor = [False] * (cols * (height + 2))
    cells = [r * cols + c for r in range(1, height + 1) for c in range(1, width + 1)]
    for c in cells:
        floor[c] = True
    n_floor = len(cells)
    for _ in range(int(rng.integers(0, max_inner_walls + 1))):
        if n_floor <= num_boxes + 2:  # keep room for the player to pull boxes around
            break
        c = cells[int(rng.integers(len(cells)))]
        if not floor[c]:
            continue
        floor[c] = False
        if _connected(floor, cols, cells):
            n_floor -= 1
        else:
            floor[c] = True
    return floor


def _render(floor: list[bool], cols: int, targets: set[int], boxes: set[int], player: int) -> str:
    rows = []
    for start in range(0, len(floor), cols):
        chars = []
        for c in range(start, start + cols):
            if not floor[c]:
                chars.append("#")
            elif c == player:
                chars.append("+" if c in targets else "@")
            elif c in boxes:
                chars.append("*" if c in targets else "$")
            else:
                chars.append("." if c in targets else " ")
        rows.append("".join(chars))
    return "\n".join(rows)


def _scatter(rng: np.random.Generator, floor: list[bool], cols: int, boxes: set[int], player: int,
             n_steps: int) -> int:
    """Reverse play in place on `boxes`; returns the player's final square.

    A plain random walk rarely moves straight away from a box, so boxes would
    barely leave their targets; instead, whenever a pull is possible we take one
    with probability _PULL_PROBABILITY, else walk in a random free direction.
    """
    deltas = (-cols, cols, -1, 1)
    picks = rng.random((n_steps, 2)).tolist()
    for coin, choice in picks:
        free = [d for d in deltas if floor[player + d] and player + d not in boxes]
        if not free:
            break
        pulls = [d for d in free if player - d in boxes]
        if pulls and coin < _PULL_PROBABILITY:
            d = pulls[int(choice * len(pulls))]
            boxes.remove(player - d)
            boxes.add(player)
        else:
            d = free[int(choice * len(free))]
        player += d
    return player


def generate_level(rng: np.random.Generator, width: int = 6, height: int = 6, num_boxes: int = 1,
                   max_inner_walls: int = 3, min_solution_length: int = 1, max_solution_length: int = 8,
                   *, accept: Callable[[str], bool] | None = None, max_attempts: int = 5000,
                   max_nodes: int = 20_000) -> tuple[str, int]:
    """A random level with `width` x `height` interior (plus a wall ring) and its optimal move count.

    `accept(text)` may veto a candidate before it is solved (cheap filters such as
    the train/test split). Raises RuntimeError after `max_attempts` rejected candidates.
    """
    if min_solution_length < 1 or max_solution_length < min_solution_length:
        raise ValueError("need 1 <= min_solution_length <= max_solution_length")
    cols = width + 2
    for _ in range(max_attempts):
        floor = _room(rng, width, height, num_boxes, max_inner_walls)
        cells = [c for c, f in enumerate(floor) if f]
        if len(cells) < num_boxes + 2:
            continue
        picks = rng.choice(len(cells), size=num_boxes + 1, replace=False).tolist()
        targets = {cells[i] for i in picks[:-1]}
        boxes = set(targets)
        n_steps = int(rng.integers(min_solution_length, 2 * max_solution_length + 2))
        player = _scatter(rng, floor, cols, boxes, cells[picks[-1]], n_steps)
        if boxes == targets:
            continue
        text = _render(floor, cols, targets, boxes, player)
        if accept is not None and not accept(text):
            continue
        solution = solve_grid(cols, floor, sorted(targets), sorted(boxes), player, max_nodes)
        if solution is not None and min_solution_length <= len(solution) <= max_solution_length:
            return text, len(solution)
    raise RuntimeError(
        f"no level with solution length in [{min_solution_length}, {max_solution_length}] after "
        f"{max_attempts} attempts ({width}x{height}, {num_boxes} boxes); widen the length range")
