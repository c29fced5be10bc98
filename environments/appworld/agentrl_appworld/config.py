"""AppWorldConfig: the `--env.*` fields, where the world and its servers are, and its task lists."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agentrl.env import EnvConfig, Task

from .install import default_home, venv_python, world_root
from .metrics import tgc_sgc
from .prompt import SOLUTION_CALL, instructions
from .servers import ServerPool, shared_pool

SPLITS = ("train", "test")
REWARDS = ("pass_fraction", "success")


@dataclass
class AppWorldConfig(EnvConfig):
    """AppWorld through env servers: the real dataset under `appworld_root` / $APPWORLD_ROOT, or
    the world built offline by `python -m agentrl_appworld.install`."""

    appworld_root: str | None = None  # None: $APPWORLD_ROOT if it holds data/tasks, else the built world
    home: str | None = None  # AppWorld's venv + built world (None: $AGENTRL_APPWORLD_HOME or <venv>/appworld)
    python: str | None = None  # the AppWorld venv's python (None: <home>/venv/bin/python)
    server_urls: list[str] = field(default_factory=list)  # running servers to use instead of starting them
    num_servers: int = 4  # local servers started: one per concurrent episode
    train_split: str = "train"  # AppWorld dataset names (data/datasets/<name>.txt)
    eval_split: str = "dev"
    max_interactions: int = 40  # code executions per episode
    max_observation_chars: int = 4000  # longer outputs keep their head and tail
    execution_timeout: int = 60  # seconds one code execution may run (AppWorld's own timeout)
    reward: str = "pass_fraction"  # training reward: fraction of tests passed, or success (0/1)
    instructions: bool = True  # system prompt with AppWorld's conventions (apis.api_docs, complete_task)
    server_memory_mb: int = 4096  # address-space limit of each local server
    server_start_timeout: float = 180.0
    keep_outputs: bool = False  # keep AppWorld's per-episode outputs (DB changes, logs) after the run

    def __post_init__(self) -> None:
        checks = [
            ("num_servers", self.num_servers >= 1, "must be >= 1"),
            ("max_interactions", self.max_interactions >= 1, "must be >= 1"),
            ("execution_timeout", self.execution_timeout >= 1, "must be >= 1"),
            ("reward", self.reward in REWARDS, f"must be one of {REWARDS}"),
            ("server_memory_mb", self.server_memory_mb >= 512, "must be >= 512"),
            ("eval_split", self.eval_split != self.train_split, "must differ from train_split"),
            ("server_urls", all(u.startswith(("http://", "https://")) for u in self.server_urls),
             "must be http(s) URLs"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"{name} {rule} (got {getattr(self, name)!r})")

    # --- where things are ----------------------------------------------------------------
    def resolved_home(self) -> Path:
        return Path(self.home) if self.home else default_home()

    def resolved_root(self) -> Path:
        """APPWORLD_ROOT in use: the field, then $APPWORLD_ROOT (with data/tasks), then the built world."""
        if self.appworld_root:
            root = Path(self.appworld_root)
        else:
            env_root = os.environ.get("APPWORLD_ROOT")
            root = Path(env_root) if env_root and (Path(env_root) / "data" / "tasks").is_dir() \
                else world_root(self.resolved_home())
        if not (root / "data" / "tasks").is_dir():
            raise FileNotFoundError(f"appworld_root: no AppWorld data at {root / 'data' / 'tasks'}; build the offline "
                                    "world with `python -m agentrl_appworld.install` or point APPWORLD_ROOT at the "
                                    "real dataset")
        return root

    def resolved_python(self) -> str:
        python = Path(self.python) if self.python else venv_python(self.resolved_home())
        if not self.server_urls and not python.exists():
            raise FileNotFoundError(f"python: AppWorld's venv python {python} is missing; run "
                                    "`python -m agentrl_appworld.install`")
        return str(python)

    def pool(self) -> ServerPool:
        """The process-wide server pool of this config (started on first use)."""
        if self.server_urls:
            return shared_pool(urls=list(self.server_urls))
        return shared_pool(python=self.resolved_python(), world_root=str(self.resolved_root()), size=self.num_servers,
                           memory_mb=self.server_memory_mb, start_timeout=self.server_start_timeout,
                           keep_outputs=self.keep_outputs)

    def dataset(self, split: str) -> list[str]:
        """Task ids of an AppWorld dataset (train, dev, test_normal, test_challenge)."""
        path = self.resolved_root() / "data" / "datasets" / f"{split}.txt"
        if not path.exists():
            raise FileNotFoundError(f"no AppWorld dataset {split!r} at {path}")
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]

    # --- EnvConfig -----------------------------------------------------------------------
    def make(self):
        from .env import AppWorldEnv

        return AppWorldEnv(self)

    def tasks(self, split: str, n: int, seed: int) -> list[Task]:
        """`n` tasks of `split` ("train" -> `train_split`, "test" -> `eval_split`) in a seeded order,
        repeated when n exceeds the dataset (repeats get ids `<task>#<r>`)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} (got {split!r})")
        name = self.train_split if split == "train" else self.eval_split
        ids = self.dataset(name)
        if n and not ids:
            raise ValueError(f"AppWorld dataset {name!r} is empty")
        rng = np.random.default_rng([seed, SPLITS.index(split)])
        picks: list[str] = []
        while len(picks) < n:
            picks += [ids[j] for j in rng.permutation(len(ids)).tolist()[: n - len(picks)]]
        tasks, seen = [], {}
        for task_id in picks:
            seen[task_id] = seen.get(task_id, 0) + 1
            label = task_id if seen[task_id] == 1 else f"{task_id}#{seen[task_id] - 1}"
            tasks.append(Task(label, {"task_id": task_id, "dataset": name}))
        return tasks

    def expert_actions(self, task: Task) -> list[str] | None:
        """The task's ground-truth solution as one code block (None where the dataset has none)."""
        path = self.resolved_root() / "data" / "tasks" / task.data["task_id"] / "ground_truth" / "solution.py"
        if not path.exists():
            return None
        return [f"```python\n{path.read_text().strip()}\n{SOLUTION_CALL.strip()}\n```"]

    def extra_texts(self) -> list[str]:
        return [instructions(self.max_interactions), "Execution successful.", "Execution failed. Traceback:",
                "No code block found: your reply was run as code. Write code in a ```python block."]

    def concurrency_limit(self) -> int:
        """One episode per server: an episode holds its server from reset to close."""
        return len(self.server_urls) or self.num_servers

    def metrics(self, episodes: list) -> dict[str, float]:
        """TGC and SGC (percent) over the episodes' tasks (a task counts as solved if every episode of it is)."""
        success: dict[str, bool] = {}
        for ep in episodes:
            task_id = ep.task_id.split("#")[0]
            success[task_id] = success.get(task_id, True) and bool(ep.success)
        tgc, sgc = tgc_sgc(success)
        return {"tgc": tgc, "sgc": sgc}
