"""Finding games in ALFWorld's layout, and the experts' plans (computed once per game).

The layout is ALFWorld's: `<root>/json_2.1.1/<split>/<task dir>/<trial dir>/{traj_data.json,
game.tw-pddl}`. `find_games` keeps what ALFWorld's own loader (`AlfredTWEnv`) keeps: trials
with both files, of the wanted task types, not under a 'movable' or 'Sliced' task, whose game
file says `"solvable": true`. Generated games live in that layout too.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from .generator import expert_plan_of

DATA_SUBDIR = "json_2.1.1"
ALFWORLD_SPLITS = ("train", "valid_seen", "valid_unseen")


def has_layout(root: str | Path | None) -> bool:
    return root is not None and (Path(root) / DATA_SUBDIR).is_dir()


def _split_games(split_dir: str) -> list[tuple[str, str]]:
    """(game file, task type) of every solvable game under `split_dir`, sorted."""
    found = []
    for dirpath, _dirs, names in os.walk(split_dir):
        if "traj_data.json" not in names or "game.tw-pddl" not in names:
            continue
        if "movable" in dirpath or "Sliced" in dirpath:
            continue
        try:
            task_type = json.loads(Path(dirpath, "traj_data.json").read_text())["task_type"]
            solvable = json.loads(Path(dirpath, "game.tw-pddl").read_text()).get("solvable", False)
        except (OSError, ValueError, KeyError):
            continue
        if solvable is True:
            found.append((str(Path(dirpath, "game.tw-pddl")), task_type))
    return sorted(found)


def find_games(root: str | Path, split: str, task_types: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    """(game file, task type) of the solvable games of `split` under `root` whose task type is
    one of `task_types` (names), sorted."""
    split_dir = Path(root) / DATA_SUBDIR / split
    if not split_dir.is_dir():
        return []
    wanted = set(task_types)
    games = _split_games(str(split_dir))
    return [(game, task_type) for game, task_type in games if task_type in wanted]


def game_key(gamefile: str | Path) -> str:
    """Content key of a game: its problem and grammar (path and solvable flag do not matter)."""
    data = json.loads(Path(gamefile).read_text())
    return hashlib.sha1(f"{data['pddl_problem']}\0{data['grammar']}".encode()).hexdigest()


class ExpertPlans:
    """Expert plans by game, computed at most once: in memory, then a generated game's own
    `walkthrough` (the hand-coded expert's plan, written by the generator), then a JSON file
    under `cache_dir`, else an engine run (stored in the cache). A plan is None when the
    expert does not win the game."""

    def __init__(self, cache_dir: str | Path, expert_type: str = "handcoded", max_steps: int = 150):
        self.cache_dir = Path(cache_dir) / "expert_plans" / expert_type
        self.expert_type = expert_type
        self.max_steps = max_steps
        self._memory: dict[str, tuple[str, ...] | None] = {}
        self._lock = threading.Lock()

    def cached(self, gamefile: str) -> tuple[bool, tuple[str, ...] | None]:
        """(found, plan) without running anything."""
        with self._lock:
            if gamefile in self._memory:
                return True, self._memory[gamefile]
        plan = expert_plan_of(gamefile) if self.expert_type == "handcoded" else None
        if plan is not None:
            return True, self._remember(gamefile, tuple(plan))
        path = self.cache_dir / f"{game_key(gamefile)}.json"
        if path.exists():
            stored = json.loads(path.read_text())
            return True, self._remember(gamefile, tuple(stored["plan"]) if stored["won"] else None)
        return False, None

    def get(self, gamefile: str, engine) -> tuple[str, ...] | None:
        """The plan, running the expert on `engine` (an engine.* client) if no cache has it."""
        found, plan = self.cached(gamefile)
        if found:
            return plan
        result = engine.call("expert", gamefile=gamefile, expert_type=self.expert_type, max_steps=self.max_steps)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        path = self.cache_dir / f"{game_key(gamefile)}.json"
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({"gamefile": gamefile, **result}))
        os.replace(tmp, path)
        return self._remember(gamefile, tuple(result["plan"]) if result["won"] else None)

    def _remember(self, gamefile: str, plan: tuple[str, ...] | None) -> tuple[str, ...] | None:
        with self._lock:
            self._memory[gamefile] = plan
        return plan
