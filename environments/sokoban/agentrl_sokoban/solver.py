"""Move-optimal Sokoban solver.

`solve` runs A* over *push* states: a state is (box set, exact player square right
after the last push), an edge is "walk by a shortest path to a square next to a
box, then push it once", costing walk length + 1 moves. Every solution is such a
sequence of walks and pushes, and between two pushes a shortest walk is never
worse, so the cheapest path in this graph is a minimum-move solution.

Heuristic: minimum-cost assignment of boxes to targets, where a box's cost to a
target is its push distance (pushes needed with no other boxes around). Each
push is one move and changes one box's push distances by at most one, so the
heuristic is admissible and consistent, and A* with a closed set is optimal.
Pruning that never removes a solvable state: boxes on dead squares (no target
reachable by pushing) and 2x2 blocks of walls/boxes that hold a box off-target.

`solve_bfs` is a plain breadth-first search over (player, boxes) with one edge
per move: slow, but obviously optimal; the tests use it to cross-check `solve`.

Internally the grid is flattened with a ring of walls around it, so a floor
square's four neighbours are always valid indices.
"""
from __future__ import annotations

import heapq
import math
from collections import deque
from itertools import permutations

from .levels import Level, parse_level

DEFAULT_MAX_NODES = 200_000
_INF = 1 << 30
_PERMS4 = tuple(permutations(range(4)))


def _flatten(level: Level) -> tuple[int, list[bool], list[int], list[int], int]:
    cols = level.width + 2
    floor = [False] * ((level.height + 2) * cols)
    for r in range(level.height):
        for c in range(level.width):
            if (r, c) not in level.walls:
                floor[(r + 1) * cols + c + 1] = True

    def idx(pos: tuple[int, int]) -> int:
        return (pos[0] + 1) * cols + pos[1] + 1

    return (cols, floor, sorted(map(idx, level.targets)), sorted(map(idx, level.boxes)), idx(level.player))


def _deltas(cols: int) -> list[tuple[int, str]]:
    return [(-cols, "up"), (cols, "down"), (-1, "left"), (1, "right")]


def push_distances(cols: int, floor: list[bool], target: int) -> list[int]:
    """Pushes needed to bring a lone box from each square to `target` (_INF if impossible)."""
    dist = [_INF] * len(floor)
    dist[target] = 0
    queue = deque([target])
    steps = (-cols, cols, -1, 1)
    while queue:
        b = queue.popleft()
        for d in steps:
            a = b - d  # the box came from `a`, pushed by a player standing on `a - d`
            if floor[a] and floor[a - d] and dist[a] == _INF:
                dist[a] = dist[b] + 1
                queue.append(a)
    return dist


class _Assignment:
    """Lower bound on pushes: cheapest one-to-one matching of boxes to targets (cached per box set)."""

    def __init__(self, tables: list[list[int]]):
        self.tables = tables
        self.nearest = [min(col) for col in zip(*tables)]
        self.cache: dict[int, int] = {}

    def __call__(self, mask: int, boxes: list[int]) -> int:
        h = self.cache.get(mask)
        if h is None:
            h = self.cache[mask] = self._compute(boxes)
        return h

    def _compute(self, boxes: list[int]) -> int:
        k = len(boxes)
        if k == 1 or k > 6:  # exact matching grows as k! or 2^k; fall back to nearest targets
            return min(_INF, sum(self.nearest[b] for b in boxes))
        rows = [[t[b] for t in self.tables] for b in boxes]
        if k == 4:  # the Boxoban case, unrolled because it runs once per new box set
            r0, r1, r2, r3 = rows
            return min(_INF, min(r0[a] + r1[b] + r2[c] + r3[d] for a, b, c, d in _PERMS4))
        if k <= 3:
            return min(_INF, min(sum(row[j] for row, j in zip(rows, p)) for p in permutations(range(k))))
        cost = {0: 0}  # DP over the set of targets already taken by the first i boxes
        for row in rows:
            nxt: dict[int, int] = {}
            for taken, c in cost.items():
                for j in range(k):
                    if not taken >> j & 1 and row[j] < _INF:
                        key, value = taken | 1 << j, c + row[j]
                        if value < nxt.get(key, _INF):
                            nxt[key] = value
            cost = nxt
        return cost.get((1 << k) - 1, _INF)


def _bits(mask: int) -> list[int]:
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


def _square_table(cols: int, floor: list[bool]) -> list[tuple[tuple[int, int, int], ...]]:
    """For each floor square, the other three cells of each of the four 2x2 blocks containing it."""
    table: list[tuple[tuple[int, int, int], ...]] = [()] * len(floor)
    for c, f in enumerate(floor):
        if f:
            blocks = []
            for q in (c, c - 1, c - cols, c - cols - 1):
                blocks.append(tuple(x for x in (q, q + 1, q + cols, q + cols + 1) if x != c))
            table[c] = tuple(blocks)
    return table


def _frozen_square(blocks: tuple[tuple[int, int, int], ...], floor: list[bool], mask: int) -> bool:
    """True if one of `blocks` (2x2 blocks around an off-target box, that box left out)
    is all walls/boxes under `mask`: no box in it can ever move again. Callers check
    that the block holds a box off target (the pushed one is)."""
    for a, b, c in blocks:
        if ((not floor[a] or mask >> a & 1) and (not floor[b] or mask >> b & 1)
                and (not floor[c] or mask >> c & 1)):
            return True
    return False


def _walk(cols: int, floor: list[bool], boxes: set[int], start: int, goal: int) -> list[str]:
    """Directions of one shortest walk from `start` to `goal` around walls and boxes."""
    came: dict[int, tuple[int, str]] = {start: (start, "")}
    queue = deque([start])
    while queue and goal not in came:
        c = queue.popleft()
        for d, name in _deltas(cols):
            n = c + d
            if floor[n] and n not in boxes and n not in came:
                came[n] = (c, name)
                queue.append(n)
    path = []
    while goal != start:
        goal, name = came[goal]
        path.append(name)
    return path[::-1]


def solve_grid(cols: int, floor: list[bool], targets: list[int], boxes: list[int], player: int,
               max_nodes: int = DEFAULT_MAX_NODES, stats: dict | None = None) -> list[str] | None:
    """A* on a flattened grid whose border cells are all walls (see module doc). When `stats`
    is given, `stats["budget_exceeded"]` tells a give-up (None) from a proven dead end (None)."""
    target_mask = sum(1 << t for t in targets)
    start_mask = sum(1 << b for b in boxes)
    if start_mask == target_mask:
        return []
    tables = [push_distances(cols, floor, t) for t in targets]
    heuristic = _Assignment(tables)
    live = [f and n < _INF for f, n in zip(floor, heuristic.nearest)]  # floor and not dead
    nbrs = [[c + d for d in (-cols, cols, -1, 1) if floor[c + d]] if floor[c] else [] for c in range(len(floor))]
    steps = (-cols, cols, -1, 1)
    squares = _square_table(cols, floor)

    h0 = heuristic(start_mask, boxes)
    if h0 >= _INF:
        return None
    start = (start_mask, player)
    best_g = {start: 0}
    parent: dict[tuple[int, int], tuple[tuple[int, int], int, int]] = {}
    heap = [(h0, 0, start_mask, player)]
    expanded = 0
    size = len(floor)
    while heap:
        _, neg_g, mask, pos = heapq.heappop(heap)
        g = -neg_g
        key = (mask, pos)
        if g > best_g[key]:
            continue  # stale entry
        if mask == target_mask:
            return _path(cols, floor, boxes, player, parent, key)
        expanded += 1
        if expanded > max_nodes:
            if stats is not None:
                stats["budget_exceeded"] = True
            return None
        box_list = _bits(mask)
        dist = [-1] * size  # walking distance from the player; -2 marks boxes
        for b in box_list:
            dist[b] = -2
        dist[pos] = 0
        frontier = [pos]
        for c in frontier:  # BFS: the list grows while we iterate it
            dc = dist[c] + 1
            for n in nbrs[c]:
                if dist[n] == -1:
                    dist[n] = dc
                    frontier.append(n)
        for i, b in enumerate(box_list):
            for d in steps:
                stand, dest = b - d, b + d
                if dist[stand] < 0 or not live[dest] or dist[dest] == -2:
                    continue
                new_mask = mask ^ (1 << b) ^ (1 << dest)
                g2 = g + dist[stand] + 1
                key2 = (new_mask, b)
                if g2 >= best_g.get(key2, _INF):
                    continue
                if not target_mask >> dest & 1 and _frozen_square(squares[dest], floor, new_mask):
                    continue
                new_boxes = box_list[:i] + [dest] + box_list[i + 1:]
                h2 = heuristic(new_mask, new_boxes)
                if h2 >= _INF:
                    continue
                best_g[key2] = g2
                parent[key2] = (key, stand, d)
                heapq.heappush(heap, (g2 + h2, -g2, new_mask, b))
    return None


def _path(cols: int, floor: list[bool], boxes: list[int], player: int,
          parent: dict, key: tuple[int, int]) -> list[str]:
    pushes = []
    while key in parent:
        key, stand, d = parent[key]
        pushes.append((stand, d))
    names = dict((d, name) for d, name in _deltas(cols))
    box_set, pos, actions = set(boxes), player, []
    for stand, d in reversed(pushes):
        actions += _walk(cols, floor, box_set, pos, stand)
        actions.append(names[d])
        box_set.remove(stand + d)
        box_set.add(stand + 2 * d)
        pos = stand + d
    return actions


def moves_to_solve(level: Level | str, max_nodes: int = DEFAULT_MAX_NODES) -> float | None:
    """Optimal number of moves left: `math.inf` when no solution exists (a deadlock), None when
    the search gave up after `max_nodes` push states (unknown)."""
    if isinstance(level, str):
        level = parse_level(level)
    stats: dict = {}
    solution = solve_grid(*_flatten(level), max_nodes, stats)
    if solution is not None:
        return float(len(solution))
    return None if stats.get("budget_exceeded") else math.inf


def solve(level: Level | str, max_nodes: int = DEFAULT_MAX_NODES) -> list[str] | None:
    """A minimum-move solution (list of up/down/left/right), or None if unsolvable or
    more than `max_nodes` push states would have to be expanded."""
    if isinstance(level, str):
        level = parse_level(level)
    cols, floor, targets, boxes, player = _flatten(level)
    return solve_grid(cols, floor, targets, boxes, player, max_nodes)


def solve_bfs(level: Level | str, max_nodes: int = 2_000_000) -> list[str] | None:
    """Reference solver: breadth-first over single moves. Optimal by construction; small levels only."""
    if isinstance(level, str):
        level = parse_level(level)
    cols, floor, targets, boxes, player = _flatten(level)
    goal = frozenset(targets)
    start = (player, frozenset(boxes))
    came: dict = {start: None}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        pos, box_set = state
        if box_set == goal:
            actions = []
            while came[state] is not None:
                state, name = came[state]
                actions.append(name)
            return actions[::-1]
        if len(came) > max_nodes:
            return None
        for d, name in _deltas(cols):
            n = pos + d
            if not floor[n]:
                continue
            nxt_boxes = box_set
            if n in box_set:
                if not floor[n + d] or n + d in box_set:
                    continue
                nxt_boxes = (box_set - {n}) | {n + d}
            nxt = (n, nxt_boxes)
            if nxt not in came:
                came[nxt] = (state, name)
                queue.append(nxt)
    return None
