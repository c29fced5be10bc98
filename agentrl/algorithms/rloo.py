"""RLOO: REINFORCE with a leave-one-out baseline (Ahmadian et al., 2024).

The same advantage as LOOP; one gradient step on the whole batch, so the importance
ratio is 1 and the clip never binds: LOOP with 1 epoch and no minibatches.
"""
from __future__ import annotations

from dataclasses import dataclass

from agentrl.algorithms.base import PolicyGradient, register_algorithm


@register_algorithm("rloo")
@dataclass
class RLOO(PolicyGradient):
    advantage: str = "rloo"
    ratio_clip: str = "loop"
    clip_eps: float = 0.1
    aggregation: str = "episode_mean"
    min_abs_advantage: float = 0.0
    epochs: int = 1
    minibatch_episodes: int = 0
