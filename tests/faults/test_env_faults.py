"""Env faults at random turns of a real training run: crashes, hangs past the step timeout,
garbage instead of a Step, and AppWorld env servers SIGKILLed mid-episode. The run finishes,
every episode is completed or failed with its reason, and each fault failed exactly one episode."""
from __future__ import annotations

import asyncio
import math
import os
import random
import signal
from collections import Counter

import pytest

from agentrl.run_log import RunLog
from agentrl.trainer import Trainer
from faulty import FaultyEnvConfig, read_faults
from ledger import account, reason_kind, saved_train_episodes
from test_trainer import _cfg

# the failure reason each kind of fault must leave on its episode
EXPECTED_REASON = {"raise": "RuntimeError", "hang": "timeout", "garbage": "EnvProtocolError"}


def test_env_crashes_hangs_and_garbage_fail_only_their_episodes(sft_model, sokoban_env, tmp_path):
    log = tmp_path / "faults.jsonl"
    env = FaultyEnvConfig(inner=sokoban_env, rate=0.35, max_turn=4, hang_s=1.5, seed=11, log=str(log))
    cfg = _cfg(sft_model, env, tmp_path / "run", 4, save_episodes=10_000)
    cfg.rollout.step_timeout = 0.5
    Trainer(cfg).fit()

    per_iteration = cfg.tasks_per_iteration * cfg.rollouts_per_task
    episodes = [e for eps in saved_train_episodes(tmp_path / "run", cfg.iterations) for e in eps]
    faults = read_faults(log)
    row = account("env raises / hangs / returns garbage (training run)", len(faults), episodes,
                  per_iteration * cfg.iterations)
    assert {f["kind"] for f in faults} == set(EXPECTED_REASON), "the seed should inject every kind"
    # one fault, one failed episode, with the reason its kind must give
    assert row["failed"] == len(faults)
    assert row["reasons"] == Counter(EXPECTED_REASON[f["kind"]] for f in faults)
    garbage = [e.failure_reason for e in episodes if e.failed and reason_kind(e.failure_reason) == "EnvProtocolError"]
    # each says what was wrong with what the env returned
    assert all(r.endswith(("not a Step", "not str", "not a finite number", "not a bool")) for r in garbage), garbage
    # the learner trained on the rest: every iteration logged, finite losses, failures counted
    rows = [r for r in RunLog(tmp_path / "run").history() if "train/success_rate" in r]
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4]
    assert all(math.isfinite(r["loss/policy"]) for r in rows if "loss/policy" in r)
    failed_by_iteration = [sum(e.failed for e in episodes[i * per_iteration:(i + 1) * per_iteration]) for i in range(4)]
    assert [r["batch/failed_episodes"] for r in rows] == failed_by_iteration


@pytest.mark.appworld
def test_appworld_servers_killed_at_random_steps(tmp_path):
    """Eight AppWorld episodes over two real env servers; at random steps an episode's server is
    SIGKILLed. That episode fails with the reason, the pool restarts the server, the others finish."""
    from agentrl.chat import ChatFormat
    from agentrl.engines.scripted import ScriptedEngine
    from agentrl.env import Task
    from agentrl.model_builder import build_tokenizer
    from agentrl.rollout import RolloutConfig, run_episode
    from agentrl_appworld import AppWorldConfig
    from agentrl_appworld.env import AppWorldEnv

    rng, killed = random.Random(5), []

    class KillsItsServerSometimes(AppWorldEnv):
        def step(self, action):
            if rng.random() < 0.25:
                killed.append(self.task_id)
                os.killpg(self.server.process.pid, signal.SIGKILL)
                self.server.process.wait()
            return super().step(action)

    class Faulty(AppWorldConfig):
        def make(self):
            return KillsItsServerSometimes(self)

    cfg = Faulty(num_servers=2, max_interactions=4)
    try:
        ids = cfg.dataset("train")[:8]
        solutions = {t: cfg.expert_actions(Task(t, {"task_id": t}))[0] for t in ids}
        tokenizer = build_tokenizer(list(solutions.values()), vocab_size=400)
        chat = ChatFormat(tokenizer)
        restarts = len(cfg.pool().restart_log)

        async def one(i: int, t: str, limit: asyncio.Semaphore):
            # two look-around steps, then the task's solution: several steps at which a server may die
            engine = ScriptedEngine(tokenizer, ["print(1)", "print(2)", solutions[t]], 1 << 20)
            async with limit:  # one episode per server, as collect() runs them
                return await run_episode(engine, cfg, Task(t, {"task_id": t}), RolloutConfig(max_turns=3, step_timeout=60),
                                         chat, group_id=t, episode_index=i, seed=0)

        async def all_episodes():
            limit = asyncio.Semaphore(cfg.concurrency_limit())
            return await asyncio.gather(*(one(i, t, limit) for i, t in enumerate(ids)))

        episodes = asyncio.run(all_episodes())
        row = account("AppWorld env servers SIGKILLed at random steps", len(killed), episodes, len(ids))
        assert killed, "the seed should kill at least one server"
        assert row["failed"] == len(killed) == len(cfg.pool().restart_log) - restarts
        assert all("AppWorld server died during the episode" in e.failure_reason for e in episodes if e.failed)
        assert all(e.success for e in episodes if not e.failed)
        assert all(s.running() for s in cfg.pool().servers)
    finally:
        cfg.pool().close()
