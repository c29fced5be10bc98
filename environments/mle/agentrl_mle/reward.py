"""Partial credit: milestones reached by the graded run, or the task metric of a valid submission.

    no program ran / nothing reached     -> failure_reward (default 0)
    k milestones, no valid submission     -> k * milestone_reward          (at most 6 * 0.06 = 0.36)
    valid submission                      -> valid_base + (1 - valid_base) * normalised score

so a program that fails at loading data scores below one that fails at writing its
submission, below any valid submission (the paper: +0.1 per matched print, the test score for
a valid submission, -10 for a total failure; here on one [0, 1] scale, each part configurable).
"""
from __future__ import annotations

from dataclasses import dataclass

from .instrument import MILESTONES
from .tasks import Grade


@dataclass
class RewardConfig:
    milestone_reward: float = 0.06
    valid_base: float = 0.5
    failure_reward: float = 0.0

    def validate(self) -> None:
        if self.milestone_reward < 0:
            raise ValueError("reward.milestone_reward must be >= 0")
        if len(MILESTONES) * self.milestone_reward >= self.valid_base:
            raise ValueError(f"reward.valid_base ({self.valid_base}) must exceed every milestone together "
                             f"({len(MILESTONES)} x reward.milestone_reward = {len(MILESTONES) * self.milestone_reward:g})")
        if not 0 < self.valid_base <= 1:
            raise ValueError("reward.valid_base must be in (0, 1]")
        if self.failure_reward > 0:
            raise ValueError("reward.failure_reward must be <= 0 (below any milestone)")


def partial_credit(milestones: list[str], grade: Grade | None, cfg: RewardConfig) -> float:
    if grade is not None and grade.valid:
        return cfg.valid_base + (1.0 - cfg.valid_base) * grade.score
    if not milestones:
        return cfg.failure_reward
    return len(set(milestones) & set(MILESTONES)) * cfg.milestone_reward
