"""LOOP on AppWorld: AppWorld's real engine in its own venv behind env servers on 127.0.0.1.

    accelerate launch recipes/loop_appworld.py                  # Qwen2.5-32B-Instruct, LOOP as in the paper
    accelerate launch recipes/loop_appworld.py --preset cpu     # tiny local model on the built world (plumbing)
    accelerate launch recipes/loop_appworld.py --model Qwen/Qwen2.5-7B-Instruct --env.num_servers 24

Set-up (`make install` does it): `python -m agentrl_appworld.install` creates AppWorld's venv
(pydantic<2 cannot share a process with vLLM) and builds an offline world. With the real
dataset under APPWORLD_ROOT (train, dev, test_normal, test_challenge) that is used unchanged.
Env servers already running elsewhere: `--env.server_urls '[http://host:8000, ...]'`.
Every field can be overridden (`--rl.learner.lr 1e-5`); `--help` lists them.
"""
from __future__ import annotations

from agentrl.algorithms import LOOP
from agentrl.evaluation import EvalConfig
from agentrl.learner import LearnerConfig, LoraSettings
from agentrl.recipe import LocalModel, Recipe, main_guard, run_recipe
from agentrl.rollout import RolloutConfig
from agentrl.sft import SFTConfig
from agentrl.trainer import TrainConfig
from agentrl_appworld import AppWorldConfig


def paper_preset() -> Recipe:
    """LOOP's AppWorld setup: Qwen2.5-32B-Instruct, LoRA r=16/alpha=32 on every projection, 40 tasks x K=6
    rollouts per iteration, 2 epochs of minibatches of 32 episodes, PPO clip eps 0.1, AdamW lr 5e-5 constant,
    grad clip 0.1, sampling temperature 1.0 (evaluation 0.1), up to 40 code executions per episode."""
    return Recipe(
        model="Qwen/Qwen2.5-32B-Instruct", output_dir="runs/loop_appworld",
        rl=TrainConfig(
            env=AppWorldConfig(max_interactions=40, num_servers=48, train_split="train", eval_split="dev"),
            iterations=100, tasks_per_iteration=40, rollouts_per_task=6, task_pool=90,  # AppWorld train: 90 tasks
            rollout=RolloutConfig(max_turns=40, max_new_tokens=1500, temperature=1.0, max_concurrent_episodes=48,
                                  step_timeout=300.0),
            algorithm=LOOP(clip_eps=0.1, epochs=2, minibatch_episodes=32),
            learner=LearnerConfig(lr=5e-5, lr_schedule="constant", weight_decay=0.0, max_grad_norm=0.1,
                                  dtype="bfloat16", gradient_checkpointing=True,
                                  lora=LoraSettings(enabled=True, r=16, alpha=32)),
            eval=EvalConfig(every=10, tasks=57, temperature=0.1),  # AppWorld dev: 57 tasks
        ),
    )


def cpu_preset() -> Recipe:
    """The whole path on two CPU cores: the built world, 4 env servers, a tiny local model with a short SFT
    on the ground-truth solutions, then LOOP on vLLM. Proves the plumbing; not expected to solve AppWorld."""
    env = AppWorldConfig(max_interactions=3, num_servers=4, max_observation_chars=600, execution_timeout=20)
    return Recipe(
        model="local", output_dir="runs/loop_appworld_cpu",
        local_model=LocalModel(vocab_size=1024, corpus_tasks=12),
        sft=SFTConfig(tasks=24, steps=40, batch_size=8, lr=2e-3, warmup_steps=4),
        rl=TrainConfig(
            env=env, iterations=2, tasks_per_iteration=2, rollouts_per_task=2, task_pool=24,
            checkpoint_every=1, save_episodes=4, trackers=["tensorboard"],
            # 2 tasks x K=2 = 4 episodes at once, one per env server; the prompt is the system prompt (with the
            # task) and the last output
            rollout=RolloutConfig(max_turns=3, max_new_tokens=256, temperature=1.0, history=0,
                                  max_concurrent_episodes=4),
            algorithm=LOOP(epochs=1, minibatch_episodes=4),
            learner=LearnerConfig(lr=1e-4, weight_decay=0.0, max_grad_norm=1.0, lora=LoraSettings(enabled=False)),
            eval=EvalConfig(every=0, tasks=4, temperature=0.0),
        ),
    )


PRESETS = {"paper": paper_preset, "cpu": cpu_preset}


def main(argv: list[str] | None = None) -> dict:
    return run_recipe(PRESETS, argv, prog="loop_appworld.py")


if __name__ == "__main__":
    main_guard(main)
