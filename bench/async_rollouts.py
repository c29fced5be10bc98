"""Iteration throughput with asynchronous rollouts on vs off, on the CPU Sokoban demo's settings.

Both arms start from the same model with the same seeds, tasks and algorithm, one after the
other in this process, timed over all their iterations (the same work in both). With `async_rollouts` the next batch is generated while the learner trains, so an
iteration costs ~max(rollout, update) instead of their sum; how much of that survives depends
on whether the engine and the learner compete for the same cores.

    OMP_WAIT_POLICY=PASSIVE python bench/async_rollouts.py [--engine vllm] [--iterations 6] [--model PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))

from agentrl.engines import EngineConfig  # noqa: E402
from agentrl.evaluation import EvalConfig  # noqa: E402
from agentrl.trainer import Trainer  # noqa: E402


def seconds_per_iteration(rl, out: Path) -> tuple[float, dict]:
    """Mean wall seconds per iteration over all N (from the run's own log) and the time split.
    All N, not a window: both modes then do the same work (N collections, N updates); async's
    last iteration has nothing left to collect, so a window that includes it flatters async."""
    Trainer(replace(rl, output_dir=str(out))).fit()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "time/update_s" in r and r["iteration"] >= 1]
    per_it = [r["time/rollout_s"] + r["time/update_s"] for r in rows]
    return sum(per_it) / len(per_it), {k: sum(r[k] for r in rows) / len(rows) for k in ("time/rollout_s", "time/update_s")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="an HF checkpoint; default: build the demo's local model")
    p.add_argument("--engine", default="hf", choices=["hf", "vllm"])
    p.add_argument("--iterations", type=int, default=6)
    args = p.parse_args()

    import loop_sokoban

    recipe = loop_sokoban.cpu_preset()
    work = Path(tempfile.mkdtemp(prefix="bench-async-"))
    model = args.model
    if model is None:
        from agentrl.model_builder import build_local_model

        model = str(work / "model")
        lm = recipe.local_model
        build_local_model(model, env_configs=[recipe.rl.env], hidden_size=lm.hidden_size, num_layers=lm.layers,
                          num_heads=lm.heads, intermediate_size=lm.intermediate_size, vocab_size=lm.vocab_size)
    rl = replace(recipe.rl, model=model, iterations=args.iterations, trackers=[], checkpoint_every=0,
                 save_episodes=0, eval=EvalConfig(tasks=0), engine=EngineConfig(backend=args.engine))
    results = {}
    for name, on in (("sync", False), ("async", True)):
        t0 = time.perf_counter()
        results[name] = seconds_per_iteration(replace(rl, async_rollouts=on), work / name)
        print(f"[{name}] {args.iterations} iterations in {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"\nCPU Sokoban preset, {rl.tasks_per_iteration} tasks x K={rl.rollouts_per_task}, engine {args.engine}, "
          f"all {args.iterations} iterations:")
    print(f"{'mode':6} {'s/iteration':>12} {'rollout s':>10} {'update s':>9} {'iterations/min':>15}")
    for name, (sec, split) in results.items():
        print(f"{name:6} {sec:12.2f} {split['time/rollout_s']:10.2f} {split['time/update_s']:9.2f} {60 / sec:15.2f}")
    print(f"async / sync throughput: {results['sync'][0] / results['async'][0]:.2f}x "
          "(async: 'rollout s' is the wait for a batch still in flight; 'update s' includes the overlap)")


if __name__ == "__main__":
    main()
