"""Sokoban solver and generator: optimal lengths against hand counts and a brute-force BFS."""
import time
from pathlib import Path

import numpy as np
import pytest

from agentrl_sokoban import generate_level, load_boxoban, parse_level, play, render_level, solve, solve_bfs
from shared_data import SHARED_DATA

BOXOBAN_TEST = SHARED_DATA / "boxoban" / "unfiltered" / "test" / "000.txt"

# (level, optimal number of moves, why)
HAND_LEVELS = [
    ("#####\n#@$.#\n#####", 1, "one push right"),
    # The player must reach (2,3), left of the box: 3 moves by Manhattan distance, then push.
    ("#######\n#@    #\n#   $.#\n#######", 4, "walk 3 + push 1"),
    # Box at (2,3) must go left onto (2,2), so the player needs (2,4) on its right. That square is
    # 3 columns away but the box blocks row 2, so the way round costs 2 extra moves (5), then push.
    ("#######\n#     #\n#@.$  #\n#     #\n#######", 6, "detour 5 + push 1"),
    # Two boxes, each 2 pushes from its target (4 pushes). Between the boxes the player walks from
    # (1,3) (behind the first box) to (3,1) (behind the second): 2 rows + 2 columns = 4 moves.
    # Starting with the lower box costs 2 (to reach it) + 2 + 4 + 2 = 10 instead.
    ("#######\n#@$ . #\n#     #\n# $ . #\n#######", 8, "push 2, walk 4, push 2"),
]

UNSOLVABLE = [
    "#####\n#$  #\n# @.#\n#####",  # box in a corner, not on a target
    "#######\n#  $  #\n#  @  #\n#   . #\n#######",  # box stuck along the top wall, target below
    # Neither box sits on a dead square, but the pair is frozen against the top wall: pushing the
    # left box left needs the player on the right box's square, and vice versa.
    "#######\n#.$$ .#\n#  @  #\n#######",
]


@pytest.mark.parametrize("text,length,why", HAND_LEVELS)
def test_hand_levels_optimal(text, length, why):
    solution = solve(text)
    assert solution is not None and len(solution) == length, why
    assert play(parse_level(text), solution).solved
    assert len(solve_bfs(text)) == length  # brute force agrees


def test_corridor_exact():
    assert solve("#####\n#@$.#\n#####") == ["right"]


def test_already_solved_is_empty():
    assert solve("#####\n#@* #\n#####") == []


def test_unsolvable_levels_return_none():
    for text in UNSOLVABLE:
        assert solve(text) is None
        assert solve_bfs(text) is None


def test_node_limit_gives_none():
    _, text = load_boxoban(BOXOBAN_TEST)[46]  # needs ~45k push states
    assert solve(text, max_nodes=100) is None


def test_moves_not_pushes_are_minimised():
    # Box (3,2) must reach target (4,3). The 2-push plan (right from (3,1), then down from (2,3))
    # costs 10 moves: the player must first walk (4,3),(3,3),(2,3),(2,2),(2,1),(3,1) = 6 moves,
    # push, walk 2, push. Pushing 4 times is shorter: up, left, up, right(push), up, right,
    # down(push), down(push) = 8 moves. BFS over single moves confirms 8 is the minimum.
    text = "######\n#    #\n#    #\n# $  #\n##@.##\n######"
    solution = solve(text)
    assert len(solution) == 8 == len(solve_bfs(text))
    assert play(parse_level(text), solution).solved


def test_astar_matches_bfs_on_random_levels():
    rng = np.random.default_rng(123)
    configs = [dict(), dict(num_boxes=2, min_solution_length=3, max_solution_length=14),
               dict(width=4, height=5, num_boxes=2, max_inner_walls=4, max_solution_length=20),
               dict(width=5, height=4, num_boxes=3, max_inner_walls=2, min_solution_length=6,
                    max_solution_length=16)]
    for cfg in configs:
        for _ in range(40):
            text, length = generate_level(rng, **cfg)
            assert len(solve_bfs(text)) == length, text


def test_boxoban_first_20():
    # Measured: 1.3-1.6 s for the 20 on one core (slowest ~0.3 s); the bound is slack for busy machines.
    levels = load_boxoban(BOXOBAN_TEST)[:20]
    start = time.perf_counter()
    for level_id, text in levels:
        solution = solve(text)
        assert solution is not None, level_id
        assert play(parse_level(text), solution).solved, level_id
    assert time.perf_counter() - start < 20


def test_generator_reproducible():
    a = [generate_level(np.random.default_rng(7)) for _ in range(3)]
    b = [generate_level(np.random.default_rng(7)) for _ in range(3)]
    assert a == b
    rng = np.random.default_rng(7)
    many = {generate_level(rng)[0] for _ in range(20)}
    assert len(many) > 15


@pytest.mark.parametrize("cfg", [
    dict(),
    dict(num_boxes=2, min_solution_length=5, max_solution_length=10),
    dict(width=8, height=7, num_boxes=3, max_inner_walls=6, min_solution_length=8, max_solution_length=16),
    dict(width=3, height=3, max_inner_walls=0, min_solution_length=2, max_solution_length=3),
])
def test_generated_levels_valid(cfg):
    rng = np.random.default_rng(5)
    width, height = cfg.get("width", 6), cfg.get("height", 6)
    for _ in range(15):
        text, length = generate_level(rng, **cfg)
        level = parse_level(text)
        assert render_level(level) == text  # generator output is canonical
        assert (level.height, level.width) == (height + 2, width + 2)
        assert len(level.boxes) == cfg.get("num_boxes", 1)
        assert cfg.get("min_solution_length", 1) <= length <= cfg.get("max_solution_length", 8)
        assert len(level.walls) - 2 * (width + height + 2) <= cfg.get("max_inner_walls", 3)
        solution = solve(text)
        assert len(solution) == length and play(level, solution).solved


def test_generator_floor_connected():
    rng = np.random.default_rng(11)
    for _ in range(30):
        level = parse_level(generate_level(rng, max_inner_walls=10)[0])
        floor = {(r, c) for r in range(level.height) for c in range(level.width)} - level.walls
        seen, stack = {level.player}, [level.player]
        while stack:
            r, c = stack.pop()
            for n in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if n in floor and n not in seen:
                    seen.add(n)
                    stack.append(n)
        assert seen == floor


def test_generator_impossible_bounds_raise():
    with pytest.raises(RuntimeError, match="solution length"):
        generate_level(np.random.default_rng(0), width=3, height=3, min_solution_length=40,
                       max_solution_length=50, max_attempts=30)


def test_generator_speed():
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(100):
        generate_level(rng)
    # Measured ~1.3 ms per default level; allow slack for busy CI machines.
    assert (time.perf_counter() - start) / 100 < 0.02
