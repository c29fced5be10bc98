"""ReSim on ALFWorld: SFT on "simulate, then act" traces from search trees grown in the real engine.

    accelerate launch recipes/resim_alfworld.py --preset cpu   # tiny local model (plumbing, CPU)
    accelerate launch recipes/resim_alfworld.py                # Qwen2.5-7B-Instruct, LoRA

The env snapshots by replaying its commands on the real TextWorld engine; candidates are the
admissible commands with the hand-coded expert's next one first, and a state's value is
0.9 ** (expert commands left) on the expert's plan (1 when won, 0 off the plan), so each trace
lists the real outcome of b commands and picks the best. `--rl.iterations N` continues with GRPO;
recipes/dyna_grpo_alfworld.py continues with Dyna-GRPO.
"""
from __future__ import annotations

from agentrl.algorithms import GRPO
from agentrl.evaluation import EvalConfig
from agentrl.learner import LearnerConfig, LoraSettings
from agentrl.recipe import LocalModel, Recipe, main_guard, run_recipe
from agentrl.rollout import RolloutConfig
from agentrl.sft import SFTConfig
from agentrl.trainer import TrainConfig
from agentrl_alfworld import AlfWorldConfig


def paper_preset() -> Recipe:
    """Dyna-Mind's ALFWorld setting for a real model: ReSim distillation with LoRA, greedy evaluation."""
    return Recipe(
        model="Qwen/Qwen2.5-7B-Instruct", output_dir="runs/resim_alfworld",
        sft=SFTConfig(tasks=2000, steps=1000, batch_size=32, lr=1e-4, warmup_steps=50, demonstrations="resim",
                      resim_breadth=4, resim_depth=2, lora=LoraSettings(enabled=True)),
        rl=TrainConfig(
            env=AlfWorldConfig(max_steps=50), iterations=0, tasks_per_iteration=32, rollouts_per_task=8,
            rollout=RolloutConfig(max_turns=50, max_new_tokens=1024, temperature=1.0),
            algorithm=GRPO(),
            learner=LearnerConfig(lr=1e-6, dtype="bfloat16"),
            eval=EvalConfig(every=10, tasks=134, temperature=0.0),  # valid_unseen has 134 games
        ),
    )


def cpu_preset() -> Recipe:
    """Proves the plumbing on two CPU cores (not expected to learn ALFWorld): 24 generated games, trees
    of 3 commands x depth 1, observations without the admissible-command list to keep traces short."""
    return Recipe(
        model="local", output_dir="runs/resim_alfworld_cpu",
        local_model=LocalModel(vocab_size=1024, corpus_tasks=24),
        sft=SFTConfig(tasks=24, steps=60, batch_size=8, lr=2e-3, warmup_steps=6, demonstrations="resim",
                      resim_breadth=3, resim_depth=1),
        rl=TrainConfig(
            env=AlfWorldConfig(max_steps=50, admissible_commands=False), iterations=0, tasks_per_iteration=4,
            rollouts_per_task=4, task_pool=24, checkpoint_every=1, save_episodes=4,
            rollout=RolloutConfig(max_turns=50, max_new_tokens=256, temperature=1.0, history=0),
            algorithm=GRPO(),
            learner=LearnerConfig(lr=1e-4, weight_decay=0.0, max_grad_norm=1.0, lora=LoraSettings(enabled=False)),
            eval=EvalConfig(every=0, tasks=8, temperature=0.0),
        ),
    )


PRESETS = {"paper": paper_preset, "cpu": cpu_preset}


def main(argv: list[str] | None = None) -> dict:
    return run_recipe(PRESETS, argv, prog="resim_alfworld.py")


if __name__ == "__main__":
    main_guard(main)
