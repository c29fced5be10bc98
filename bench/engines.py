"""HF engine vs vLLM engine on the same multi-turn Sokoban rollout batch, in one run.

Same model, same levels, same per-request seeds; each engine rolls out the batch once to
warm up, then `--repeats` times timed. Prints episodes/s and generated tokens/s for each
and the ratio vLLM/HF, for the full-conversation context (history=all: prompts grow each
turn, where vLLM's prefix cache helps) and the current-grid-only context (history=0).

    OMP_WAIT_POLICY=PASSIVE python bench/engines.py [--episodes 64] [--hidden 128 --layers 4]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from agentrl.engines import EngineConfig, make_engine  # noqa: E402
from agentrl.rollout import RolloutConfig, collect_sync  # noqa: E402
from agentrl.tasks import TaskSampler  # noqa: E402
from agentrl_sokoban import SokobanConfig  # noqa: E402


def rollout_rate(engine, env, tasks, k, rollout, repeats: int) -> dict[str, float]:
    collect_sync(engine, env, tasks, k, rollout, seed=1)  # warm-up (allocations, caches)
    episodes_n, tokens, seconds = 0, 0, 0.0
    for r in range(repeats):
        t0 = time.perf_counter()
        episodes = collect_sync(engine, env, tasks, k, rollout, seed=100 + r)
        seconds += time.perf_counter() - t0
        episodes_n += len(episodes)
        tokens += sum(len(t.completion_ids) for e in episodes for t in e.turns)
        failed = [e.failure_reason for e in episodes if e.failed]
        if failed:
            raise RuntimeError(f"{len(failed)} episodes failed, e.g. {failed[0]}")
    return {"episodes/s": episodes_n / seconds, "tokens/s": tokens / seconds, "tokens": tokens / episodes_n}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="an HF checkpoint; default: build the demo's local model")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--episodes", type=int, default=64)
    p.add_argument("--group", type=int, default=8, help="rollouts per level (K)")
    p.add_argument("--max-turns", type=int, default=20)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--compile", action="store_true", help="let vLLM compile the model (slower start)")
    p.add_argument("--workloads", default="all:4,0:4,all:32",
                   help="comma-separated HISTORY:MAX_NEW_TOKENS pairs (history all = whole conversation)")
    args = p.parse_args()

    env = SokobanConfig(width=6, height=6, num_boxes=1, max_inner_walls=3, max_solution_length=8, instructions=False)
    model = args.model
    if model is None:
        from agentrl.model_builder import build_local_model

        model = os.path.join(tempfile.mkdtemp(prefix="bench-engines-"), "model")
        build_local_model(model, env_configs=[env], hidden_size=args.hidden, num_layers=args.layers,
                          num_heads=max(2, args.hidden // 32), intermediate_size=3 * args.hidden)
    tasks = TaskSampler(env, args.episodes // args.group, seed=0).sample(0)
    workloads = {}
    for item in args.workloads.split(","):
        history, tokens = item.split(":")
        workloads[f"history={history},{tokens}tok"] = (None if history == "all" else int(history), int(tokens))
    results: dict[tuple[str, str], dict[str, float]] = {}
    for backend in ("hf", "vllm"):
        t0 = time.perf_counter()
        engine = make_engine(model, EngineConfig(backend=backend, enforce_eager=not args.compile), seed=0)
        start = time.perf_counter() - t0
        try:
            for name, (history, tokens) in workloads.items():
                rollout = RolloutConfig(max_turns=args.max_turns, max_new_tokens=tokens, temperature=1.0, history=history)
                results[(backend, name)] = rollout_rate(engine, env, tasks, args.group, rollout, args.repeats)
        finally:
            engine.close()
        print(f"{backend}: engine start {start:.1f}s", flush=True)

    print(f"\n{len(tasks) * args.group} concurrent episodes ({len(tasks)} levels x {args.group}), "
          f"up to {args.max_turns} turns, model {model}")
    print(f"{'workload':<22}{'engine':<7}{'episodes/s':>12}{'tokens/s':>11}{'tokens/ep':>11}")
    for name in workloads:
        for backend in ("hf", "vllm"):
            r = results[(backend, name)]
            print(f"{name:<22}{backend:<7}{r['episodes/s']:>12.2f}{r['tokens/s']:>11.0f}{r['tokens']:>11.1f}")
        ratio = results[("vllm", name)]["tokens/s"] / results[("hf", name)]["tokens/s"]
        print(f"{name:<22}{'ratio vLLM/HF':>18}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
