"""How much of a rollout's wall time is the framework's own overhead?

Runs batches of Sokoban episodes with the HF engine and splits wall time into
model generation (the engine's batched forward passes), env calls (reset/step in
worker threads) and everything else: the framework (event loop, batching, chat
templates, bookkeeping). Generation and env calls overlap, so the covered time is
the union of their intervals; overhead = 1 - union / wall.

    OMP_WAIT_POLICY=PASSIVE python bench/rollout_overhead.py [--model DIR] [--episodes 64 256]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from dataclasses import dataclass

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from agentrl.engines.hf import HFEngine  # noqa: E402
from agentrl.rollout import RolloutConfig, collect_sync  # noqa: E402
from agentrl_sokoban import SokobanConfig, SokobanEnv  # noqa: E402

INTERVALS: list[tuple[str, float, float]] = []
_LOCK = threading.Lock()


def _timed(kind: str, fn, *args):
    t0 = time.perf_counter()
    try:
        return fn(*args)
    finally:
        with _LOCK:
            INTERVALS.append((kind, t0, time.perf_counter()))


class TimedSokobanEnv(SokobanEnv):
    def reset(self, task):
        return _timed("env", super().reset, task)

    def step(self, action):
        return _timed("env", super().step, action)


@dataclass
class TimedSokobanConfig(SokobanConfig):
    def make(self):
        return TimedSokobanEnv(self)


class TimedEngine(HFEngine):
    def generate_batch(self, requests):
        return _timed("generate", super().generate_batch, requests)


def union_length(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def measure(engine: TimedEngine, env: SokobanConfig, n_episodes: int, cfg: RolloutConfig, k: int = 8) -> dict:
    tasks = env.tasks("train", max(n_episodes // k, 1), seed=n_episodes)
    INTERVALS.clear()
    t0 = time.perf_counter()
    episodes = collect_sync(engine, env, tasks, k, cfg, seed=0)
    wall = time.perf_counter() - t0
    gen = [(a, b) for kind, a, b in INTERVALS if kind == "generate"]
    envs = [(a, b) for kind, a, b in INTERVALS if kind == "env"]
    covered = union_length(gen + envs)
    return {
        "episodes": len(episodes), "turns": sum(e.num_turns for e in episodes), "wall_s": wall,
        "generate_pct": 100 * union_length(gen) / wall, "env_pct": 100 * union_length(envs) / wall,
        "overhead_pct": 100 * (1 - covered / wall),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="checkpoint dir (default: build a tiny local model)")
    parser.add_argument("--episodes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    env = TimedSokobanConfig(width=6, height=6, num_boxes=1, instructions=False)
    with tempfile.TemporaryDirectory(prefix="bench-model-") as scratch:
        model = args.model
        if model is None:
            from agentrl.model_builder import build_local_model

            model = str(build_local_model(scratch, env_configs=[env], n_tasks=100))
        run(TimedEngine(model), env, args)


def run(engine: TimedEngine, env: SokobanConfig, args: argparse.Namespace) -> None:
    model = engine.model.name_or_path
    print(f"model: {model}  (torch threads: {__import__('torch').get_num_threads()})")
    print(f"{'history':>8} {'episodes':>8} {'turns':>6} {'wall s':>7} {'turns/s':>8} {'generate %':>10} {'env %':>6} {'overhead %':>10}")
    try:
        for history in (0, None):
            cfg = RolloutConfig(max_turns=16, max_new_tokens=4, temperature=1.0, history=history)
            measure(engine, env, 16, cfg)  # warm-up
            for n in (args.episodes if history == 0 else args.episodes[:1]):  # full history is slow on HF
                runs = [measure(engine, env, n, cfg) for _ in range(args.repeats)]
                best = min(runs, key=lambda r: r["overhead_pct"])
                print(f"{str(history):>8} {best['episodes']:>8} {best['turns']:>6} {best['wall_s']:>7.2f} "
                      f"{best['turns'] / best['wall_s']:>8.0f} {best['generate_pct']:>10.1f} {best['env_pct']:>6.1f} "
                      f"{best['overhead_pct']:>10.1f}")
    finally:
        engine.close()
    print("overhead % = share of wall time outside model generation and env calls (framework cost).")


if __name__ == "__main__":
    main()
