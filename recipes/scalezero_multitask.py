"""ScaleZero-style multi-task RL: one policy over several task families, task-routed LoRA experts
and Dynamic Parameter Scaling.

    accelerate launch recipes/scalezero_multitask.py --preset cpu   # tiny local model, 2 Sokoban variants + ALFWorld
    accelerate launch recipes/scalezero_multitask.py                # Qwen2.5-7B-Instruct, the paper-scale set-up
    accelerate launch recipes/scalezero_multitask.py --preset cpu --experts.per_family false --experts.shared true
    accelerate launch recipes/scalezero_multitask.py --preset cpu --env.families.alfworld.max_steps 20

Each family's episodes are generated and trained through its own LoRA adapter (vLLM serves all
of them in one engine, each request naming its family's adapter), so families cannot pull the
same weights apart. With `experts.stages > 1` a stage switch freezes every adapter trained so far
and adds a new zero-effect one per family with learnable scales in (0.8, 1.2); it fires when
ceil(unsolved / stages left) more families are solved, or after `experts.stage_iterations`.
Families whose running train success reaches `solved_threshold` stop collecting data; the others
share the batch with weights 1 - success. Per-family metrics are logged as `train/family/<f>/*`
and `eval/family/<f>/*`. Families are defined in code (below); their fields are flags
(`--env.families.<name>.<field>`).
"""
from __future__ import annotations

from agentrl.algorithms import LOOP
from agentrl.evaluation import EvalConfig
from agentrl.experts import ExpertsConfig
from agentrl.learner import LearnerConfig, LoraSettings
from agentrl.multitask import MultiTaskConfig
from agentrl.recipe import LocalModel, Recipe, main_guard, run_recipe
from agentrl.rollout import RolloutConfig
from agentrl.sft import SFTConfig
from agentrl.trainer import TrainConfig
from agentrl_alfworld import AlfWorldConfig
from agentrl_sokoban import SokobanConfig


def paper_preset() -> Recipe:
    """Sokoban at two difficulties plus all six ALFWorld task types, a 7B model, one LoRA expert per
    family in 3 DPS stages (each switch adds r=16 per family), LOOP's update."""
    families = {
        "sokoban_1box": SokobanConfig(width=8, height=8, num_boxes=1, max_solution_length=20),
        "sokoban_2box": SokobanConfig(width=8, height=8, num_boxes=2, max_solution_length=30),
        "alfworld": AlfWorldConfig(max_steps=50),
    }
    return Recipe(
        model="Qwen/Qwen2.5-7B-Instruct", output_dir="runs/scalezero_multitask",
        rl=TrainConfig(
            env=MultiTaskConfig(families=families), iterations=300, tasks_per_iteration=48, rollouts_per_task=6,
            solved_threshold=0.9,
            rollout=RolloutConfig(max_turns=50, max_new_tokens=256, temperature=1.0),
            algorithm=LOOP(),
            learner=LearnerConfig(lr=5e-5, weight_decay=0.01, max_grad_norm=0.1, dtype="bfloat16",
                                  lora=LoraSettings(r=16, alpha=32),
                                  experts=ExpertsConfig(enabled=True, per_family=True, stages=3, stage_iterations=100)),
            eval=EvalConfig(every=10, tasks=150, temperature=0.0),
        ),
    )


def cpu_families() -> dict:
    """Two Sokoban variants (short and long solutions: different skills on one board) and ALFWorld's
    pick-and-place games, small enough for two CPU cores."""
    board = dict(width=6, height=6, num_boxes=1, max_inner_walls=3, crop_border=True, instructions=False)
    return {
        "sokoban_short": SokobanConfig(**board, max_solution_length=3),
        "sokoban_long": SokobanConfig(**board, min_solution_length=4, max_solution_length=8),
        # 8 generated train games (cached after the first run), 4 held-out ones
        "alfworld": AlfWorldConfig(task_types=[1], max_steps=20, train_games_per_type=8, eval_games_per_type=4),
    }


def cpu_preset() -> Recipe:
    """A tiny local model SFT'd on every family's expert, then LOOP through per-family LoRA experts
    with 2 DPS stages. The base model is shared and fixed; all RL capacity is in the adapters."""
    return Recipe(
        model="local", output_dir="runs/scalezero_multitask_cpu",
        local_model=LocalModel(vocab_size=1024, corpus_tasks=24),
        # an ALFWorld game is ~10 long turns, a level 1-8 one-token moves: a quarter of the games keeps
        # the moves from being drowned out of the token-mean loss (and the steps cheap)
        sft=SFTConfig(tasks=1000, steps=300, batch_size=64, lr=2e-3, warmup_steps=30),
        rl=TrainConfig(
            env=MultiTaskConfig(families=cpu_families(), weights={"alfworld": 0.25}), iterations=12, tasks_per_iteration=12,
            rollouts_per_task=6, solved_threshold=0.8, checkpoint_every=4, save_episodes=6,
            trackers=["tensorboard"],
            # the current observation is the whole prompt (a 1M-parameter model can't use a history)
            rollout=RolloutConfig(max_turns=20, max_new_tokens=16, temperature=1.0, history=0),
            algorithm=LOOP(group_minibatches=True),
            # LoRA on a 128-wide model needs a far larger lr than full fine-tuning
            learner=LearnerConfig(lr=2e-3, weight_decay=0.0, max_grad_norm=1.0, lora=LoraSettings(r=8, alpha=16),
                                  experts=ExpertsConfig(enabled=True, per_family=True, stages=2, stage_iterations=6)),
            eval=EvalConfig(every=0, tasks=60, temperature=0.0),
        ),
    )


PRESETS = {"paper": paper_preset, "cpu": cpu_preset}


def main(argv: list[str] | None = None) -> dict:
    return run_recipe(PRESETS, argv, prog="scalezero_multitask.py")


if __name__ == "__main__":
    main_guard(main)
