"""Dyna-GRPO (Dyna-Mind, stage 2): GRPO that also improves the policy's simulations online.

Iterations alternate `sim_iterations` simulation-improvement steps and `policy_iterations`
policy-improvement steps. A policy step is plain GRPO. A simulation step rolls out
`sim_fraction` of each task's K episodes with SimRollout (agentrl/sim_rollout.py: the
policy's simulated moves are executed in the real env and it acts again, `a_refine`, knowing
their real outcomes) and the rest as usual, then trains on
  - tau u tau' as one GRPO group: standard episodes, and SimRollout episodes as (s_t, a_refine);
  - tau'_refine: each SimRollout turn as (s_refine, a_refine), with A_refine = 1 if that episode
    succeeded and its reward beats both the standard and the SimRollout group means, else 0
    (so only refinements that paid off are imitated), weighted by `refine_weight`.
Logged: `sim/accuracy`, the share of simulated moves whose predicted state was the real one.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from agentrl.algorithms.base import Batch, Sample, register_algorithm
from agentrl.algorithms.grpo import GRPO
from agentrl.episode import Episode, Turn
from agentrl.rollout import collect_sync
from agentrl.sim_rollout import REFINE_LOGPROBS, REFINE_PROMPT_IDS, SimRefiner


def is_sim_rollout(episode: Episode) -> bool:
    return any("sim_total" in t.info for t in episode.turns)


def refine_advantages(episodes: list[Episode]) -> dict[str, float]:
    """A_refine per SimRollout episode id: 1 if it succeeded and its reward > max(mean R of the
    group's standard episodes, mean R of its SimRollout episodes), else 0."""
    groups: dict[str, list[Episode]] = {}
    for ep in episodes:
        groups.setdefault(ep.group_id, []).append(ep)
    out = {}
    for members in groups.values():
        sim = [e for e in members if is_sim_rollout(e)]
        standard = [e for e in members if not is_sim_rollout(e)]
        means = [float(np.mean([e.reward for e in part])) for part in (sim, standard) if part]
        for ep in sim:
            out[ep.episode_id] = 1.0 if ep.success and ep.reward > max(means) else 0.0
    return out


@register_algorithm("dyna_grpo")
@dataclass
class DynaGRPO(GRPO):
    sim_fraction: float = 0.5  # share of each task's K rollouts run with SimRollout in simulation steps
    sim_iterations: int = 1  # n_T: simulation-improvement iterations per cycle
    policy_iterations: int = 1  # n_pi: plain GRPO iterations per cycle
    refine_weight: float = 1.0  # loss weight of the (s_refine, a_refine) samples
    max_plan: int = 5  # simulated moves checked against the real env per turn

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.sim_fraction <= 1:
            raise ValueError(f"sim_fraction must be in [0, 1], got {self.sim_fraction}")
        if self.sim_iterations < 0 or self.policy_iterations < 0 or self.sim_iterations + self.policy_iterations < 1:
            raise ValueError("sim_iterations and policy_iterations must be >= 0, and not both 0")
        if self.refine_weight < 0 or self.max_plan < 1:
            raise ValueError("refine_weight must be >= 0 and max_plan >= 1")

    def simulation_step(self, iteration: int) -> bool:
        return iteration % (self.sim_iterations + self.policy_iterations) < self.sim_iterations

    def collect(self, engine, env_config, tasks, k, rollout, *, seed, iteration):
        refined = round(k * self.sim_fraction) if self.simulation_step(iteration) else 0
        return collect_sync(engine, env_config, tasks, k, rollout, seed=seed,
                            refine=SimRefiner(self.max_plan), refined_per_task=refined)

    def prepare(self, episodes: list[Episode]) -> Batch:
        batch = super().prepare(episodes)  # GRPO over tau u tau'
        usable = [e for e in episodes if not e.failed]
        a_refine = refine_advantages(usable)
        samples, kept = list(batch.samples), list(batch.episodes)
        for ep in usable:
            turns = [t for t in ep.turns if REFINE_PROMPT_IDS in t.info]
            if not a_refine.get(ep.episode_id) or not turns or not self.refine_weight:
                continue  # A_refine = 0: no gradient
            for t in turns:
                seq = Turn(t.info[REFINE_PROMPT_IDS], t.completion_ids, t.info[REFINE_LOGPROBS]).sequence()
                samples.append(Sample(seq.token_ids, seq.loss_mask, seq.logprobs, 1.0, len(kept), self.refine_weight))
            kept.append(replace(ep, episode_id=ep.episode_id + "/refine", advantage=1.0))
        sim_turns = [t for ep in usable for t in ep.turns if "sim_total" in t.info]
        total = sum(t.info["sim_total"] for t in sim_turns)
        if sim_turns:  # simulation-improvement iterations only
            batch.metrics.update({
                "sim/episodes": float(sum(map(is_sim_rollout, usable))),
                "sim/accuracy": sum(t.info["sim_correct"] for t in sim_turns) / total if total else 0.0,
                "sim/refined_turns": float(sum(REFINE_PROMPT_IDS in t.info for t in sim_turns)),
                "sim/refine_episodes_kept": float(len(kept) - len(batch.episodes)),
            })
        return Batch(samples, kept, batch.metrics)
