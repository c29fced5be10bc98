"""A learner job for tests/test_distributed.py: run as one process, or under `accelerate launch`
with a launch/ config (DDP, DeepSpeed ZeRO-2/3). Same fixed batches either way.

    python tests/distributed_job.py MODEL OUT_DIR {lora,full}
    accelerate launch --config_file launch/deepspeed_zero3.yaml tests/distributed_job.py MODEL OUT_DIR full

Writes OUT_DIR/curve.json (the main process): per update the policy loss and grad norm, and
the exported weights' per-tensor sums and norms; OUT_DIR/final: the consolidated model;
OUT_DIR/export.safetensors: what an engine would be sent.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from agentrl.algorithms import GRPO, LOOP
from agentrl.algorithms.base import Batch, Sample
from agentrl.learner import Learner, LearnerConfig, LoraSettings


def fixed_batch(seed: int, episodes: int = 10, vocab: int = 100) -> Batch:
    """Episodes of 1-3 sequences of 6-23 tokens (the second half trained), random advantages."""
    g = torch.Generator().manual_seed(seed)
    samples = []
    for e in range(episodes):
        advantage = float(torch.randn((), generator=g))
        for _ in range(int(torch.randint(1, 4, (), generator=g))):
            length = int(torch.randint(6, 24, (), generator=g))
            ids = torch.randint(3, vocab, (length,), generator=g).tolist()
            mask = [0] * (length // 2) + [1] * (length - length // 2)
            samples.append(Sample(ids, mask, [0.0] * length, advantage, e))
    return Batch(samples, [None] * episodes)


def main(model: str, out_dir: str, mode: str) -> None:
    cfg = LearnerConfig(lr=3e-3, weight_decay=0.0, max_grad_norm=1.0,
                        max_tokens_per_microbatch=96,  # several microbatches per step, uneven across processes
                        lora=LoraSettings(enabled=mode == "lora", r=4, alpha=8))
    learner = Learner(model, cfg, seed=0)
    curve = []
    # LOOP: 2 epochs x 2 shuffled minibatches (the recompute pass, sharded); GRPO: one step from its own forward
    for u, algorithm in enumerate([LOOP(minibatch_episodes=5, min_abs_advantage=0.0)] * 3 + [GRPO()] * 2):
        stats = learner.update(fixed_batch(u), algorithm)
        curve.append({"loss": stats["loss/policy"], "grad_norm": stats["loss/grad_norm"],
                      "steps": stats["update/optimizer_steps"]})
    update = learner.export_weights()  # every process: ZeRO-3 gathers
    out = Path(out_dir)
    learner.save_pretrained(out / "final")
    if learner.accelerator.is_main_process:
        from safetensors.torch import save_file

        weights = {k: v.detach().float().cpu().contiguous() for k, v in update.state_dict.items()}
        save_file(weights, str(out / "export.safetensors"))
        summary = {k: [float(v.sum()), float(v.norm())] for k, v in weights.items()}
        (out / "curve.json").write_text(json.dumps({
            "processes": learner.accelerator.num_processes, "distributed_type": str(learner.accelerator.distributed_type),
            "curve": curve, "weights": summary, "kind": update.kind}))
    learner.accelerator.wait_for_everyone()
    # ZeRO-3 with 2 processes can abort in interpreter teardown (PLATFORM.md): leave now
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main(*sys.argv[1:4])
