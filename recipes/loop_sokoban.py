"""LOOP on Sokoban.

    accelerate launch recipes/loop_sokoban.py --preset cpu        # the README demo (CPU, ~11 min)
    python recipes/loop_sokoban.py --preset cpu --rl.iterations 5  # same thing, one process
    accelerate launch recipes/loop_sokoban.py --model Qwen/Qwen2.5-7B-Instruct   # a real model

Stages (each skipped when its output already exists, so a killed demo picks up where it
stopped): build a tiny local model (when `--model local`), SFT it on solver
demonstrations (`--sft.steps 0` skips), then LOOP. Greedy success on held-out levels is
printed for the untrained model, after SFT and after RL. Every field can be overridden
(`--rl.learner.lr 1e-5`, `--env.num_boxes 2`); `--help` lists them.
"""
from __future__ import annotations

from agentrl.evaluation import EvalConfig
from agentrl.learner import LearnerConfig, LoraSettings
from agentrl.recipe import Recipe, main_guard, run_recipe
from agentrl.rollout import RolloutConfig
from agentrl.sft import SFTConfig
from agentrl.trainer import TrainConfig
from agentrl_sokoban import SokobanConfig


def paper_preset() -> Recipe:
    """LOOP's hyperparameters (AppWorld paper) on 2-box Sokoban, for a real model on GPUs."""
    env = SokobanConfig(width=8, height=8, num_boxes=2, max_solution_length=30, instructions=True)
    return Recipe(
        model="Qwen/Qwen2.5-7B-Instruct", output_dir="runs/loop_sokoban",
        rl=TrainConfig(
            env=env, iterations=200, tasks_per_iteration=40, rollouts_per_task=6,
            rollout=RolloutConfig(max_turns=40, max_new_tokens=512, temperature=1.0),
            learner=LearnerConfig(lr=5e-5, weight_decay=0.01, max_grad_norm=0.1, dtype="bfloat16"),
            eval=EvalConfig(every=10, tasks=200, temperature=0.0),
        ),
    )


def cpu_preset() -> Recipe:
    """The README demo: 1-box 6x6 levels, a ~1M-parameter model, two CPU cores.

    SFT on only 250 demonstrations, then 100 LOOP iterations: after SFT on 1,000, 100
    iterations left greedy success where it was, and from this start most of the gain comes
    after iteration 25 (README gives the runs, per seed).
    """
    env = SokobanConfig(width=6, height=6, num_boxes=1, max_inner_walls=3, max_solution_length=8,
                        crop_border=True, instructions=False)
    from agentrl.algorithms import LOOP

    return Recipe(
        model="local", output_dir="runs/loop_sokoban",
        sft=SFTConfig(tasks=250, steps=300, batch_size=64, lr=2e-3, warmup_steps=30),
        rl=TrainConfig(
            env=env, iterations=100, tasks_per_iteration=32, rollouts_per_task=8,
            checkpoint_every=10, save_episodes=8, trackers=["tensorboard"],
            # the current grid is the whole prompt: a 1M-parameter model can't use a long history
            rollout=RolloutConfig(max_turns=30, max_new_tokens=4, temperature=1.0, history=0),
            # LOOP's estimator, clip, aggregation and epochs; a task's rollouts share a minibatch
            # so their repeated states are computed once
            algorithm=LOOP(group_minibatches=True),
            learner=LearnerConfig(lr=1e-4, weight_decay=0.0, max_grad_norm=1.0, lora=LoraSettings(enabled=False)),
            eval=EvalConfig(every=25, tasks=200, temperature=0.0),
        ),
    )


PRESETS = {"paper": paper_preset, "cpu": cpu_preset}


def main(argv: list[str] | None = None) -> dict:
    return run_recipe(PRESETS, argv, prog="loop_sokoban.py")


if __name__ == "__main__":
    main_guard(main)
