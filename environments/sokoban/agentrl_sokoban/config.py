"""SokobanConfig: the `--env.*` fields, task lists and expert demonstrations."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from agentrl.env import EnvConfig, Task

from .actions import ACTIONS
from .env import SokobanEnv, blocked_message, solve_cached
from .generator import generate_level
from .levels import parse_level, render_level
from .loaders import load_levels

SPLITS = ("train", "test")
TEST_BUCKETS = 10  # one level in ten (by hash) belongs to the test split


def canonical_text(level_text: str) -> str:
    """The rendering the split rule hashes: full grid, ' ' floor, rows padded to one width."""
    return render_level(parse_level(level_text))


def split_of(level_text: str, canonical: bool = False) -> str:
    """"test" if sha1(canonical text) % 10 == 0, else "train": a property of the level alone,
    so no seed or config can put one level in both splits. Pass canonical=True to skip
    re-rendering text that is already canonical (generator output is)."""
    text = level_text if canonical else canonical_text(level_text)
    digest = int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "big")
    return "test" if digest % TEST_BUCKETS == 0 else "train"


@lru_cache(maxsize=16)
def _file_levels(path: str, fmt: str) -> tuple[tuple[str, str, str], ...]:
    """(id, text, split) for every level of a file, loaded once per process."""
    return tuple((level_id, text, split_of(text)) for level_id, text in load_levels(path, fmt))


@dataclass
class SokobanConfig(EnvConfig):
    """Sokoban levels from the reverse-play generator or from a Boxoban/XSB file."""

    width: int = 6  # interior size; the generator adds a ring of walls
    height: int = 6
    num_boxes: int = 1
    max_inner_walls: int = 3
    min_solution_length: int = 1  # bounds on the optimal number of moves of generated levels
    max_solution_length: int = 8
    max_steps: int | None = None  # None: ceil(max_steps_factor * optimal) + max_steps_offset
    max_steps_factor: float = 2.0
    max_steps_offset: int = 2
    step_penalty: float = 0.0
    blocked_feedback: bool = True  # a move that changes nothing is answered "You cannot move <dir>." + grid
    blocked_move_penalty: float = 0.0  # subtracted when a move changes nothing (walking into a wall or a stuck box)
    box_on_target_reward: float = 0.0
    solve_reward: float = 1.0
    # partial credit for an unsolved episode: progress_reward * (1 - optimal moves left at the end /
    # optimal moves at the start), 0 when deadlocked; costs one solve per episode end
    progress_reward: float = 0.0
    # potential-based shaping (Ng et al. 1999): each step adds value_shaping * (V(s') - V(s)),
    # V = 0.9 ** optimal moves left (1 solved, 0 deadlocked); it sums to V(end) - V(start), so it
    # never changes which policy is best, but it says at once which move wasted or lost the level
    # (a state the solver gives up on counts as V = 0, like a deadlock: keep it to solvable sizes)
    value_shaping: float = 0.0
    end_on_deadlock: bool = False  # end the episode (failed) on the push that makes the level unsolvable
    crop_border: bool = True
    instructions: bool = True
    floor_symbol: str = " "  # how observations draw floor: " ", "_" or "-"
    level_file: str | None = None
    level_file_format: str = "auto"  # auto, boxoban or xsb
    level_file_split: str = "hash"  # hash: split file levels by the hash rule; all: every split gets all

    def __post_init__(self) -> None:
        checks = [
            ("width", self.width >= 3, "must be >= 3"),
            ("height", self.height >= 3, "must be >= 3"),
            ("num_boxes", self.num_boxes >= 1, "must be >= 1"),
            ("num_boxes", self.num_boxes + 2 <= self.width * self.height,
             "must leave at least two free squares (num_boxes + 2 <= width * height)"),
            ("max_inner_walls", self.max_inner_walls >= 0, "must be >= 0"),
            ("min_solution_length", self.min_solution_length >= 1, "must be >= 1"),
            ("max_solution_length", self.max_solution_length >= self.min_solution_length,
             "must be >= min_solution_length"),
            ("max_steps", self.max_steps is None or self.max_steps >= 1, "must be None or >= 1"),
            ("max_steps_factor", self.max_steps_factor > 0, "must be > 0"),
            ("max_steps_offset", self.max_steps_offset >= 0, "must be >= 0"),
            ("progress_reward", self.progress_reward >= 0, "must be >= 0"),
            ("value_shaping", self.value_shaping >= 0, "must be >= 0"),
            ("floor_symbol", self.floor_symbol in (" ", "_", "-"), "must be ' ', '_' or '-'"),
            ("level_file_format", self.level_file_format in ("auto", "boxoban", "xsb"),
             "must be auto, boxoban or xsb"),
            ("level_file_split", self.level_file_split in ("hash", "all"), "must be hash or all"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"{name} {rule} (got {getattr(self, name)!r})")

    def extra_texts(self) -> list[str]:
        return [blocked_message(a) for a in ACTIONS]

    def make(self) -> SokobanEnv:
        return SokobanEnv(self)

    def tasks(self, split: str, n: int, seed: int) -> list[Task]:
        """`n` distinct levels of `split`, reproducible from (split, seed); ids `sokoban/<split>/<seed>/<i>`."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} (got {split!r})")
        if n < 0:
            raise ValueError(f"n must be >= 0 (got {n})")
        rng = np.random.default_rng([seed, SPLITS.index(split)])
        if self.level_file is not None:
            return self._file_tasks(split, n, seed, rng)
        seen: set[str] = set()

        def accept(text: str) -> bool:  # checked before solving: rejects cost no search
            return text not in seen and split_of(text, canonical=True) == split

        tasks = []
        for i in range(n):
            try:
                text, length = generate_level(
                    rng, self.width, self.height, self.num_boxes, self.max_inner_walls,
                    self.min_solution_length, self.max_solution_length, accept=accept)
            except RuntimeError as e:
                raise RuntimeError(f"found only {i} distinct {split} levels of {n}: {e}") from None
            seen.add(text)
            tasks.append(Task(f"sokoban/{split}/{seed}/{i}", {"level": text, "optimal_length": length}))
        return tasks

    def _file_tasks(self, split: str, n: int, seed: int, rng: np.random.Generator) -> list[Task]:
        """The file's levels of `split` in a seeded random order, reshuffled and repeated if n is larger.
        optimal_length is left out: the env solves lazily on reset (memoised)."""
        levels = _file_levels(str(self.level_file), self.level_file_format)
        pool = [lv for lv in levels if self.level_file_split == "all" or lv[2] == split]
        if not pool and n:
            raise ValueError(f"{self.level_file} has no {split} levels under level_file_split={self.level_file_split!r}")
        tasks: list[Task] = []
        while len(tasks) < n:
            for j in rng.permutation(len(pool)).tolist()[: n - len(tasks)]:
                level_id, text, _ = pool[j]
                data = {"level": text, "level_id": level_id}
                tasks.append(Task(f"sokoban/{split}/{seed}/{len(tasks)}", data))
        return tasks

    def expert_actions(self, task: Task) -> list[str] | None:
        """A minimum-move solution of the task's level (None if the solver gives up)."""
        solution = solve_cached(task.data["level"])
        return None if solution is None else list(solution)
