"""Dyna-Mind on Sokoban: ReSim SFT (recipes/resim_sokoban.py), then Dyna-GRPO.

    python recipes/dyna_grpo_sokoban.py --preset cpu      # tiny local model, 1-box 6x6 levels (CPU)
    accelerate launch recipes/dyna_grpo_sokoban.py        # a real model (Qwen2.5-7B-Instruct), LoRA

Dyna-GRPO (agentrl/algorithms/dyna_grpo.py) alternates simulation-improvement iterations, where
half of each task's rollouts run with SimRollout (the moves the policy simulated are executed in
the real env and it acts again knowing their real outcomes) and refinements that paid off are
trained on, with plain GRPO iterations. Reward as in the paper: -0.1 per step, +10 on solving.
`bench/dyna_vs_grpo.py` compares it with plain GRPO from the same ReSim start.
"""
from __future__ import annotations

from resim_sokoban import cpu_preset as resim_cpu_preset
from resim_sokoban import paper_preset as resim_paper_preset

from agentrl.algorithms import DynaGRPO
from agentrl.recipe import Recipe, main_guard, run_recipe

PAPER_REWARD = {"step_penalty": 0.1, "solve_reward": 10.0}


def paper_preset() -> Recipe:
    """ReSim distillation, then Dyna-GRPO with G = 8 (4 SimRollouts + 4 standard), n_T = n_pi = 1."""
    recipe = resim_paper_preset()
    recipe.output_dir = "runs/dyna_grpo_sokoban"
    for key, value in PAPER_REWARD.items():
        setattr(recipe.rl.env, key, value)
    recipe.rl.iterations = 200
    recipe.rl.algorithm = DynaGRPO(sim_fraction=0.5, sim_iterations=1, policy_iterations=1)
    return recipe


def cpu_preset() -> Recipe:
    """The ReSim cpu preset's model and SFT, then a short Dyna-GRPO run that fits two cores."""
    recipe = resim_cpu_preset()
    recipe.output_dir = "runs/dyna_grpo_sokoban"
    for key, value in PAPER_REWARD.items():
        setattr(recipe.rl.env, key, value)
    recipe.sft.resim_refine = 0.5  # a model this small needs to see s_refine once before SimRollout asks it to refine
    recipe.rl.env.progress_reward = 5.0  # partial credit (solver distance at the end): a signal where solves are rare
    rl = recipe.rl
    rl.iterations, rl.tasks_per_iteration, rl.rollouts_per_task = 8, 8, 8
    rl.rollout.max_turns = 20
    rl.algorithm = DynaGRPO(sim_fraction=0.5, sim_iterations=1, policy_iterations=1)
    rl.eval.every, rl.eval.tasks = 0, 100
    return recipe


PRESETS = {"paper": paper_preset, "cpu": cpu_preset}


def main(argv: list[str] | None = None) -> dict:
    return run_recipe(PRESETS, argv, prog="dyna_grpo_sokoban.py")


if __name__ == "__main__":
    main_guard(main)
