"""Which tasks each training iteration sees."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agentrl.env import EnvConfig, Task


@dataclass
class TaskSampler:
    """Fresh train tasks every iteration (`pool_size=0`, for generated tasks), or draws
    without replacement from a fixed pool of `pool_size` train tasks (datasets like AppWorld).
    Reproducible from (seed, iteration), so a resumed run sees the same tasks."""

    env_config: EnvConfig
    tasks_per_iteration: int
    seed: int = 0
    pool_size: int = 0

    def __post_init__(self) -> None:
        self._pool = self.env_config.tasks("train", self.pool_size, self.seed) if self.pool_size else None

    def sample(self, iteration: int) -> list[Task]:
        if self._pool is None:
            return self.env_config.tasks("train", self.tasks_per_iteration, self.seed * 100_003 + iteration)
        rng = np.random.default_rng([self.seed, iteration])
        n = min(self.tasks_per_iteration, len(self._pool))
        return [self._pool[i] for i in rng.choice(len(self._pool), size=n, replace=False)]
