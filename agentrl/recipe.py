"""What every recipe shares: a local tiny model, an optional SFT warm start, then RL.

A recipe file only defines presets (functions returning a `Recipe`) and calls
`run_recipe(PRESETS, prog=...)`. Stages are skipped when their output already exists,
so a killed run picks up where it stopped. Greedy success on held-out tasks is
printed for the untrained model (when there is an SFT stage), before RL and after RL.
Under `accelerate launch` with several processes the main process builds the model and
evaluates; SFT and RL run on every process.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agentrl.config import ConfigError, parse_config
from agentrl.sft import SFTConfig
from agentrl.trainer import TrainConfig


@dataclass
class LocalModel:
    """The tiny model built when `model` is "local" (no download needed)."""

    hidden_size: int = 128
    layers: int = 4
    heads: int = 4
    intermediate_size: int = 384
    vocab_size: int = 512
    corpus_tasks: int = 200  # train tasks the env's expert plays to give the tokenizer its text
    seed: int = 0


@dataclass
class Recipe:
    model: str = "local"  # "local" (built here) or any HF model id / checkpoint path
    output_dir: str = "runs/recipe"
    local_model: LocalModel = field(default_factory=LocalModel)
    sft: SFTConfig = field(default_factory=lambda: SFTConfig(steps=0))
    rl: TrainConfig = field(default_factory=TrainConfig)


def pop_preset(argv: list[str], default: str) -> tuple[str, list[str]]:
    """Take `--preset NAME` out of argv (the last one wins); the rest are config overrides."""
    name, rest, i = default, [], 0
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


def run_recipe(
    presets: dict[str, Callable[[], Recipe]], argv: list[str] | None = None, *, prog: str, default: str = "paper",
) -> dict[str, dict]:
    """Parse `--preset NAME` plus overrides, then build/SFT/RL; returns the greedy results per stage."""
    name, rest = pop_preset(list(sys.argv[1:] if argv is None else argv), default)
    if name not in presets:
        raise ConfigError(f"preset: unknown preset {name!r} (known: {', '.join(presets)})")
    recipe = parse_config(presets[name](), rest, prog=prog)
    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    from agentrl import distributed
    from agentrl.evaluation import evaluate_checkpoint
    from agentrl.trainer import Trainer

    accelerator = distributed.make_accelerator()  # the processes accelerate launched (one when run plainly)
    main = accelerator.is_main_process
    results: dict[str, dict] = {}

    def greedy_eval(stage: str, path: str) -> None:
        if not main:  # the main process owns the engines
            return
        with distributed.unpartitioned(accelerator):
            results[stage], _ = evaluate_checkpoint(path, recipe.rl.engine, recipe.rl.env, recipe.rl.rollout,
                                                    recipe.rl.eval, recipe.rl.seed)
        print(f"[{stage}] greedy success on {recipe.rl.eval.tasks} held-out tasks: "
              f"{results[stage]['success_rate']:.1%}", flush=True)

    base, model = warm_start(recipe, out, accelerator)
    if model != base:
        greedy_eval("untrained", base)

    recipe.rl.model = model
    recipe.rl.output_dir = str(out / "rl")
    recipe.rl.resume = recipe.rl.resume or (out / "rl" / "checkpoints").exists()
    trainer = Trainer(recipe.rl)
    results["after RL"] = {k.removeprefix("eval/"): v for k, v in trainer.fit().items()}
    history = [r for r in trainer.log.history() if r["iteration"] == 0 and "eval/success_rate" in r]
    if history:
        results["before RL"] = {k.removeprefix("eval/"): v for k, v in history[-1].items() if k.startswith("eval/")}
    if main:
        print_summary(results, recipe.rl.eval.tasks)
        (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


def warm_start(recipe: Recipe, out: Path, accelerator=None) -> tuple[str, str]:
    """(the untrained model, the model RL starts from): builds the local model when `model` is
    "local" (on the main process) and runs the SFT stage, each only when its output under
    `out` is missing."""
    model = recipe.model
    main = accelerator is None or accelerator.is_main_process
    if model == "local":
        model = str(out / "base_model")
        if main and not (out / "base_model" / "config.json").exists():
            from agentrl.model_builder import build_local_model

            lm = recipe.local_model
            extra: list[str] = []
            if recipe.sft.steps > 0 and recipe.sft.demonstrations == "resim":  # the tokenizer learns the trace words
                from agentrl.resim import resim_actions

                play = resim_actions(recipe.rl.env, recipe.sft.resim_breadth, recipe.sft.resim_depth)
                tasks = recipe.rl.env.tasks("train", min(20, lm.corpus_tasks), lm.seed)
                extra = [a for task in tasks for a in play(task) or []]
            build_local_model(model, env_configs=[recipe.rl.env], extra_texts=extra, vocab_size=lm.vocab_size,
                              seed=lm.seed,
                              n_tasks=lm.corpus_tasks,
                              hidden_size=lm.hidden_size, num_layers=lm.layers, num_heads=lm.heads,
                              intermediate_size=lm.intermediate_size)
    if accelerator is not None:
        accelerator.wait_for_everyone()
    base = model
    if recipe.sft.steps > 0:
        sft_dir = out / "sft_model"
        if not (sft_dir / "config.json").exists():
            from agentrl.sft import train_sft

            train_sft(model, recipe.rl.env, recipe.rl.rollout, recipe.sft, sft_dir)  # every process; main saves
        if accelerator is not None:
            accelerator.wait_for_everyone()
        model = str(sft_dir)
    return base, model


def print_summary(results: dict[str, dict], tasks: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Greedy success on {tasks} held-out tasks")
    sim = any("sim_accuracy" in r for r in results.values() if r)  # policies that write ReSim traces
    for col in ("stage", "success", "mean reward", "mean steps", "invalid actions", "loops") + (("simulation accuracy",) if sim else ()):
        table.add_column(col)
    for stage in ("untrained", "before RL", "after RL"):
        if results.get(stage):
            r = results[stage]
            row = [stage, f"{r['success_rate']:.1%}", f"{r['mean_reward']:.3f}", f"{r['mean_steps']:.1f}",
                   f"{r['invalid_action_rate']:.1%}", f"{r['loop_rate']:.1%}" if "loop_rate" in r else "-"]
            table.add_row(*row, *([f"{r['sim_accuracy']:.1%}" if "sim_accuracy" in r else "-"] if sim else []))
    Console().print(table)


def main_guard(run: Callable[[], object]) -> None:
    """Run a recipe's main; a bad config exits with the message naming the field, no traceback."""
    try:
        run()
    except ConfigError as exc:
        raise SystemExit(f"config error: {exc}")
