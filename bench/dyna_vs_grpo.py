"""Dyna-GRPO against plain GRPO on Sokoban, from the same ReSim start, in one run.

    OMP_WAIT_POLICY=PASSIVE python bench/dyna_vs_grpo.py                  # the README table
    python bench/dyna_vs_grpo.py --rl.iterations 2 --rl.eval.tasks 20     # a quick look

Everything comes from recipes/dyna_grpo_sokoban.py's cpu preset (any of its fields can be
overridden as there). Stages are cached under --out (delete a directory to redo it):
  start/         the tiny local model and its ReSim SFT
  grpo/, dyna/   RL from start/sft_model: same tasks, seeds, iterations and learner settings;
                 only the algorithm differs (GRPO's settings are Dyna-GRPO's, minus SimRollout)
Then greedy success (and simulation accuracy) on the same held-out levels for (a) the base
model, (b) ReSim SFT, (c) ReSim + Dyna-GRPO, (d) ReSim + GRPO, and each RL arm's wall time.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))

from dyna_grpo_sokoban import cpu_preset  # noqa: E402

from agentrl.algorithms import GRPO  # noqa: E402
from agentrl.config import parse_config  # noqa: E402
from agentrl.evaluation import evaluate_checkpoint  # noqa: E402
from agentrl.recipe import warm_start  # noqa: E402

STAGES = ("base", "ReSim SFT", "ReSim + Dyna-GRPO", "ReSim + GRPO")


def train_arm(recipe, start: str, out: Path, algorithm) -> float:
    """RL from `start` with `algorithm` into `out`; returns the wall seconds it took (cached)."""
    from agentrl.trainer import Trainer

    timing = out / "wall_seconds.json"
    if (out / "final" / "config.json").exists() and timing.exists():
        return json.loads(timing.read_text())["seconds"]
    cfg = copy.deepcopy(recipe.rl)
    cfg.model, cfg.output_dir, cfg.algorithm, cfg.trackers = start, str(out), algorithm, []
    cfg.eval = dataclasses.replace(cfg.eval, tasks=0)  # evaluated below, all stages alike
    cfg.resume = (out / "checkpoints").exists()
    t0 = time.perf_counter()
    Trainer(cfg).fit()
    seconds = time.perf_counter() - t0 + (json.loads(timing.read_text())["seconds"] if timing.exists() else 0.0)
    timing.write_text(json.dumps({"seconds": seconds}))
    return seconds


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/dyna_vs_grpo")
    args, overrides = parser.parse_known_args(argv)
    recipe = parse_config(cpu_preset(), overrides, prog="dyna_vs_grpo.py")
    out = Path(args.out)
    (out / "start").mkdir(parents=True, exist_ok=True)
    base, start = warm_start(recipe, out / "start")
    seconds = {
        "ReSim + Dyna-GRPO": train_arm(recipe, start, out / "dyna", recipe.rl.algorithm),
        "ReSim + GRPO": train_arm(recipe, start, out / "grpo", GRPO(**{
            f.name: getattr(recipe.rl.algorithm, f.name) for f in dataclasses.fields(GRPO)})),
    }
    models = dict(zip(STAGES, (base, start, str(out / "dyna" / "final"), str(out / "grpo" / "final"))))
    cache = out / "results.json"
    results = json.loads(cache.read_text()) if cache.exists() else {}
    for stage, path in models.items():
        if stage not in results:
            results[stage], _ = evaluate_checkpoint(path, recipe.rl.engine, recipe.rl.env, recipe.rl.rollout,
                                                    recipe.rl.eval, recipe.rl.seed)
            cache.write_text(json.dumps(results, indent=2))
    print_table(results, seconds, recipe)
    return results


def print_table(results: dict, seconds: dict, recipe) -> None:
    from rich.console import Console
    from rich.table import Table

    rl = recipe.rl
    table = Table(title=f"Greedy success on {rl.eval.tasks} held-out levels; RL: {rl.iterations} iterations x "
                        f"{rl.tasks_per_iteration} levels x {rl.rollouts_per_task} rollouts, same seeds")
    table.add_column("stage", no_wrap=True)
    for column in ("success", "invalid actions", "simulation accuracy", "RL wall time"):
        table.add_column(column)
    for stage in STAGES:
        r = results[stage]
        sim = f"{r['sim_accuracy']:.1%}" if "sim_accuracy" in r else "-"
        wall = f"{seconds[stage] / 60:.1f} min" if stage in seconds else "-"
        table.add_row(stage, f"{r['success_rate']:.1%}", f"{r['invalid_action_rate']:.1%}", sim, wall)
    Console().print(table)
    ratio = seconds["ReSim + Dyna-GRPO"] / max(seconds["ReSim + GRPO"], 1e-9)
    print(f"Dyna-GRPO / GRPO wall time: {ratio:.2f}x", flush=True)


if __name__ == "__main__":
    main()
