"""LOOP on ALFWorld (the real TextWorld engine; generated games, or the real dataset under ALFWORLD_DATA).

    accelerate launch recipes/loop_alfworld.py --preset cpu       # tiny local model, a few iterations (plumbing)
    accelerate launch recipes/loop_alfworld.py                    # Qwen2.5-7B-Instruct, LOOP's hyperparameters
    accelerate launch recipes/loop_alfworld.py --model meta-llama/Llama-3.1-8B-Instruct --env.eval_split valid_seen

Without ALFWORLD_DATA the games are generated on first use from the alfworld package's own
PDDL domain, floor plans and goal templates (solvable by its hand-coded expert); with it,
ALFWorld's own train / valid_seen / valid_unseen splits are used unchanged. Every field
can be overridden (`--rl.learner.lr 1e-5`, `--env.max_steps 30`); `--help` lists them.
"""
from __future__ import annotations

from agentrl.algorithms import LOOP
from agentrl.evaluation import EvalConfig
from agentrl.learner import LearnerConfig, LoraSettings
from agentrl.recipe import LocalModel, Recipe, main_guard, run_recipe
from agentrl.rollout import RolloutConfig
from agentrl.sft import SFTConfig
from agentrl.trainer import TrainConfig
from agentrl_alfworld import AlfWorldConfig


def paper_preset() -> Recipe:
    """LOOP's hyperparameters (AppWorld paper) on all 6 ALFWorld task types, for a 7B model on GPUs:
    40 tasks x K=6 rollouts per iteration, AdamW lr 5e-5, grad clip 0.1, LoRA r=16/alpha=32."""
    return Recipe(
        model="Qwen/Qwen2.5-7B-Instruct", output_dir="runs/loop_alfworld",
        rl=TrainConfig(
            env=AlfWorldConfig(max_steps=50), iterations=200, tasks_per_iteration=40, rollouts_per_task=6,
            rollout=RolloutConfig(max_turns=50, max_new_tokens=128, temperature=1.0),
            algorithm=LOOP(),
            learner=LearnerConfig(lr=5e-5, weight_decay=0.01, max_grad_norm=0.1, dtype="bfloat16"),
            eval=EvalConfig(every=10, tasks=134, temperature=0.0),  # valid_unseen has 134 games
        ),
    )


def cpu_preset() -> Recipe:
    """Proves the plumbing on two CPU cores: a tiny local model, a short SFT on the expert's
    games, then a few LOOP iterations on the real engine. Not expected to learn ALFWorld."""
    return Recipe(
        model="local", output_dir="runs/loop_alfworld_cpu",
        # the tokenizer, SFT and RL all use the same 24 generated train games (generated once, cached)
        local_model=LocalModel(vocab_size=1024, corpus_tasks=24),
        sft=SFTConfig(tasks=24, steps=80, batch_size=16, lr=2e-3, warmup_steps=8),
        rl=TrainConfig(
            env=AlfWorldConfig(max_steps=50), iterations=3, tasks_per_iteration=4, rollouts_per_task=4,
            task_pool=24, checkpoint_every=1, save_episodes=4, trackers=["tensorboard"],
            # the system prompt carries the task; the prompt is it plus the current observation (with the
            # admissible commands): short prompts keep a CPU step cheap
            rollout=RolloutConfig(max_turns=50, max_new_tokens=16, temperature=1.0, history=0),
            algorithm=LOOP(),
            learner=LearnerConfig(lr=1e-4, weight_decay=0.0, max_grad_norm=1.0, lora=LoraSettings(enabled=False)),
            eval=EvalConfig(every=0, tasks=8, temperature=0.0),
        ),
    )


PRESETS = {"paper": paper_preset, "cpu": cpu_preset}


def main(argv: list[str] | None = None) -> dict:
    return run_recipe(PRESETS, argv, prog="loop_alfworld.py")


if __name__ == "__main__":
    main_guard(main)
