"""Advantage estimators: one reward per episode in, one advantage per episode out.

All estimators work on one group (the K rollouts of one task) at a time.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

AdvantageFn = Callable[[np.ndarray], np.ndarray]
ADVANTAGE_ESTIMATORS: dict[str, AdvantageFn] = {}


def register_advantage(*names: str) -> Callable[[AdvantageFn], AdvantageFn]:
    def add(fn: AdvantageFn) -> AdvantageFn:
        for name in names:
            ADVANTAGE_ESTIMATORS[name] = fn
        return fn
    return add


@register_advantage("loo", "rloo")
def leave_one_out_advantage(rewards: np.ndarray) -> np.ndarray:
    """A_k = R_k - mean_{j != k} R_j  (= K/(K-1) * (R_k - mean R)); no std normalisation.

    LOOP's estimator; RLOO's baseline is the same one (the algorithms differ in the loss).
    A group of one has no baseline: advantage 0.
    """
    r = np.asarray(rewards, dtype=np.float64)
    k = len(r)
    if k < 2:
        return np.zeros_like(r)
    return r - (r.sum() - r) / (k - 1)


@register_advantage("grpo")
def group_normalized_advantage(rewards: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """GRPO: (R_k - mean R) / (std R + eps), std with Bessel's correction as in DeepSeekMath/TRL."""
    r = np.asarray(rewards, dtype=np.float64)
    if len(r) < 2:
        return np.zeros_like(r)
    return (r - r.mean()) / (r.std(ddof=1) + eps)


@register_advantage("group_mean")
def group_mean_advantage(rewards: np.ndarray) -> np.ndarray:
    """R_k - mean R (Dr. GRPO: GRPO without the std division)."""
    r = np.asarray(rewards, dtype=np.float64)
    return r - r.mean()


def advantage_estimator(name: str) -> AdvantageFn:
    if name not in ADVANTAGE_ESTIMATORS:
        raise ValueError(f"unknown advantage estimator {name!r} (known: {', '.join(sorted(ADVANTAGE_ESTIMATORS))})")
    return ADVANTAGE_ESTIMATORS[name]
