"""How long does handing the learner's new weights to the rollout engine take?

For the demo-sized model (or `--model`): a LoRA adapter sync and a full-weight reload,
into the vLLM engine in this process, into a vLLM server over HTTP (`--server`), and into
the HF engine for comparison. Median of `--repeats` syncs, each a new version.

    OMP_WAIT_POLICY=PASSIVE python bench/weight_sync.py [--server] [--lora-rank 16]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from agentrl.engines import EngineConfig, make_engine  # noqa: E402
from agentrl.learner import Learner, LearnerConfig, LoraSettings  # noqa: E402


def median_sync_seconds(engine, learner: Learner, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        learner.version += 1
        update = learner.export_weights()
        t0 = time.perf_counter()
        engine.sync(update)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="an HF checkpoint; default: build the demo's local model")
    p.add_argument("--lora-rank", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--server", action="store_true", help="also time a vLLM server over HTTP")
    args = p.parse_args()

    model = args.model
    if model is None:
        from agentrl.model_builder import build_local_model
        from agentrl_sokoban import SokobanConfig

        model = os.path.join(tempfile.mkdtemp(prefix="bench-sync-"), "model")
        build_local_model(model, env_configs=[SokobanConfig(width=6, height=6, instructions=False)],
                          hidden_size=128, num_layers=4, num_heads=4, intermediate_size=384)
    learners = {
        "lora": Learner(model, LearnerConfig(lora=LoraSettings(r=args.lora_rank, alpha=2 * args.lora_rank))),
        "full": Learner(model, LearnerConfig(lora=LoraSettings(enabled=False))),
    }
    sizes = {kind: sum(v.numel() for v in lr.export_weights().state_dict.values()) for kind, lr in learners.items()}
    rows: list[tuple[str, str, float]] = []
    server = None
    try:
        targets = [("hf", EngineConfig(backend="hf")), ("vllm", EngineConfig(backend="vllm"))]
        if args.server:
            from agentrl.engines.vllm_launch import VLLMServer

            server = VLLMServer(model, dtype="float32", lora_rank=args.lora_rank, enforce_eager=True).start()
            targets.append(("vllm_server", EngineConfig(backend="vllm_server", urls=[server.url])))
        for name, cfg in targets:
            engine = make_engine(model, cfg, lora_rank=args.lora_rank)
            try:
                for kind, learner in learners.items():
                    rows.append((name, kind, median_sync_seconds(engine, learner, args.repeats)))
            finally:
                engine.close()
    finally:
        if server is not None:
            server.stop()
    print(f"\nmodel {model}: LoRA r={args.lora_rank} adapter {sizes['lora'] / 1e6:.2f}M params, "
          f"full {sizes['full'] / 1e6:.2f}M params; median of {args.repeats} syncs")
    print(f"{'engine':<13}{'update':<7}{'sync ms':>10}")
    for name, kind, seconds in rows:
        print(f"{name:<13}{kind:<7}{seconds * 1000:>10.1f}")


if __name__ == "__main__":
    main()
