"""The training loop end to end: learning signal, checkpoint/resume, config errors."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from agentrl.algorithms import LOOP
from agentrl.evaluation import EvalConfig
from agentrl.learner import LearnerConfig, LoraSettings
from agentrl.engines import EngineConfig
from agentrl.rollout import RolloutConfig
from agentrl.trainer import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]


def _cfg(model, sokoban_env, out, iterations, **kw):
    kw.setdefault("algorithm", LOOP(minibatch_episodes=4))
    return TrainConfig(
        model=model, output_dir=str(out), seed=3, iterations=iterations, tasks_per_iteration=4,
        rollouts_per_task=4, checkpoint_every=1, trackers=[], env=sokoban_env,
        rollout=RolloutConfig(max_turns=12, max_new_tokens=3, history=0),
        eval=EvalConfig(tasks=0),
        learner=LearnerConfig(lr=1e-3, lora=LoraSettings(r=4, alpha=8)), engine=EngineConfig(backend="hf"), **kw,
    )


def _state(trainer):
    model = trainer.learner.accelerator.unwrap_model(trainer.learner.model)
    params = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}
    opt = {k: {n: t.clone() if torch.is_tensor(t) else t for n, t in s.items()}
           for k, s in trainer.learner.optimizer.state_dict()["state"].items()}
    return params, opt, trainer.learner.optimizer_steps, trainer.learner.version


def test_resume_after_stop_equals_uninterrupted_run(sft_model, sokoban_env, tmp_path):
    straight = Trainer(_cfg(sft_model, sokoban_env, tmp_path / "a", 2))
    straight.fit()
    stopped = Trainer(_cfg(sft_model, sokoban_env, tmp_path / "b", 1))
    stopped.fit()
    resumed = Trainer(_cfg(sft_model, sokoban_env, tmp_path / "b", 2, resume=True))
    resumed.fit()

    params_a, opt_a, steps_a, version_a = _state(straight)
    params_b, opt_b, steps_b, version_b = _state(resumed)
    assert steps_a > 0, "the runs must actually update (reward variance in the groups)"
    assert (steps_a, version_a) == (steps_b, version_b) == (steps_a, 2)
    assert params_a.keys() == params_b.keys()
    for k in params_a:
        torch.testing.assert_close(params_a[k], params_b[k], rtol=1e-5, atol=1e-6)
    assert opt_a.keys() == opt_b.keys()
    for k in opt_a:
        for n in opt_a[k]:
            torch.testing.assert_close(opt_a[k][n], opt_b[k][n], rtol=1e-5, atol=1e-7)
    iterations = [r["iteration"] for r in resumed.log.history()]
    assert iterations == [1, 2]
    assert (tmp_path / "b" / "final" / "adapter" / "adapter_config.json").exists()


def test_learner_logprobs_match_engine(sft_model, sokoban_env, tmp_path):
    trainer = Trainer(_cfg(sft_model, sokoban_env, tmp_path, 1, algorithm=LOOP(min_abs_advantage=0.0)))
    trainer.fit()
    [row] = [r for r in trainer.log.history() if "logprob_mismatch/max_abs" in r]
    assert row["logprob_mismatch/max_abs"] < 1e-4  # same weights, fp32: only kernel-order noise


@pytest.mark.parametrize("args, message", [
    (["--rl.learner.lr", "abc"], "rl.learner.lr: expected a float, got 'abc'"),
    (["--lrr", "1e-4"], "unknown config field 'lrr'"),
    (["--env.num_boxes", "0"], "num_boxes"),
    (["--preset", "gpu9000"], "unknown preset"),
])
def test_bad_recipe_config_fails_at_start_naming_the_field(args, message, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "recipes" / "loop_sokoban.py"), "--preset", "cpu",
         "--output_dir", str(tmp_path / "run"), *args],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout
    assert not (tmp_path / "run").exists(), "nothing heavy may start before the config is checked"


@pytest.mark.slow
def test_loop_raises_success_on_its_training_levels(sft_model, sokoban_env, tmp_path):
    """A learning claim, measured: LOOP on a fixed pool of 16 levels raises the sampled
    success on those levels over the SFT starting point (fixed seeds, 128 episodes each)."""
    import numpy as np

    from agentrl.engines.hf import HFEngine
    from agentrl.rollout import collect_sync

    rollout = RolloutConfig(max_turns=20, max_new_tokens=4, history=0)
    pool = sokoban_env.tasks("train", 16, 0)

    def success(model: str) -> float:
        engine = HFEngine(model)
        try:
            return float(np.mean([e.success for e in collect_sync(engine, sokoban_env, pool, 8, rollout, seed=99)]))
        finally:
            engine.close()

    cfg = TrainConfig(
        model=sft_model, output_dir=str(tmp_path), seed=0, iterations=12, tasks_per_iteration=16,
        rollouts_per_task=8, task_pool=16, checkpoint_every=0, trackers=[], env=sokoban_env, rollout=rollout,
        algorithm=LOOP(group_minibatches=True), eval=EvalConfig(tasks=0),
        learner=LearnerConfig(lr=3e-4, max_grad_norm=1.0, lora=LoraSettings(enabled=False)),
        engine=EngineConfig(backend="hf"),
    )
    Trainer(cfg).fit()
    before, after = success(sft_model), success(str(tmp_path / "final"))
    assert after >= before + 0.05, (before, after)  # measured: 0.219 -> 0.328


def test_async_rollouts_train_on_one_update_stale_episodes(sft_model, sokoban_env, tmp_path):
    """Iteration 1 is collected before any update (importance weights 1); later batches were
    collected while the learner trained, by the weights one update behind (weights != 1, logged)."""
    import json

    trainer = Trainer(_cfg(sft_model, sokoban_env, tmp_path / "async", 3, async_rollouts=True,
                           algorithm=LOOP(epochs=1, minibatch_episodes=0, min_abs_advantage=0.0)))
    trainer.fit()
    rows = [json.loads(line) for line in (tmp_path / "async" / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in rows if "importance_weight/mean" in r]
    assert [r["iteration"] for r in trained] == [1, 2, 3]
    assert trained[0]["logprob_mismatch/max_abs"] < 1e-4  # same weights as the engine's
    for row in trained[1:]:
        assert row["logprob_mismatch/max_abs"] > 1e-3  # behaviour = the previous weights
        assert row["importance_weight/max"] > 1.0 > row["importance_weight/min"]
