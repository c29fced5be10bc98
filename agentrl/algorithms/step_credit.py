"""Step-level credit from anchor states (GiGPO: Feng et al., "Group-in-Group Policy
Optimization for LLM Agent Training", 2025).

The K rollouts of a task often pass through the same state (same prompt ids: a Sokoban grid
with `history=0`, the same ALFWorld room). Every visit to such an *anchor* state has a
discounted return-to-go G_t = sum_{t' >= t} gamma^(t'-t) r_t'; comparing the visits says which
action taken *there* led to more reward, which an episode-level advantage cannot. The step
advantage of a turn is G_t minus the mean G of the other visits to its state (leave-one-out,
like LOOP's episode baseline); a state visited once gets 0. With gamma < 1 a shorter route to
the same reward also scores higher, so wasted moves (walking into walls) are penalised even
when every rollout succeeds.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from agentrl.algorithms.advantages import leave_one_out_advantage
from agentrl.episode import Episode


def returns_to_go(rewards: list[float], gamma: float) -> list[float]:
    """G_t = r_t + gamma * G_{t+1}, from the last turn back."""
    out, g = [], 0.0
    for r in reversed(rewards):
        g = r + gamma * g
        out.append(g)
    return out[::-1]


def anchor_step_advantages(episodes: list[Episode], gamma: float) -> list[list[float]]:
    """One advantage per turn of every episode: G_t - mean G of the other visits to the same
    (group, prompt) state; 0 for a state seen once in its group."""
    visits: dict[tuple[str, tuple[int, ...]], list[tuple[int, int, float]]] = defaultdict(list)
    for i, ep in enumerate(episodes):
        for j, g in enumerate(returns_to_go([t.reward for t in ep.turns], gamma)):
            visits[(ep.group_id, tuple(ep.turns[j].prompt_ids))].append((i, j, g))
    out = [[0.0] * ep.num_turns for ep in episodes]
    for members in visits.values():
        advantages = leave_one_out_advantage(np.array([g for _, _, g in members]))
        for (i, j, _), a in zip(members, advantages):
            out[i][j] = float(a)
    return out
