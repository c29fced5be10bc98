"""One shared LoRA against task-routed LoRA experts (and experts + DPS) on the multi-task CPU preset.

    OMP_WAIT_POLICY=PASSIVE python bench/multitask.py                      # the README table
    python bench/multitask.py --rl.iterations 2 --rl.eval.tasks 12         # a quick look

Everything comes from recipes/scalezero_multitask.py's cpu preset (two Sokoban variants and
ALFWorld; any field can be overridden as there). Stages are cached under --out:
  start/                      the tiny local model and its SFT on every family's expert
  shared/, experts/, dps/     RL from start/sft_model with the same tasks, seeds, iterations,
                              sampler and learner settings; only the adapters differ:
    (a) one LoRA every family trains (experts.per_family=false, shared=true)
    (b) one LoRA expert per family (experts.per_family=true)
    (c) (b) plus Dynamic Parameter Scaling (experts.stages=2)
Prints per-family greedy success on the same held-out tasks after RL, the environment steps
each family used (solved families stop collecting data), and the cosine between the per-family
gradients of each update (mean over updates; negative = conflict). With experts each family's
gradient lives in its own adapter, so (b)'s cosine is 0 by construction: the number shows the
conflict (a) has and experts remove, not a second measurement of it.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))

from scalezero_multitask import cpu_preset  # noqa: E402

from agentrl.config import parse_config  # noqa: E402
from agentrl.experts import ExpertsConfig  # noqa: E402
from agentrl.recipe import warm_start  # noqa: E402


def arms(recipe) -> dict[str, ExpertsConfig]:
    """The three adapter set-ups; DPS switches stage by ScaleZero's rule or halfway through."""
    preset = recipe.rl.learner.experts
    base = replace(preset, enabled=True, shared=False, stages=1, stage_iterations=0)
    return {
        "shared": replace(base, per_family=False, shared=True),
        "experts": replace(base, per_family=True),
        "dps": replace(base, per_family=True, stages=max(preset.stages, 2),
                       stage_iterations=preset.stage_iterations or max(recipe.rl.iterations // 2, 1)),
    }


LABELS = {"shared": "(a) one shared LoRA", "experts": "(b) LoRA experts", "dps": "(c) experts + DPS"}


def train_arm(recipe, start: str, out: Path, experts: ExpertsConfig) -> dict:
    """RL from `start` with `experts` into `out`; returns what the table needs (cached)."""
    from agentrl.trainer import Trainer

    summary_path = out / "summary.json"
    if summary_path.exists():
        return json.loads(summary_path.read_text())
    cfg = copy.deepcopy(recipe.rl)
    cfg.model, cfg.output_dir, cfg.trackers, cfg.resume = start, str(out), [], False
    cfg.learner.experts, cfg.learner.measure_gradient_conflict = experts, True
    cfg.eval.every = 0  # evaluated before and after RL only
    t0 = time.perf_counter()
    trainer = Trainer(cfg)
    final = trainer.fit()
    rows = trainer.log.history()
    train = [r for r in rows if "train/success_rate" in r]  # an update with no signal logs no loss
    families = list(cfg.env.families)
    cosines = [r["conflict/cosine_mean"] for r in train if "conflict/cosine_mean" in r]
    summary = {
        "seconds": time.perf_counter() - t0,
        "before": {f: next(r[f"eval/family/{f}/success_rate"] for r in rows
                           if r["iteration"] == 0 and f"eval/family/{f}/success_rate" in r) for f in families},
        "after": {f: final.get(f"eval/family/{f}/success_rate", 0.0) for f in families},
        "env_steps": {f: max((r.get(f"train/family/{f}/env_steps", 0.0) for r in train), default=0.0)
                      for f in families},  # cumulative
        "solved_at": {f: next((r["iteration"] for r in train if r.get(f"train/family/{f}/success_rate", 0.0)
                               >= cfg.solved_threshold), None) for f in families},
        "cosine_mean": sum(cosines) / len(cosines) if cosines else None,
        "cosine_min": min((r["conflict/cosine_min"] for r in train if "conflict/cosine_min" in r), default=None),
        "stage": train[-1].get("dps/stage", 0.0) if train else 0.0,
        "success_after": final.get("eval/success_rate", 0.0),
    }
    summary_path.write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench_multitask")
    args, overrides = parser.parse_known_args(argv)
    recipe = parse_config(cpu_preset(), overrides, prog="multitask.py")
    out = Path(args.out)
    (out / "start").mkdir(parents=True, exist_ok=True)
    _, start = warm_start(recipe, out / "start")
    results = {name: train_arm(recipe, start, out / name, experts) for name, experts in arms(recipe).items()}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print_table(results, recipe)
    return results


def print_table(results: dict, recipe) -> None:
    from rich.console import Console
    from rich.table import Table

    rl = recipe.rl
    families = list(rl.env.families)
    counts = rl.env.family_counts(rl.eval.tasks)
    table = Table(title=f"Greedy success on the same held-out tasks (before RL -> after); RL: "
                        f"{rl.iterations} iterations x {rl.tasks_per_iteration} tasks x {rl.rollouts_per_task} "
                        f"rollouts, same seeds; env steps = interactions each family used")
    table.add_column("arm", no_wrap=True)
    for f in families:
        table.add_column(f"{f} success ({counts[f]} tasks)")
        table.add_column(f"{f} env steps")
    for column in ("gradient cosine mean / min", "final stage", "RL wall time"):
        table.add_column(column)
    for name, r in results.items():
        cells = []
        for f in families:
            cells += [f"{r['before'][f]:.0%} -> {r['after'][f]:.0%}", f"{r['env_steps'][f]:.0f}"]
        cos = "-" if r["cosine_mean"] is None else f"{r['cosine_mean']:+.3f} / {r['cosine_min']:+.3f}"
        table.add_row(LABELS[name], *cells, cos, f"{r['stage']:.0f}", f"{r['seconds'] / 60:.1f} min")
    Console(width=220).print(table)


if __name__ == "__main__":
    main()
