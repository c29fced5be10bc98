"""Learner throughput and MFU: tokens/s and FLOP/s of `Learner.update` vs this machine's matmul peak.

Builds a ~28M-parameter Qwen2 (untied, Sokoban tokenizer), times `Learner.update` (GRPO: one
one forward+backward+AdamW step; the learner reuses that forward for the old logprobs, since an
update of one optimizer step starts from the current policy) on random
token ids, and measures torch's matmul peak in the same process with the same thread count,
for fp32 and bf16. Model FLOPs = 6 N per token (N = non-embedding parameters: the input
embedding is a lookup; lm_head is counted at every position although the learner projects only
positions before a trained token, <1% here; 4 N with LoRA, whose frozen weights get no gradient;
adapter FLOPs ignored); hardware FLOPs add a recompute forward (2 N) where the learner runs one,
and the attention-score matmuls (4 L d T per token per forward, twice that for the backward,
causal mask not discounted).

    OMP_WAIT_POLICY=PASSIVE python bench/mfu.py [--hidden 512 --layers 8 --batch 8 --seq 512 --repeats 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from agentrl.algorithms import GRPO  # noqa: E402
from agentrl.algorithms.base import Batch, Sample  # noqa: E402
from agentrl.learner import Learner, LearnerConfig, LoraSettings  # noqa: E402
from agentrl.model_builder import build_local_model  # noqa: E402
from agentrl_sokoban import SokobanConfig  # noqa: E402


def matmul_peak(dtype: torch.dtype, largest: int, seconds: float = 1.0) -> tuple[float, int]:
    """Best FLOP/s of n x n x n matmuls a @ b.T (nn.Linear's layout) for n = 256, 512, ... up to `largest`,
    and the n that gave it; stops growing n once one matmul takes over a second. Without native bf16
    (AVX2) torch's fallback bf16 gemm is slow and layout-dependent: a @ b runs 4-6x slower than a @ b.T."""
    best, best_n, n = 0.0, 0, 256
    while n <= largest:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype).t()
        torch.mm(a, b)  # warm-up
        times: list[float] = []
        while sum(times) < seconds or len(times) < 2:
            t0 = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - t0)
        if 2 * n**3 / min(times) > best:
            best, best_n = 2 * n**3 / min(times), n
        if min(times) > 1.0:
            break
        n *= 2
    return best, best_n


def random_batch(vocab: int, batch: int, seq: int, prompt: int, seed: int) -> Batch:
    """`batch` distinct random sequences (so the learner's dedup never applies), loss on the completion."""
    gen = torch.Generator().manual_seed(seed)
    samples = [Sample(torch.randint(4, vocab, (seq,), generator=gen).tolist(), [0] * prompt + [1] * (seq - prompt),
                      [0.0] * seq, 1.0 if i % 2 else -1.0, i) for i in range(batch)]
    return Batch(samples, [None] * batch)


def time_updates(model_dir: str, dtype: str, lora: bool, args: argparse.Namespace) -> tuple[float, int, int, bool]:
    """Seconds per `update` (median over repeats, one warm-up first), trainable and non-embedding params,
    and whether the learner ran a separate no-grad pass for the old logprobs."""
    learner = Learner(model_dir, LearnerConfig(lr=1e-5, dtype=dtype, lora=LoraSettings(enabled=lora)), seed=0)
    net = learner.accelerator.unwrap_model(learner.model)
    embedding = net.get_input_embeddings().weight
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    non_embedding = sum(p.numel() for n, p in net.named_parameters() if p is not embedding and "lora_" not in n)
    vocab = embedding.shape[0]
    algorithm = GRPO()  # epochs=1, minibatch=whole batch: one optimizer step per update
    warmup = random_batch(vocab, args.batch, args.seq, args.prompt, seed=0)
    recomputes = not learner._one_step_from_current_policy(warmup, algorithm, len(warmup.episodes))
    learner.update(warmup, algorithm)
    times = []
    for r in range(args.repeats):
        batch = random_batch(vocab, args.batch, args.seq, args.prompt, seed=1 + r)
        t0 = time.perf_counter()
        learner.update(batch, algorithm)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), trainable, non_embedding, recomputes


def fmt(flops: float) -> str:
    return f"{flops / 1e9:.1f} G"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--intermediate", type=int, default=1536)
    p.add_argument("--batch", type=int, default=8, help="sequences per update")
    p.add_argument("--seq", type=int, default=512, help="tokens per sequence")
    p.add_argument("--prompt", type=int, default=256, help="leading tokens without loss (the rest is the completion)")
    p.add_argument("--repeats", type=int, default=3, help="timed updates per setting (after one warm-up)")
    p.add_argument("--matmul", type=int, default=2048, help="n of the n^3 peak matmul")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    p.add_argument("--no-lora", action="store_true", help="skip the LoRA rows")
    p.add_argument("--max-update-s", type=float, default=60.0,
                   help="skip a dtype whose update would take longer than this at its measured matmul peak")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(build_local_model(tmp, [SokobanConfig()], n_tasks=20, hidden_size=args.hidden,
                                          num_layers=args.layers, num_heads=args.heads,
                                          intermediate_size=args.intermediate))
        tokens = args.batch * args.seq
        attention = 4 * args.layers * args.hidden * args.seq  # per token per forward: QK^T and AV
        rows, skipped = [], []
        rough_n = args.layers * (4 * args.hidden**2 + 3 * args.hidden * args.intermediate)
        for dtype in args.dtypes:
            peak, peak_n = matmul_peak(getattr(torch, dtype), args.matmul)
            at_least = tokens * (6 * rough_n + 3 * attention) / peak  # seconds per update if it ran at peak
            if at_least > args.max_update_s:
                skipped.append(f"{dtype}: learner skipped, one update would take at least {at_least:,.1f} s at the "
                               f"measured matmul peak of {fmt(peak)}FLOP/s ({peak_n}^3; --max-update-s "
                               f"{args.max_update_s:g})")
                continue
            for lora in [False] + ([] if args.no_lora else [True]):
                seconds, trainable, n, recomputes = time_updates(model_dir, dtype, lora, args)
                rate = tokens / seconds
                # frozen weights (LoRA) need no weight gradients: forward+backward is 4N, not 6N
                train = (4 if lora else 6) * n
                rows.append((dtype, "LoRA r=16" if lora else "full", trainable, rate, train * rate,
                             ((2 * n + attention) * recomputes + train + 3 * attention) * rate, peak, peak_n, n,
                             recomputes))

    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, cpu capability "
          f"{torch.backends.cpu.get_cpu_capability()}; batch {args.batch} x {args.seq} tokens "
          f"({args.seq - args.prompt} with loss), median of {args.repeats} updates after 1 warm-up")
    n_text = f"{rows[0][8] / 1e6:.2f}M" if rows else "?"
    print(f"model: N = {n_text} non-embedding params (hidden {args.hidden}, {args.layers} layers, intermediate "
          f"{args.intermediate}); model FLOPs = 6N per token (4N with LoRA), hardware adds attention (+2N where recomputed)\n")
    print("| dtype | weights | trainable params | tokens/s | model FLOP/s (6N; LoRA 4N) "
          "| recompute pass | hardware FLOP/s | matmul peak | MFU | HFU |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for dtype, kind, trainable, rate, model, hardware, peak, peak_n, _, recomputes in rows:
        print(f"| {dtype} | {kind} | {trainable / 1e6:.2f}M | {rate:,.0f} | {fmt(model)} | {'yes' if recomputes else 'no'} "
              f"| {fmt(hardware)} "
              f"| {fmt(peak)} ({peak_n}^3) | {model / peak:.1%} | {hardware / peak:.1%} |")
    for line in skipped:
        print(line)


if __name__ == "__main__":
    main()
