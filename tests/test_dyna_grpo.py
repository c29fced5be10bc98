"""Dyna-GRPO: SimRollout on the real Sokoban env, A_refine, the batch it trains on, and NaN behaviour logprobs."""
from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest
import torch

from agentrl.algorithms import DynaGRPO
from agentrl.algorithms.dyna_grpo import refine_advantages
from agentrl.chat import ChatFormat
from agentrl.engines.scripted import ScriptedEngine
from agentrl.env import Task
from agentrl.episode import Episode, Turn
from agentrl.rollout import RolloutConfig, run_episode
from agentrl.sim_rollout import REFINE_LOGPROBS, REFINE_PROMPT_IDS, outcomes_message, real_outcomes
from agentrl_sokoban import SokobanConfig

LEVEL = "\n".join(["#######", "#     #", "# @$ .#", "#     #", "#######"])
ENV = SokobanConfig(instructions=False, max_steps=20)


def observation_after(moves: list[str]) -> str:
    env = ENV.make()
    obs = env.reset(Task("t", {"level": LEVEL}))
    for move in moves:
        obs = env.step(move).observation
    return obs


def trace(simulations: list[tuple[str, str]], action: str) -> str:
    blocks = [f'<simulate action="{a}">\n{s}\n</simulate>\nvalue: 0.50' for a, s in simulations]
    return "\n".join(["<think>", *blocks, f"The best move is {action}.\n</think>\n<action>{action}</action>"])


def test_real_outcomes_leave_the_env_where_it_was():
    env = ENV.make()
    env.reset(Task("t", {"level": LEVEL}))
    env.step("down")
    before = (env.render(), env.steps, env.done)
    outcomes = real_outcomes(env, ["up", "right", "left"])
    assert (env.render(), env.steps, env.done) == before
    assert outcomes == [observation_after(["down", m]) for m in ("up", "right", "left")]


def test_sim_rollout_checks_the_simulations_and_acts_on_the_refined_trace(tiny_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    real_up, real_right = observation_after(["up"]), observation_after(["right"])
    first = trace([("up", "#######\n#  @  #"), ("right", real_right)], "up")  # "up" simulated wrong
    refined = trace([("up", real_up), ("right", real_right)], "right")
    engine = ScriptedEngine(tokenizer, [first, refined], max_model_len=1024)
    chat = ChatFormat(tokenizer)
    from agentrl.sim_rollout import SimRefiner

    episode = asyncio.run(run_episode(
        engine, ENV, Task("t", {"level": LEVEL}), RolloutConfig(max_turns=1, history=0), chat,
        group_id="g", episode_index=0, seed=0, refine=SimRefiner(max_plan=5)))
    assert not episode.failed, episode.failure_reason
    turn = episode.turns[0]
    assert (turn.info["sim_total"], turn.info["sim_correct"]) == (2, 1)
    # the env stepped with a_refine ("right"), not with the first trace's "up"
    assert turn.action == refined and turn.observation == real_right and turn.info["first_action"] == first
    # (s_t, a_refine): the first prompt and the refined ids; behaviour logprobs unknown under s_t
    first_ids = tokenizer(first, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    refined_ids = tokenizer(refined, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert turn.prompt_ids == chat.first_prompt(observation_after([]))
    assert turn.completion_ids == refined_ids and all(math.isnan(x) for x in turn.logprobs)
    # s_refine = s_t + a + a user turn with the real outcomes of the simulated moves
    refine_prompt = turn.info[REFINE_PROMPT_IDS]
    assert refine_prompt[: len(turn.prompt_ids) + len(first_ids)] == turn.prompt_ids + first_ids
    feedback = chat.next_turn(outcomes_message(["up", "right"], [real_up, real_right]), completion_ended=True)
    assert refine_prompt[len(turn.prompt_ids) + len(first_ids):] == feedback
    assert turn.info[REFINE_LOGPROBS] == [0.0] * len(refined_ids)  # the scripted engine's logprobs


def _episode(group: str, index: int, reward: float, success: bool, sim: bool) -> Episode:
    info = {"success": success}
    if sim:
        info.update({"sim_total": 4, "sim_correct": 1 + index, REFINE_PROMPT_IDS: [5, 6, 7, 8], REFINE_LOGPROBS: [-0.5, -0.25]})
    turn = Turn(prompt_ids=[1, 2], completion_ids=[3, 4 + index], logprobs=[math.nan] * 2 if sim else [-1.0, -1.0],
                reward=reward, info=info)
    return Episode(task_id="t", group_id=group, episode_id=f"{group}/{index}", turns=[turn], reward=reward, success=success)


def test_refine_advantage_is_one_only_for_a_successful_sim_rollout_above_both_group_means():
    # standard rewards 1, 0 (mean 0.5); SimRollout rewards 2 (success), 0.4 (success) (mean 1.2)
    episodes = [_episode("g", 0, 1.0, True, False), _episode("g", 1, 0.0, False, False),
                _episode("g", 2, 2.0, True, True), _episode("g", 3, 0.4, True, True)]
    assert refine_advantages(episodes) == {"g/2": 1.0, "g/3": 0.0}
    # alone in its group a SimRollout episode must beat its own mean: never
    assert refine_advantages([_episode("h", 0, 5.0, True, True)]) == {"h/0": 0.0}


def test_dyna_grpo_batch_is_grpo_over_both_kinds_plus_the_refined_samples():
    episodes = [_episode("g", 0, 1.0, True, False), _episode("g", 1, 0.0, False, False),
                _episode("g", 2, 2.0, True, True), _episode("g", 3, 0.0, False, True)]
    batch = DynaGRPO(refine_weight=0.5).prepare(episodes)
    rewards = np.array([1.0, 0.0, 2.0, 0.0])
    expected = (rewards - rewards.mean()) / rewards.std(ddof=1)  # one GRPO group of all four
    assert [e.advantage for e in batch.episodes[:4]] == pytest.approx(list(expected), abs=1e-5)
    assert len(batch.samples) == 5 and batch.episodes[4].episode_id == "g/2/refine"
    refined = batch.samples[4]
    assert refined.token_ids == [5, 6, 7, 8, 3, 6] and refined.loss_mask == [0, 0, 0, 0, 1, 1]
    assert refined.behaviour_logprobs == [0.0] * 4 + [-0.5, -0.25]
    assert (refined.advantage, refined.weight, refined.episode) == (1.0, 0.5, 4)
    assert batch.metrics["sim/accuracy"] == pytest.approx((3 + 4) / 8)  # correct 3 and 4 of 4 + 4
    assert batch.metrics["sim/refine_episodes_kept"] == 1.0


def test_simulation_and_policy_steps_alternate():
    algo = DynaGRPO(sim_iterations=1, policy_iterations=2)
    assert [algo.simulation_step(i) for i in range(6)] == [True, False, False, True, False, False]
    with pytest.raises(ValueError, match="sim_fraction"):
        DynaGRPO(sim_fraction=1.5).validate()


def test_learner_uses_its_own_logprobs_where_behaviour_is_unknown(tiny_model):
    from agentrl.learner import Learner, LearnerConfig

    episodes = [_episode("g", 0, 1.0, True, False), _episode("g", 1, 0.0, False, False),
                _episode("g", 2, 2.0, True, True), _episode("g", 3, 0.0, False, True)]
    batch = DynaGRPO().prepare(episodes)
    learner = Learner(tiny_model, LearnerConfig(), seed=0)
    with torch.no_grad():
        old = learner.token_logprobs(batch.samples)
    # hand reference: |old - behaviour| over trained tokens whose behaviour logprob is known
    diffs = [abs(float(old[i, j]) - s.behaviour_logprobs[j]) for i, s in enumerate(batch.samples)
             for j, m in enumerate(s.loss_mask) if m and not math.isnan(s.behaviour_logprobs[j])]
    stats = learner.update(batch, DynaGRPO())
    assert stats["logprob_mismatch/mean_abs"] == pytest.approx(float(np.mean(diffs)), rel=1e-4)
    assert math.isfinite(stats["loss/policy"]) and math.isfinite(stats["loss/grad_norm"])
    assert not any(math.isnan(x) for s in batch.samples for x in s.behaviour_logprobs)


def test_refinement_demonstration_shows_wrong_simulations_then_the_real_outcomes(tiny_model):
    from transformers import AutoTokenizer

    from agentrl.sim_rollout import refine_demonstration

    chat = ChatFormat(AutoTokenizer.from_pretrained(tiny_model))
    states = {m: observation_after([m]) for m in ("up", "down", "right")}
    correct = trace([(m, states[m]) for m in ("up", "down", "right")], "right")
    correct_ids = chat.encode(correct) + [chat.eos_id]
    prompt = chat.first_prompt(observation_after([]))
    s_refine, target = refine_demonstration(chat, prompt, correct_ids)
    assert target == correct_ids
    # the first trace claims each move leads to the next candidate's state (rotated), same moves and values
    wrong = trace([("up", states["down"]), ("down", states["right"]), ("right", states["up"])], "right")
    first_ids = chat.encode(wrong) + [chat.eos_id]
    outcomes = chat.next_turn(outcomes_message(["up", "down", "right"], [states[m] for m in ("up", "down", "right")]),
                              completion_ended=True)
    assert s_refine == prompt + first_ids + outcomes
    assert refine_demonstration(chat, prompt, chat.encode(trace([("up", states["up"])], "up"))) is None
