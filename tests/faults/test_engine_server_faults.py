"""The rollout engine's server dies mid-training: a real vLLM server, SIGKILLed at a random env step
of iteration 2 and restarted at once. The episodes it was serving fail with the reason, the run goes
on, and once the server is back it serves the learner's current weights (the learner's recomputed
logprobs match the served ones again)."""
from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

import pytest

from agentrl.engines import EngineConfig
from agentrl.engines.weight_files import adapter_name
from agentrl.env import EnvConfig
from agentrl.run_log import RunLog
from agentrl.trainer import Trainer
from agentrl_sokoban import SokobanConfig
from ledger import account, saved_train_episodes
from test_trainer import _cfg

pytestmark = pytest.mark.vllm
CONTROL: dict = {}  # runtime hooks for the env below (configs hold only plain, saveable fields)


@dataclass
class KillsTheServer(EnvConfig):
    """Sokoban, but the `kill_at`-th env step after the `after_resets`-th reset (the first reset of
    iteration 2) SIGKILLs the vLLM server and restarts it in the background. Resets after the kill wait for the restart, so the iterations after it run
    against the restarted server (without the wait, they fail fast until it is back)."""

    inner: SokobanConfig = field(default_factory=SokobanConfig)
    kill_at: int = 1
    after_resets: int = 0

    def make(self):
        env, control, config = self.inner.make(), CONTROL, self

        class Killing(type(env)):
            def reset(self, task):
                if control["killed"].is_set():
                    control["restarted"].wait(300)
                with control["lock"]:
                    control["resets"] += 1
                    if control["resets"] == config.after_resets + 1:
                        control["base"] = control["steps"]
                return super().reset(task)

            def step(self, action):
                with control["lock"]:
                    control["steps"] += 1
                    kill = control["base"] is not None and control["steps"] == control["base"] + config.kill_at
                if kill:
                    control["server"].kill()
                    control["killed"].set()
                    threading.Thread(target=_restart, daemon=True).start()
                return super().step(action)

        env.__class__ = Killing
        return env

    def tasks(self, split, n, seed):
        return self.inner.tasks(split, n, seed)


def _restart() -> None:
    CONTROL["server"].start()
    CONTROL["restarted"].set()


def test_vllm_server_killed_and_restarted_mid_training(tiny_model, sft_model, sokoban_env, tmp_path):
    from agentrl.engines.vllm_launch import VLLMServer

    server = VLLMServer(sft_model, dtype="float32", lora_rank=4, enforce_eager=True,
                        log_file=tmp_path / "server.log").start()
    CONTROL.update(server=server, steps=0, resets=0, base=None, lock=threading.Lock(),
                   killed=threading.Event(), restarted=threading.Event())
    try:
        env = KillsTheServer(inner=sokoban_env, kill_at=random.Random(3).randrange(1, 20), after_resets=16)
        cfg = _cfg(sft_model, env, tmp_path / "run", 4, save_episodes=10_000)
        cfg.engine = EngineConfig(backend="vllm_server", urls=[server.url], max_retries=1, retry_backoff=0.05)
        assert cfg.tasks_per_iteration * cfg.rollouts_per_task == env.after_resets
        Trainer(cfg).fit()
        import httpx

        served = [m["id"] for m in httpx.get(f"{server.url}/v1/models", timeout=10).json()["data"]]
    finally:
        server.stop()
    assert CONTROL["killed"].is_set() and CONTROL["restarted"].is_set()
    per_iteration = cfg.tasks_per_iteration * cfg.rollouts_per_task
    by_iteration = saved_train_episodes(tmp_path / "run", cfg.iterations)
    episodes = [e for eps in by_iteration for e in eps]
    row = account("vLLM server SIGKILLed mid-training, restarted", 1, episodes, 4 * per_iteration)
    failed_in = [sum(e.failed for e in eps) for eps in by_iteration]
    assert failed_in[1] > 0 and failed_in[0] == failed_in[2] == failed_in[3] == 0, failed_in
    assert set(row["reasons"]) == {"ServersDown"}
    # after the restart the server got the current adapter again: served and recomputed logprobs agree
    mismatch = [r["logprob_mismatch/max_abs"] for r in RunLog(tmp_path / "run").history()
                if "logprob_mismatch/max_abs" in r]
    assert len(mismatch) >= 3 and max(mismatch[-2:]) < 1e-3, mismatch  # (an all-failed group trains nothing)
    assert adapter_name(cfg.iterations) in served, served  # the restarted server holds the final adapter
