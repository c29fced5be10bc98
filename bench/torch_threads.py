"""One thread or two? torch's CPU thread count for the demo's ~1M-parameter model.

Runs the README demo's LOOP iteration (32 levels x 8 rollouts, the current grid as the
prompt, one full fine-tuning update over the episodes) in one process, alternating
torch.set_num_threads(2) and (1), and prints rollout and update seconds for each and the
ratio. The rollout engine is the HF engine (in this process, so its forwards use the same
threads) or vLLM (its own process: only the learner's threads change). Every episode is
kept for the update (advantage filter off), so the update does the same work whatever the
untrained model's rewards are.

    OMP_WAIT_POLICY=PASSIVE python bench/torch_threads.py [--engine hf vllm] [--repeats 2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))

import torch  # noqa: E402

from agentrl.engines import EngineConfig, make_engine  # noqa: E402
from agentrl.learner import Learner  # noqa: E402
from agentrl.rollout import collect_sync  # noqa: E402
from agentrl.tasks import TaskSampler  # noqa: E402


def one_iteration(engine, learner, algorithm, env, tasks, k, rollout) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    episodes = collect_sync(engine, env, tasks, k, rollout, seed=0)
    t1 = time.perf_counter()
    batch = algorithm.prepare(episodes)
    learner.update(batch, algorithm, rollout.temperature)
    return t1 - t0, time.perf_counter() - t1, sum(e.num_turns for e in episodes)


def main() -> None:
    import loop_sokoban

    recipe = loop_sokoban.cpu_preset()  # the demo's env, rollout, algorithm and learner settings
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="an HF checkpoint; default: build the demo's local model")
    p.add_argument("--engine", nargs="+", default=["hf", "vllm"], choices=["hf", "vllm"])
    p.add_argument("--levels", type=int, default=recipe.rl.tasks_per_iteration)
    p.add_argument("--group", type=int, default=recipe.rl.rollouts_per_task)
    p.add_argument("--repeats", type=int, default=2, help="rounds of (2 threads, 1 thread)")
    args = p.parse_args()

    env, rollout = recipe.rl.env, recipe.rl.rollout
    model = args.model
    if model is None:
        from agentrl.model_builder import build_local_model

        model = os.path.join(tempfile.mkdtemp(prefix="bench-threads-"), "model")
        lm = recipe.local_model
        build_local_model(model, env_configs=[env], hidden_size=lm.hidden_size, num_layers=lm.layers,
                          num_heads=lm.heads, intermediate_size=lm.intermediate_size, vocab_size=lm.vocab_size)
    tasks = TaskSampler(env, args.levels, seed=0).sample(0)
    algorithm = replace(recipe.rl.algorithm, min_abs_advantage=0.0)
    learner = Learner(model, recipe.rl.learner)
    default_threads = torch.get_num_threads()
    rows = []
    for backend in args.engine:
        engine = make_engine(model, EngineConfig(backend=backend), seed=0)
        try:
            one_iteration(engine, learner, algorithm, env, tasks, args.group, rollout)  # warm-up
            times: dict[int, list[tuple[float, float]]] = {2: [], 1: []}
            for _ in range(args.repeats):
                for threads in (2, 1):
                    torch.set_num_threads(threads)
                    roll, update, turns = one_iteration(engine, learner, algorithm, env, tasks, args.group, rollout)
                    times[threads].append((roll, update))
                    print(f"{backend} threads={threads}: rollout {roll:.2f}s ({turns} turns), update {update:.2f}s",
                          flush=True)
        finally:
            engine.close()
            torch.set_num_threads(default_threads)
        rows.append((backend, {t: (statistics.median(r for r, _ in v), statistics.median(u for _, u in v))
                               for t, v in times.items()}))

    print(f"\nLOOP iteration: {args.levels} levels x {args.group} rollouts, demo model {model}, median of "
          f"{args.repeats}")
    print(f"{'engine':<8}{'threads':>8}{'rollout s':>11}{'update s':>10}{'total s':>9}")
    for backend, by_threads in rows:
        for threads, (roll, update) in by_threads.items():
            print(f"{backend:<8}{threads:>8}{roll:>11.2f}{update:>10.2f}{roll + update:>9.2f}")
        (r2, u2), (r1, u1) = by_threads[2], by_threads[1]
        print(f"{backend:<8}{'2 threads / 1 thread':>28}: rollout {r2 / r1:.2f}x, update {u2 / u1:.2f}x, "
              f"iteration {(r2 + u2) / (r1 + u1):.2f}x")


if __name__ == "__main__":
    main()
