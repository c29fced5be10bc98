"""LOOP: leave-one-out PPO for long-horizon agents (no critic, one model copy).

Chen et al., "Reinforcement Learning for Long-Horizon Interactive LLM Agents" (AppWorld).
For K rollouts of a task, A_k = R_k - mean_{j != k} R_j; per-token PPO surrogate with
the ratio clipped to [1/(1+eps), 1+eps], eps = 0.1; each episode's loss is its token
mean, then the mean over episodes; no KL; rollouts with |A| < 0.01 dropped; 2 epochs
over shuffled minibatches of 32 episodes. Everything else (lr 5e-5, grad clip,
LoRA r=16/alpha=32, 40 tasks x K=6) lives in the learner and trainer configs.
"""
from __future__ import annotations

from dataclasses import dataclass

from agentrl.algorithms.base import PolicyGradient, register_algorithm


@register_algorithm("loop")
@dataclass
class LOOP(PolicyGradient):
    advantage: str = "loo"
    ratio_clip: str = "loop"
    clip_eps: float = 0.1
    aggregation: str = "episode_mean"
    min_abs_advantage: float = 0.01
    epochs: int = 2
    minibatch_episodes: int = 32
