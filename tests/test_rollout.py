"""Multi-turn rollouts: exact token bookkeeping, history windows, failures."""
from __future__ import annotations

import time

import pytest

from agentrl.chat import ChatFormat
from agentrl.engines.hf import HFEngine
from agentrl.engines.scripted import ScriptedEngine
from agentrl.env import Task
from agentrl.rollout import RolloutConfig, collect_sync
from agentrl_sokoban import SokobanConfig, SokobanEnv

# a level no 3 moves can solve: the box is 4 pushes from its target
LEVEL = "#######\n#@$   #\n#    .#\n#######"
TASK = Task("corridor", {"level": LEVEL, "optimal_length": 6})


class RecordingEngine(HFEngine):
    """The real HF engine, keeping a log of what it was asked and what it answered."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    async def generate(self, prompt_ids, sampling):
        completion = await super().generate(prompt_ids, sampling)
        self.calls.append((list(prompt_ids), completion))
        return completion


@pytest.fixture(scope="module")
def engine(tiny_model):
    e = RecordingEngine(tiny_model)
    yield e
    e.close()


def test_three_turn_episode_is_exactly_the_engine_tokens(engine):
    env = SokobanConfig(max_steps=3, instructions=False)
    engine.calls.clear()
    [ep] = collect_sync(engine, env, [TASK], 1, RolloutConfig(max_turns=10, max_new_tokens=3), seed=7)
    assert ep.num_turns == 3 and ep.finish_reason == "done" and not ep.failed
    chat = ChatFormat(engine.tokenizer)
    [seq] = ep.sequences()  # full history: one sequence
    (p0, c0), (p1, c1), (p2, c2) = [(p, c) for p, c in engine.calls]
    # each prompt the engine saw = previous prompt + its completion + the next user turn, as ids
    for (prev_prompt, prev), (prompt, _), turn in zip(engine.calls, engine.calls[1:], ep.turns):
        ended = prev.token_ids[-1:] == [engine.tokenizer.eos_token_id]
        assert prompt == prev_prompt + prev.token_ids + chat.next_turn(turn.observation, ended)
    assert seq.token_ids == p2 + c2.token_ids
    expected_mask = [0] * len(seq.token_ids)
    for prompt, completion in engine.calls:
        for i in range(len(prompt), len(prompt) + len(completion.token_ids)):
            expected_mask[i] = 1
    assert seq.loss_mask == expected_mask
    assert [lp for lp, m in zip(seq.logprobs, seq.loss_mask) if m] == c0.logprobs + c1.logprobs + c2.logprobs
    assert p0 == chat.first_prompt(SokobanEnv(env).reset(TASK))


def test_demonstration_ids_match_the_chat_template(tiny_model):
    """With eos-terminated turns, the appended ids decode to the template's own rendering."""
    from transformers import AutoTokenizer

    from agentrl.rollout import run_episode
    import asyncio

    tok = AutoTokenizer.from_pretrained(tiny_model)
    env = SokobanConfig(instructions=False)
    actions = ["right", "down", "right"]
    scripted = ScriptedEngine(tok, actions, 1024)
    ep = asyncio.run(run_episode(scripted, env, TASK, RolloutConfig(max_turns=3), ChatFormat(tok),
                                 group_id="g", episode_index=0, seed=0))
    [seq] = ep.sequences()
    messages = [{"role": "user", "content": ep.initial_observation}]
    for action, turn in zip(actions, ep.turns):
        messages.append({"role": "assistant", "content": action})
        messages.append({"role": "user", "content": turn.observation})
    rendered = tok.apply_chat_template(messages[:-1], tokenize=False)
    assert tok.decode(seq.token_ids) == rendered.rstrip("\n")  # ends at the last <|im_end|>


def test_history_windows(engine):
    env = SokobanConfig(max_steps=3, instructions=False)
    chat = ChatFormat(engine.tokenizer)
    [ep0] = collect_sync(engine, env, [TASK], 1, RolloutConfig(max_turns=10, max_new_tokens=3, history=0), seed=7)
    # history 0: every prompt is just the current observation
    observations = [ep0.initial_observation] + [t.observation for t in ep0.turns]
    assert [t.prompt_ids for t in ep0.turns] == [chat.first_prompt(o) for o in observations[:3]]
    assert len(ep0.sequences()) == 3
    [ep1] = collect_sync(engine, env, [TASK], 1, RolloutConfig(max_turns=10, max_new_tokens=3, history=1), seed=7)
    t0, t1, t2 = ep1.turns
    # history 1: turn 2 sees (observation 1, action 1, observation 2)
    ended = t1.completion_ids[-1:] == [chat.eos_id]
    assert t2.prompt_ids == chat.first_prompt(t0.observation) + t1.completion_ids + chat.next_turn(t1.observation, ended)


class CrashingEnv(SokobanEnv):
    def step(self, action):
        if self.steps == 1:
            raise RuntimeError("simulator crashed")
        return super().step(action)


class SlowEnv(SokobanEnv):
    def step(self, action):
        time.sleep(3)
        return super().step(action)


class BrokenResetEnv(SokobanEnv):
    def reset(self, task):
        raise ConnectionError("env server is down")


def _config_making(env_cls):
    class Cfg(SokobanConfig):
        def make(self):
            return env_cls(self)
    return Cfg(instructions=False, max_steps=5)


@pytest.mark.parametrize("env_cls, reason", [
    (CrashingEnv, "RuntimeError: simulator crashed"),
    (SlowEnv, "timeout"),
    (BrokenResetEnv, "ConnectionError: env server is down"),
])
def test_env_failures_fail_the_episode_not_the_run(engine, env_cls, reason):
    cfg = RolloutConfig(max_turns=5, max_new_tokens=2, step_timeout=0.5)
    bad = collect_sync(engine, _config_making(env_cls), [TASK], 2, cfg, seed=1)
    assert all(e.failed and e.failure_reason.startswith(reason) for e in bad)
    assert all(e.finish_reason == "failed" and not e.success for e in bad)
    # and the same engine carries on with healthy episodes
    good = collect_sync(engine, SokobanConfig(instructions=False, max_steps=2), [TASK], 2, cfg, seed=1)
    assert not any(e.failed for e in good) and all(e.num_turns == 2 for e in good)


def test_invalid_actions_are_steps_not_crashes(tiny_model):
    from transformers import AutoTokenizer
    import asyncio

    from agentrl.rollout import run_episode

    tok = AutoTokenizer.from_pretrained(tiny_model)
    scripted = ScriptedEngine(tok, ["jump", "<action>right</action>", "???"], 1024)
    ep = asyncio.run(run_episode(scripted, SokobanConfig(instructions=False, max_steps=3), TASK,
                                 RolloutConfig(max_turns=3), ChatFormat(tok), group_id="g", episode_index=0, seed=0))
    assert not ep.failed and ep.num_turns == 3
    assert [t.info["invalid_action"] for t in ep.turns] == [True, False, True]
    assert ep.invalid_actions == 2
    assert ep.turns[0].observation.startswith('Invalid action "jump"')


def test_context_length_guard(tiny_model):
    small = HFEngine(tiny_model, max_model_len=90)
    try:
        [ep] = collect_sync(small, SokobanConfig(instructions=False, max_steps=50), [TASK], 1,
                            RolloutConfig(max_turns=50, max_new_tokens=8), seed=3)
    finally:
        small.close()
    assert ep.finish_reason == "context_length" and not ep.failed
    assert all(len(t.prompt_ids) + len(t.completion_ids) <= 90 for t in ep.turns)


def test_same_seed_same_episodes(engine):
    cfg = RolloutConfig(max_turns=4, max_new_tokens=3)
    env = SokobanConfig(instructions=False, max_steps=4)
    a = collect_sync(engine, env, [TASK, TASK], 3, cfg, seed=11)
    b = collect_sync(engine, env, [TASK], 3, cfg, seed=11)
    assert [t.completion_ids for t in a[0].turns] == [t.completion_ids for t in b[0].turns]
    assert [e.group_id for e in a] == ["0:corridor"] * 3 + ["1:corridor"] * 3
