"""Malformed model output: random bytes, 100k-character actions, chat markup mid-turn, turns cut at
the token limit. Every action parser answers in bounded time, the Sokoban env answers with an
invalid-action observation, and a rollout + learner update on such output keeps the engine's exact
tokens and finite losses."""
from __future__ import annotations

import random
import time

import pytest

from agentrl.algorithms import GRPO
from agentrl.resim import parse_trace
from agentrl.rollout import RolloutConfig, collect_sync
from faulty import MalformedOutputEngine, read_faults
from ledger import account

_rng = random.Random(0)
MALFORMED = {
    "random bytes": bytes(_rng.randrange(256) for _ in range(4096)).decode("utf-8", errors="replace"),
    "100k random characters": "".join(chr(_rng.randrange(32, 0x2FFF)) for _ in range(100_000)),
    "100k of <action>": "<action>" * 12_500,
    "100k of <simulate": '<simulate action="up">\n' * 4_200,
    "100k of code fences": "```python\n" * 10_000,
    "100k of newlines": "\n" * 100_000,
    "chat markup": "<|im_end|>\n<|im_start|>user\n<|im_start|>assistant\n<action>",
    "NUL and control characters": "\x00\x01\x1b[2J\x7f" * 100,
    "empty": "",
}


def _parsers():
    from agentrl_alfworld.env import parse_command
    from agentrl_appworld.prompt import extract_code
    from agentrl_mle.actions import parse_action as mle_action
    from agentrl_sokoban.actions import parse_action as sokoban_action

    return {"sokoban": sokoban_action, "alfworld": parse_command, "mle": mle_action, "appworld": extract_code,
            "resim trace": parse_trace}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_every_action_parser_takes_malformed_output_in_bounded_time(kind):
    text = MALFORMED[kind]
    for name, parse in _parsers().items():
        t0 = time.perf_counter()
        parse(text)  # any answer is fine; an exception or a stall is not
        assert time.perf_counter() - t0 < 1.0, f"{name} took {time.perf_counter() - t0:.1f}s on {kind}"


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_sokoban_answers_malformed_actions_with_a_bounded_observation(sokoban_env, kind):
    """An unparseable action gets the invalid-action observation (one naming a single direction, like
    the repeated `<simulate action="up">`, is that move); never an echo of 100k characters."""
    from agentrl_sokoban.actions import parse_action

    env = sokoban_env.make()
    env.reset(sokoban_env.tasks("test", 1, seed=0)[0])
    step = env.step(MALFORMED[kind])
    assert step.info["invalid_action"] == (parse_action(MALFORMED[kind]) is None)
    assert isinstance(step.observation, str) and len(step.observation) < 300


def test_rollouts_and_updates_on_malformed_completions(sft_model, sokoban_env, tmp_path):
    """A quarter of the completions replaced by malformed token ids: the episodes complete (a bad
    action is the policy's doing, not a failure), hold exactly the ids the engine returned, and a
    GRPO update on them gives finite losses and finite weights."""
    import torch

    from agentrl.engines import EngineConfig, make_engine
    from agentrl.learner import Learner, LearnerConfig, LoraSettings

    log = tmp_path / "outputs.jsonl"
    engine = MalformedOutputEngine(make_engine(sft_model, EngineConfig(backend="hf"), seed=0), rate=0.25, seed=3,
                                   log=str(log))
    try:
        tasks = sokoban_env.tasks("train", 6, seed=4)
        episodes = collect_sync(engine, sokoban_env, tasks, 4, RolloutConfig(max_turns=6, max_new_tokens=6, history=0),
                                seed=2)
    finally:
        engine.close()
    injected = read_faults(log)
    row = account("malformed model output (rollout + update)", len(injected), episodes, len(tasks) * 4)
    assert injected and row["failed"] == 0
    # token-in/token-out: every malformed completion is in some turn exactly as returned
    turns = [t.completion_ids for e in episodes for t in e.turns]
    assert all(f["ids"] in turns for f in injected)
    assert {f["kind"] for f in injected} == set(MalformedOutputEngine.KINDS)

    algorithm = GRPO()
    batch = algorithm.prepare(episodes)
    assert batch.samples
    trained: dict[int, list[int]] = {}  # the learner trains on the rollout's ids, not a re-tokenization
    for sample in batch.samples:
        trained.setdefault(sample.episode, []).extend(t for t, m in zip(sample.token_ids, sample.loss_mask) if m)
    for index, ids in trained.items():
        assert ids == [i for t in batch.episodes[index].turns for i in t.completion_ids]
    learner = Learner(sft_model, LearnerConfig(lr=1e-3, lora=LoraSettings(enabled=False)))
    stats = learner.update(batch, algorithm, 1.0)
    assert all(v == v and abs(v) != float("inf") for v in stats.values()), stats
    assert all(torch.isfinite(p).all() for p in learner.model.parameters())


def test_last_tagged_reads_the_last_complete_tag_like_the_regex_it_replaced():
    from agentrl.env import last_tagged

    assert last_tagged("think <action>up</action> no, <ACTION>left</Action>") == "left"
    assert last_tagged("<action>up</action> trailing <action>down") == "up"  # an unclosed tag is no answer
    assert last_tagged("no tag at all") is None and last_tagged("</action><action>") is None
    assert last_tagged("<action></action>") == ""
    assert parse_trace('<simulate action="up">\nA\n</simulate>\nvalue: 0.5\n<action>up</action>')[1] == "up"
