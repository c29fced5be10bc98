"""LOOP on Sokoban.

    accelerate launch recipes/loop_sokoban.py --preset cpu        # the README demo (CPU, ~10 min)
    python recipes/loop_sokoban.py --preset cpu --rl.iterations 5  # same thing, one process
    accelerate launch recipes/loop_sokoban.py --model Qwen/Qwen2.5-7B-Instruct   # a real model

Stages (each skipped when its output already exists, so a killed demo picks up where it
stopped): build a tiny local model (when `--model local`), SFT it on solver
demonstrations (`--sft.steps 0` skips), then LOOP. Greedy success on held-out levels is
printed for the untrained model, after SFT and after RL. Every field can be overridden
(`--rl.learner.lr 1e-5`, `--env.num_boxes 2`); `--help` lists them.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from agentrl.config import ConfigError, parse_config
from agentrl.evaluation import EvalConfig
from agentrl.learner import LearnerConfig, LoraSettings
from agentrl.rollout import RolloutConfig
from agentrl.sft import SFTConfig
from agentrl.trainer import TrainConfig
from agentrl_sokoban import SokobanConfig


@dataclass
class LocalModel:
    """The tiny model built when `model` is "local" (no download needed)."""

    hidden_size: int = 128
    layers: int = 4
    heads: int = 4
    intermediate_size: int = 384
    vocab_size: int = 512
    seed: int = 0


@dataclass
class Recipe:
    model: str = "local"  # "local" (built here) or any HF model id / checkpoint path
    output_dir: str = "runs/loop_sokoban"
    local_model: LocalModel = field(default_factory=LocalModel)
    sft: SFTConfig = field(default_factory=lambda: SFTConfig(steps=0))
    rl: TrainConfig = field(default_factory=TrainConfig)


def paper_preset() -> Recipe:
    """LOOP's hyperparameters (AppWorld paper) on 2-box Sokoban, for a real model on GPUs."""
    env = SokobanConfig(width=8, height=8, num_boxes=2, max_solution_length=30, instructions=True)
    return Recipe(
        model="Qwen/Qwen2.5-7B-Instruct",
        rl=TrainConfig(
            env=env, iterations=200, tasks_per_iteration=40, rollouts_per_task=6,
            rollout=RolloutConfig(max_turns=40, max_new_tokens=512, temperature=1.0),
            learner=LearnerConfig(lr=5e-5, weight_decay=0.01, max_grad_norm=0.1, dtype="bfloat16"),
            eval=EvalConfig(every=10, tasks=200, temperature=0.0),
        ),
    )


def cpu_preset() -> Recipe:
    """The README demo: 1-box 6x6 levels, a ~1M-parameter model, two CPU cores.

    SFT saturates after ~300 steps on 1,000 demonstrations (800 steps gave the same
    held-out success), so the rest of the budget goes to LOOP on fresh levels.
    """
    env = SokobanConfig(width=6, height=6, num_boxes=1, max_inner_walls=3, max_solution_length=8,
                        crop_border=True, instructions=False)
    from agentrl.algorithms import LOOP

    return Recipe(
        model="local",
        sft=SFTConfig(tasks=1000, steps=300, batch_size=64, lr=2e-3, warmup_steps=30),
        rl=TrainConfig(
            env=env, iterations=40, tasks_per_iteration=32, rollouts_per_task=8,
            checkpoint_every=5, save_episodes=8, trackers=["tensorboard"],
            # the current grid is the whole prompt: a 1M-parameter model can't use a long history
            rollout=RolloutConfig(max_turns=30, max_new_tokens=4, temperature=1.0, history=0),
            # LOOP's estimator, clip, aggregation and epochs; a task's rollouts share a minibatch
            # so their repeated states are computed once
            algorithm=LOOP(group_minibatches=True),
            learner=LearnerConfig(lr=1e-4, weight_decay=0.0, max_grad_norm=1.0, lora=LoraSettings(enabled=False)),
            eval=EvalConfig(every=5, tasks=200, temperature=0.0),
        ),
    )


PRESETS = {"paper": paper_preset, "cpu": cpu_preset}


def _pop_preset(argv: list[str]) -> tuple[str, list[str]]:
    """Take `--preset NAME` out of argv (the last one wins); the rest are config overrides."""
    name, rest, i = "paper", [], 0
    while i < len(argv):
        if argv[i] == "--preset" and i + 1 < len(argv):
            name, i = argv[i + 1], i + 2
            continue
        if argv[i].startswith("--preset="):
            name = argv[i].split("=", 1)[1]
        else:
            rest.append(argv[i])
        i += 1
    return name, rest


def main(argv: list[str] | None = None) -> dict:
    name, rest = _pop_preset(list(sys.argv[1:] if argv is None else argv))
    if name not in PRESETS:
        raise ConfigError(f"preset: unknown preset {name!r} (known: {', '.join(PRESETS)})")
    recipe = parse_config(PRESETS[name](), rest, prog="loop_sokoban.py")
    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    from agentrl.evaluation import evaluate_checkpoint
    from agentrl.trainer import Trainer

    model = recipe.model
    if model == "local":
        model = str(out / "base_model")
        if not (out / "base_model" / "config.json").exists():
            from agentrl.model_builder import build_local_model

            lm = recipe.local_model
            build_local_model(model, env_configs=[recipe.rl.env], vocab_size=lm.vocab_size, seed=lm.seed,
                              hidden_size=lm.hidden_size, num_layers=lm.layers, num_heads=lm.heads,
                              intermediate_size=lm.intermediate_size)
    results: dict[str, dict] = {}

    def greedy_eval(stage: str, path: str) -> None:
        results[stage], _ = evaluate_checkpoint(path, recipe.rl.engine, recipe.rl.env, recipe.rl.rollout,
                                                recipe.rl.eval, recipe.rl.seed)
        print(f"[{stage}] greedy success on {recipe.rl.eval.tasks} held-out levels: "
              f"{results[stage]['success_rate']:.1%}", flush=True)

    if recipe.sft.steps > 0:
        greedy_eval("untrained", model)
        sft_dir = out / "sft_model"
        if not (sft_dir / "config.json").exists():
            from agentrl.sft import train_sft

            train_sft(model, recipe.rl.env, recipe.rl.rollout, recipe.sft, sft_dir)
        model = str(sft_dir)

    recipe.rl.model = model
    recipe.rl.output_dir = str(out / "rl")
    recipe.rl.resume = recipe.rl.resume or (out / "rl" / "checkpoints").exists()
    trainer = Trainer(recipe.rl)
    results["after RL"] = {k.removeprefix("eval/"): v for k, v in trainer.fit().items()}
    history = [r for r in trainer.log.history() if r["iteration"] == 0 and "eval/success_rate" in r]
    if history:
        results["before RL"] = {k.removeprefix("eval/"): v for k, v in history[-1].items() if k.startswith("eval/")}
    _print_summary(results, recipe)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


def _print_summary(results: dict[str, dict], recipe: Recipe) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Greedy success on {recipe.rl.eval.tasks} held-out Sokoban levels")
    for col in ("stage", "success", "mean reward", "mean steps", "invalid actions"):
        table.add_column(col)
    for stage in ("untrained", "before RL", "after RL"):
        if results.get(stage):
            r = results[stage]
            table.add_row(stage, f"{r['success_rate']:.1%}", f"{r['mean_reward']:.3f}", f"{r['mean_steps']:.1f}",
                          f"{r['invalid_action_rate']:.1%}")
    Console().print(table)


if __name__ == "__main__":
    try:
        main()
    except ConfigError as exc:
        raise SystemExit(f"config error: {exc}")
