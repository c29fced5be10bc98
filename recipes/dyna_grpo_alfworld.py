"""Dyna-Mind on ALFWorld: ReSim SFT (recipes/resim_alfworld.py), then Dyna-GRPO on the real engine.

    accelerate launch recipes/dyna_grpo_alfworld.py --preset cpu   # tiny local model (plumbing, CPU)
    accelerate launch recipes/dyna_grpo_alfworld.py                # Qwen2.5-7B-Instruct, LoRA

SimRollout executes the commands the policy simulated by replaying the episode on the engine
(agentrl/sim_rollout.py); see recipes/dyna_grpo_sokoban.py for the method's settings.
"""
from __future__ import annotations

from resim_alfworld import cpu_preset as resim_cpu_preset
from resim_alfworld import paper_preset as resim_paper_preset

from agentrl.algorithms import DynaGRPO
from agentrl.recipe import Recipe, main_guard, run_recipe


def paper_preset() -> Recipe:
    recipe = resim_paper_preset()
    recipe.output_dir = "runs/dyna_grpo_alfworld"
    recipe.rl.iterations = 200
    recipe.rl.algorithm = DynaGRPO(sim_fraction=0.5, sim_iterations=1, policy_iterations=1)
    return recipe


def cpu_preset() -> Recipe:
    recipe = resim_cpu_preset()
    recipe.output_dir = "runs/dyna_grpo_alfworld_cpu"
    recipe.sft.resim_refine = 0.5  # see recipes/dyna_grpo_sokoban.py
    recipe.rl.iterations = 2
    recipe.rl.algorithm = DynaGRPO(sim_fraction=0.5, sim_iterations=1, policy_iterations=1)
    return recipe


PRESETS = {"paper": paper_preset, "cpu": cpu_preset}


def main(argv: list[str] | None = None) -> dict:
    return run_recipe(PRESETS, argv, prog="dyna_grpo_alfworld.py")


if __name__ == "__main__":
    main_guard(main)
