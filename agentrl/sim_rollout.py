"""SimRollout (Dyna-GRPO): check the policy's simulations against the real env, then act again.

At state s_t the policy writes a trace `a` (ReSim format: a predicted next state per candidate
move, then a move). Every move it simulated (up to `max_plan`) is executed in the real env from
a snapshot, which is restored afterwards, giving the true next states. The refined state
s_refine = s_t + a + a user turn listing those real outcomes; the policy samples `a_refine`
there, and the env steps with `a_refine`. The turn is recorded as (s_t, a_refine), whose
behaviour logprobs are unknown (NaN: the learner uses its own), with (s_refine, a_refine) and
its real logprobs in `info` for the refined sample (see algorithms/dyna_grpo.py).
"""
from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, replace
from typing import Any

from agentrl.chat import ChatFormat
from agentrl.engines.base import Completion, Engine, SamplingParams
from agentrl.env import Env
from agentrl.resim import parse_trace, simulation_block

REFINE_PROMPT_IDS = "refine_prompt_ids"  # info keys of a refined turn
REFINE_LOGPROBS = "refine_logprobs"


def real_outcomes(env: Env, actions: list[str]) -> list[str]:
    """The real next observation of each action from the env's current state (env left unchanged)."""
    start = env.snapshot()
    try:
        outcomes = []
        for action in actions:
            env.restore(start)
            outcomes.append(env.step(action).observation)
        return outcomes
    finally:
        env.restore(start)


def outcomes_message(actions: list[str], outcomes: list[str]) -> str:
    """The user turn of s_refine: the real outcome of each simulated move, in the trace's own blocks."""
    blocks = [simulation_block(a, o) for a, o in zip(actions, outcomes)]
    return "Real outcomes of the moves you simulated:\n" + "\n".join(blocks)


def refine_prompt(chat: ChatFormat, prompt: list[int], first_ids: list[int], actions: list[str],
                  outcomes: list[str]) -> list[int]:
    """s_refine: s_t, the first trace's ids (closed if cut off), then the real outcomes as the next user turn."""
    ended = first_ids[-1:] == [chat.eos_id]
    return prompt + first_ids + chat.next_turn(outcomes_message(actions, outcomes), completion_ended=ended)


def refine_demonstration(chat: ChatFormat, prompt: list[int], trace_ids: list[int]) -> tuple[list[int], list[int]] | None:
    """A supervised refinement example from a correct ReSim trace at s_t (`prompt`): a first trace whose
    simulated states are wrong (rotated among the candidates), the real outcomes, then the correct trace.
    Returns (s_refine ids, the correct trace's ids), or None for a trace with fewer than two simulations.
    It teaches a model that never saw s_refine what to do there: rewrite its simulations from the real outcomes."""
    text = chat.tokenizer.decode(trace_ids, skip_special_tokens=True)
    simulations, _ = parse_trace(text)
    if len(simulations) < 2:
        return None
    wrong = text
    for sim, other in zip(simulations, simulations[1:] + simulations[:1]):
        wrong = wrong.replace(simulation_block(sim.action, sim.next_state), simulation_block(sim.action, other.next_state), 1)
    first_ids = chat.encode(wrong) + [chat.eos_id]
    actions = [s.action for s in simulations]
    return refine_prompt(chat, prompt, first_ids, actions, [s.next_state for s in simulations]), list(trace_ids)


@dataclass
class SimRefiner:
    """The per-turn hook `run_episode` calls after sampling `a` at s_t (see module docstring)."""

    max_plan: int = 5  # simulated moves checked per turn (the paper's d <= 5)

    async def __call__(
        self, engine: Engine, env: Env, chat: ChatFormat, prompt: list[int], first: Completion,
        sampling: SamplingParams, timeout: float,
    ) -> tuple[Completion, dict[str, Any]]:
        text = engine.tokenizer.decode(first.token_ids, skip_special_tokens=True)
        simulations, _ = parse_trace(text)
        plan, predicted = [], []
        for sim in simulations:
            if sim.action not in plan and len(plan) < self.max_plan:
                plan.append(sim.action)
                predicted.append(sim.next_state)
        info: dict[str, Any] = {"first_action": text, "sim_total": len(plan), "sim_correct": 0}
        if not plan:  # nothing simulated: nothing to check, act on `a` as it is
            return first, info
        real = await asyncio.wait_for(asyncio.to_thread(real_outcomes, env, plan), timeout)
        info["sim_correct"] = sum(p.strip("\n") == r.strip("\n") for p, r in zip(predicted, real))
        s_refine = refine_prompt(chat, prompt, first.token_ids, plan, real)
        room = engine.max_model_len - len(s_refine)
        if room < 1:  # no space to act again: keep `a`
            return first, info
        seed = None if sampling.seed is None else sampling.seed + 7_777
        refined = await engine.generate(s_refine, replace(sampling, seed=seed, max_new_tokens=min(sampling.max_new_tokens, room)))
        info[REFINE_PROMPT_IDS] = s_refine
        info[REFINE_LOGPROBS] = list(refined.logprobs)
        # under s_t, a_refine's behaviour logprobs were never computed: NaN tells the learner to use its own
        return Completion(refined.token_ids, [math.nan] * len(refined.token_ids), refined.finish_reason), info
