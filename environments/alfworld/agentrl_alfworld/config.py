"""AlfWorldConfig: the `--env.*` fields, task lists (real or generated games) and expert plans."""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agentrl.env import EnvConfig, Task

from .data import ALFWORLD_SPLITS, ExpertPlans, find_games, has_layout
from .engine import lease, release
from .env import NOTHING_HAPPENS, AlfWorldEnv
from .generator import generate_game, generated_games
from .problem import TASK_TYPES

SPLITS = ("train", "test")
# per process, shared by every config: real-data listings (one read of every game file) and plan caches
_CACHE_LOCK = threading.Lock()
_LISTINGS: dict[tuple[str, str, tuple[str, ...]], list[tuple[str, str]]] = {}
_PLANS: dict[tuple[str, str], ExpertPlans] = {}
EXPERT_TYPES = ("handcoded", "planner")


def default_generated_dir() -> str:
    return str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "agentrl" / "alfworld")


def _help_text() -> str:
    """The reply to `help` (the grammar's help.feedback), for extra_texts."""
    import json
    import re

    from .problem import domain_and_grammar

    match = re.search(r'"help\.feedback": \[\s*\{\s*"rhs": ("(?:[^"\\]|\\.)*")', domain_and_grammar()[1])
    return json.loads(match.group(1)).replace("\\n", "\n") if match else ""


@dataclass
class AlfWorldConfig(EnvConfig):
    """ALFWorld on the real TextWorld engine: real games under `data_dir` / $ALFWORLD_DATA, or
    games generated on demand into `generated_dir`."""

    data_dir: str | None = None  # None: $ALFWORLD_DATA if it has json_2.1.1/, else generated games
    generated_dir: str | None = None  # None: ~/.cache/agentrl/alfworld ($XDG_CACHE_HOME respected)
    task_types: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6])
    train_split: str = "train"  # ALFWorld split the "train" tasks come from
    eval_split: str = "valid_unseen"  # ... and the "test" tasks
    max_steps: int = 50
    admissible_commands: bool = True  # end each observation with "Admissible commands: a, b, ..."
    instructions: bool = True  # a system prompt saying how to answer
    expert_type: str = "handcoded"  # handcoded (ALFWorld's hand-coded agent) or planner (fast-downward)
    train_games_per_type: int = 500  # generated games: pool sizes per task type and split
    eval_games_per_type: int = 20
    max_expert_steps: int = 50  # generated games: longest hand-coded expert plan accepted
    generate_workers: int = 0  # engine processes generating games at once; 0: min(4, cpu count)
    engine_process: bool = True  # run each env's engine in a pooled worker process (thread-safe)

    def __post_init__(self) -> None:
        checks = [
            ("task_types", bool(self.task_types) and all(t in TASK_TYPES for t in self.task_types)
             and len(set(self.task_types)) == len(self.task_types), "must be distinct ids in 1..6"),
            ("train_split", self.train_split in ALFWORLD_SPLITS, f"must be one of {ALFWORLD_SPLITS}"),
            ("eval_split", self.eval_split in ALFWORLD_SPLITS, f"must be one of {ALFWORLD_SPLITS}"),
            ("eval_split", self.eval_split != self.train_split, "must differ from train_split (train and test "
             "tasks never overlap)"),
            ("max_steps", self.max_steps >= 1, "must be >= 1"),
            ("expert_type", self.expert_type in EXPERT_TYPES, f"must be one of {EXPERT_TYPES}"),
            ("train_games_per_type", self.train_games_per_type >= 1, "must be >= 1"),
            ("eval_games_per_type", self.eval_games_per_type >= 1, "must be >= 1"),
            ("max_expert_steps", self.max_expert_steps >= 2, "must be >= 2"),
            ("generate_workers", self.generate_workers >= 0, "must be >= 0"),
            ("data_dir", self.data_dir is None or has_layout(self.data_dir),
             "must be a directory containing json_2.1.1/ (ALFWorld's layout)"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"{name} {rule} (got {getattr(self, name)!r})")

    # --- where games come from -------------------------------------------------------------
    def resolved_data_dir(self) -> str | None:
        """The real-data root in use, or None when games are generated."""
        if self.data_dir is not None:
            return self.data_dir
        env_root = os.environ.get("ALFWORLD_DATA")
        return env_root if has_layout(env_root) else None

    def cache_dir(self) -> str:
        return self.generated_dir or default_generated_dir()

    def task_type_names(self) -> list[str]:
        return [TASK_TYPES[t] for t in self.task_types]

    def alfworld_split(self, split: str) -> str:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} (got {split!r})")
        return self.train_split if split == "train" else self.eval_split

    def expert_plans(self) -> ExpertPlans:
        """The plan cache of this (cache dir, expert type), shared by every config and env."""
        key = (self.cache_dir(), self.expert_type)
        with _CACHE_LOCK:
            if key not in _PLANS:
                _PLANS[key] = ExpertPlans(*key)
            return _PLANS[key]

    # --- EnvConfig -------------------------------------------------------------------------
    def make(self) -> AlfWorldEnv:
        return AlfWorldEnv(self)

    def tasks(self, split: str, n: int, seed: int) -> list[Task]:
        """`n` games of `split`, reproducible from (split, seed). Real data: a seeded order of the
        split's solvable games (repeated when n is larger). Generated: a seeded sample of the
        split's pool (`*_games_per_type` games per task type, game i of a type from seed i),
        generated on first use. "test" games come from `eval_split`; for generated games
        valid_unseen uses ALFRED's held-out floor plans, so no room is shared with training."""
        alf_split = self.alfworld_split(split)
        if n < 0:
            raise ValueError(f"n must be >= 0 (got {n})")
        rng = np.random.default_rng([seed, SPLITS.index(split)])
        root = self.resolved_data_dir()
        if root is None:
            games = self._generated(alf_split, n, rng)
        else:
            games = self._real(root, alf_split, n, rng)
        tasks, seen = [], set()
        for gamefile, task_type in games:
            base = "alfworld/" + "/".join(Path(gamefile).parent.parts[-3:])
            task_id, r = base, 1
            while task_id in seen:
                task_id, r = f"{base}#{r}", r + 1
            seen.add(task_id)
            tasks.append(Task(task_id, {"gamefile": gamefile, "task_type": task_type, "split": alf_split}))
        return tasks

    def _real(self, root: str, alf_split: str, n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
        key = (str(Path(root).resolve()), alf_split, tuple(self.task_type_names()))
        with _CACHE_LOCK:  # a listing reads every game file once: keep it for the process
            if key not in _LISTINGS:
                _LISTINGS[key] = find_games(root, alf_split, key[2])
            pool = _LISTINGS[key]
        if n and not pool:
            raise ValueError(f"no solvable games of split {alf_split!r} and task types {self.task_types} under "
                             f"{Path(root) / 'json_2.1.1' / alf_split}")
        out: list[tuple[str, str]] = []
        while len(out) < n:
            out += [pool[j] for j in rng.permutation(len(pool)).tolist()[: n - len(out)]]
        return out

    def _generated(self, alf_split: str, n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
        per_type = self.train_games_per_type if alf_split == self.train_split else self.eval_games_per_type
        names = self.task_type_names()
        pool = [(name, i) for i in range(per_type) for name in names]
        picks: list[tuple[str, int]] = []
        while len(picks) < n:
            picks += [pool[j] for j in rng.permutation(len(pool)).tolist()[: n - len(picks)]]
        paths = self.generate(alf_split, sorted(set(picks)))
        return [(str(paths[p]), p[0]) for p in picks]

    def generate(self, alf_split: str, jobs: list[tuple[str, int]]) -> dict[tuple[str, int], Path]:
        """Game files of (task type, seed) jobs in the generated cache, generating missing ones."""
        root = self.cache_dir()
        existing = generated_games(root, alf_split)
        paths = {job: existing.get(job) for job in jobs}
        missing = [job for job, path in paths.items() if path is None]
        workers = self.generate_workers or min(4, os.cpu_count() or 1)
        if len(missing) <= 1 or workers <= 1:
            for job in missing:
                paths[job] = generate_game(root, job[0], job[1], alf_split, max_expert_steps=self.max_expert_steps)
            return paths

        def one(job: tuple[str, int]) -> Path:
            engine = lease(in_process=not self.engine_process)
            try:
                return generate_game(root, job[0], job[1], alf_split, engine=engine,
                                     max_expert_steps=self.max_expert_steps)
            finally:
                release(engine)

        with ThreadPoolExecutor(max_workers=min(workers, len(missing))) as pool:
            for job, path in zip(missing, pool.map(one, missing), strict=True):
                paths[job] = path
        return paths

    def expert_actions(self, task: Task) -> list[str] | None:
        """The expert's commands for the task's game (None if it does not win it)."""
        plans = self.expert_plans()
        found, plan = plans.cached(task.data["gamefile"])
        if not found:
            engine = lease(in_process=not self.engine_process)
            try:
                plan = plans.get(task.data["gamefile"], engine)
            finally:
                release(engine)
        return None if plan is None else list(plan)

    def extra_texts(self) -> list[str]:
        """Replies expert play never shows: unknown commands, an empty inventory, help."""
        return [NOTHING_HAPPENS, "You are not carrying anything.", _help_text()]

