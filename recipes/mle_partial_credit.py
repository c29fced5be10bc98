"""ML-engineering agents with instrumented partial-credit rewards and duration-aware updates.

    accelerate launch recipes/mle_partial_credit.py --preset cpu   # tiny local model, vLLM, a few iterations
    accelerate launch recipes/mle_partial_credit.py                # Qwen2.5-3B-Instruct, LoRA, the paper's set-up
    accelerate launch recipes/mle_partial_credit.py --env.instrumenter lm --env.instrumenter_model Qwen/Qwen2.5-1.5B-Instruct
    accelerate launch recipes/mle_partial_credit.py --env.task_dirs '["my_task"]' --env.test_task_dirs '["my_test_task"]'

The agent writes and runs scikit-learn programs in a sandbox (no network, its own filesystem
view and uid, CPU/memory/process/wall limits) on datasets whose test labels only the grader
holds. Each run is instrumented with milestone prints: partial credit for the milestones the
graded run reached, 0.5 + 0.5 x the normalised test score for a valid submission. Updates weight
each action by its execution time over the batch mean; rollouts of the next iteration are
collected while the learner trains (one update stale, importance weights logged).
"""
from __future__ import annotations

from agentrl.algorithms import GRPO
from agentrl.evaluation import EvalConfig
from agentrl.learner import LearnerConfig, LoraSettings
from agentrl.recipe import LocalModel, Recipe, main_guard, run_recipe
from agentrl.rollout import RolloutConfig
from agentrl.sft import SFTConfig
from agentrl.trainer import TrainConfig
from agentrl_mle import MLEConfig


def paper_preset() -> Recipe:
    """A 3B instruct model with LoRA, up to 3 runs per task (improve from the previous output),
    PPO-clipped GRPO-style advantages, duration-aware, asynchronous."""
    return Recipe(
        model="Qwen/Qwen2.5-3B-Instruct", output_dir="runs/mle_partial_credit",
        rl=TrainConfig(
            env=MLEConfig(max_runs=3, concurrency=8), iterations=100, tasks_per_iteration=12, rollouts_per_task=4,
            async_rollouts=True,
            rollout=RolloutConfig(max_turns=6, max_new_tokens=1024, temperature=1.0, step_timeout=180.0),
            algorithm=GRPO(duration_weighting=True),
            learner=LearnerConfig(lr=1e-5, weight_decay=0.01, max_grad_norm=1.0, dtype="bfloat16",
                                  lora=LoraSettings(r=16, alpha=32)),
            eval=EvalConfig(every=10, tasks=24, temperature=0.0),
        ),
    )


def cpu_preset() -> Recipe:
    """The plumbing on two CPU cores: a tiny local model SFT'd on the expert's programs, then a
    few duration-weighted, asynchronous iterations on vLLM. One program per episode (max_runs=1)."""
    return Recipe(
        model="local", output_dir="runs/mle_partial_credit_cpu",
        # every expert demonstration is a real sandboxed run (~2 s): keep the corpus and SFT sets small
        local_model=LocalModel(vocab_size=1024, corpus_tasks=6),
        sft=SFTConfig(tasks=24, steps=250, batch_size=8, lr=2e-3, warmup_steps=10),
        rl=TrainConfig(
            env=MLEConfig(max_runs=1, concurrency=2), iterations=3, tasks_per_iteration=4, rollouts_per_task=4,
            checkpoint_every=1, save_episodes=4, trackers=["tensorboard"], async_rollouts=True,
            rollout=RolloutConfig(max_turns=2, max_new_tokens=320, temperature=1.0),
            algorithm=GRPO(duration_weighting=True),
            learner=LearnerConfig(lr=1e-4, weight_decay=0.0, max_grad_norm=1.0, lora=LoraSettings(enabled=False)),
            eval=EvalConfig(every=0, tasks=6, temperature=0.0),
        ),
    )


PRESETS = {"paper": paper_preset, "cpu": cpu_preset}


def main(argv: list[str] | None = None) -> dict:
    return run_recipe(PRESETS, argv, prog="mle_partial_credit.py")


if __name__ == "__main__":
    main_guard(main)
