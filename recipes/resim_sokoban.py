"""ReSim on Sokoban: SFT on "simulate, then act" traces from search trees grown in the real env.

    python recipes/resim_sokoban.py --preset cpu          # tiny local model, 1-box 6x6 levels (CPU)
    accelerate launch recipes/resim_sokoban.py            # a real model (Qwen2.5-7B-Instruct), LoRA

At every state of a training level, every move is executed in the real env from a snapshot
(breadth 4; depth 2 by default), leaves are valued by the solver's distance, and the trace the
policy learns lists each move's real next grid and value, then the best move
(`agentrl resim-data` writes the same traces as a chat dataset). The policy is then evaluated
greedily on held-out levels: success, and simulation accuracy (how often the grid it predicts
for the move it makes is the real next grid). `--rl.iterations N` continues with GRPO.
"""
from __future__ import annotations

from agentrl.algorithms import GRPO
from agentrl.evaluation import EvalConfig
from agentrl.learner import LearnerConfig, LoraSettings
from agentrl.recipe import LocalModel, Recipe, main_guard, run_recipe
from agentrl.rollout import RolloutConfig
from agentrl.sft import SFTConfig
from agentrl.trainer import TrainConfig
from agentrl_sokoban import SokobanConfig


def paper_preset() -> Recipe:
    """Dyna-Mind's Sokoban setting for a real model: ReSim distillation with LoRA, evaluation at temperature 0."""
    env = SokobanConfig(width=8, height=8, num_boxes=2, max_solution_length=30, instructions=True)
    return Recipe(
        model="Qwen/Qwen2.5-7B-Instruct", output_dir="runs/resim_sokoban",
        sft=SFTConfig(tasks=2000, steps=1000, batch_size=32, lr=1e-4, warmup_steps=50, demonstrations="resim",
                      resim_breadth=4, resim_depth=3, lora=LoraSettings(enabled=True)),
        rl=TrainConfig(
            env=env, iterations=0, tasks_per_iteration=32, rollouts_per_task=8,
            rollout=RolloutConfig(max_turns=40, max_new_tokens=1024, temperature=1.0),
            algorithm=GRPO(),
            learner=LearnerConfig(lr=1e-6, dtype="bfloat16"),
            eval=EvalConfig(every=10, tasks=200, temperature=0.0),
        ),
    )


def cpu_preset() -> Recipe:
    """The README demo's levels and model size, with ReSim traces instead of bare solver moves."""
    env = SokobanConfig(width=6, height=6, num_boxes=1, max_inner_walls=3, max_solution_length=8,
                        crop_border=True, instructions=False)
    return Recipe(
        model="local", output_dir="runs/resim_sokoban",
        local_model=LocalModel(vocab_size=512),
        sft=SFTConfig(tasks=1000, steps=300, batch_size=32, lr=2e-3, warmup_steps=30, demonstrations="resim",
                      resim_breadth=4, resim_depth=2),
        rl=TrainConfig(
            env=env, iterations=0, tasks_per_iteration=32, rollouts_per_task=8, checkpoint_every=5,
            rollout=RolloutConfig(max_turns=30, max_new_tokens=400, temperature=1.0, history=0),
            algorithm=GRPO(),
            learner=LearnerConfig(lr=1e-4, weight_decay=0.0, max_grad_norm=1.0, lora=LoraSettings(enabled=False)),
            eval=EvalConfig(every=5, tasks=200, temperature=0.0),
        ),
    )


PRESETS = {"paper": paper_preset, "cpu": cpu_preset}


def main(argv: list[str] | None = None) -> dict:
    return run_recipe(PRESETS, argv, prog="resim_sokoban.py")


if __name__ == "__main__":
    main_guard(main)
