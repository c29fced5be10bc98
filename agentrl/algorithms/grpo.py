"""GRPO: group-normalised advantages (R - mean) / std with PPO's clipped surrogate.

Shao et al., DeepSeekMath (2024). No KL term by default (as most agent-RL work runs
it); one epoch; every episode's loss is its token mean, then the mean over episodes.
"""
from __future__ import annotations

from dataclasses import dataclass

from agentrl.algorithms.base import PolicyGradient, register_algorithm


@register_algorithm("grpo")
@dataclass
class GRPO(PolicyGradient):
    advantage: str = "grpo"
    ratio_clip: str = "ppo"
    clip_eps: float = 0.2
    aggregation: str = "episode_mean"
    min_abs_advantage: float = 0.0
    epochs: int = 1
    minibatch_episodes: int = 0
