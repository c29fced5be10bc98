"""What the learner and trainer need from accelerate/DeepSpeed to run on several processes.

Nothing here is a distributed layer of its own: processes come from `accelerate launch`
(or `torchrun`), gradients are reduced by DDP or DeepSpeed. This module only holds the
few rules our loop must follow on top:

- the main process rolls out; the batch is broadcast and each process trains its shard;
- every process runs the same number of forward/backward passes (ZeRO-3 gathers
  parameters collectively in each forward; DDP reduces in each synced backward), so
  shards are padded with zero-weight passes (`lockstep`);
- ZeRO-3 partitions parameters: weights leave the learner only inside `gathered`.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import torch

T = TypeVar("T")


def make_accelerator(**kwargs: Any):
    """An `Accelerator` that also works without CUDA: gloo for the process group, and DeepSpeed
    (from `accelerate launch --config_file launch/deepspeed_*.yaml`) not downgraded to plain CPU.
    (Without CUDA and without `cpu=True`, accelerate leaves the backend unset: one process.)"""
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    if not torch.cuda.is_available():
        deepspeed = kwargs.get("deepspeed_plugin") is not None or os.environ.get("ACCELERATE_USE_DEEPSPEED", "") == "true"
        # `cpu=True` would silently drop DeepSpeed; DeepSpeed without CUDA needs gloo named
        kwargs.setdefault("cpu", not deepspeed)
        launched = int(os.environ.get("LOCAL_RANK", -1)) != -1
        handlers = list(kwargs.pop("kwargs_handlers", None) or [])
        if deepspeed and launched and not any(isinstance(h, InitProcessGroupKwargs) for h in handlers):
            handlers.append(InitProcessGroupKwargs(backend="gloo"))
        kwargs["kwargs_handlers"] = handlers
    return Accelerator(**kwargs)


def uses_deepspeed(accelerator) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.DEEPSPEED


def zero_stage(accelerator) -> int:
    return int(accelerator.state.deepspeed_plugin.zero_stage) if uses_deepspeed(accelerator) else 0


def prepare_deepspeed_config(accelerator, max_grad_norm: float) -> None:
    """Fill the DeepSpeed config fields accelerate can't infer without a dataloader. The learner
    sizes its own (micro)batches and marks the accumulation boundary itself, so DeepSpeed's
    accumulation must be 1; `train_micro_batch_size_per_gpu` only feeds DeepSpeed's logs."""
    if not uses_deepspeed(accelerator):
        return
    plugin = accelerator.state.deepspeed_plugin
    config = plugin.deepspeed_config
    if config.get("train_micro_batch_size_per_gpu", "auto") == "auto":
        config["train_micro_batch_size_per_gpu"] = 1
    if config.get("train_batch_size", "auto") == "auto":
        config["train_batch_size"] = config["train_micro_batch_size_per_gpu"] * accelerator.num_processes
    accumulation = config.get("gradient_accumulation_steps", "auto")
    if accumulation not in ("auto", 1):
        raise ValueError(
            f"deepspeed config: gradient_accumulation_steps must be 1 or auto (got {accumulation}); "
            "the learner accumulates over learner.max_tokens_per_microbatch itself")
    config["gradient_accumulation_steps"] = 1
    if config.get("gradient_clipping", "auto") == "auto":
        config["gradient_clipping"] = max_grad_norm


def shard(items: Sequence[T], accelerator) -> list[T]:
    """This process's contiguous share of `items` (the first ones get one more when uneven)."""
    n, rank = accelerator.num_processes, accelerator.process_index
    size, extra = divmod(len(items), n)
    start = rank * size + min(rank, extra)
    return list(items[start: start + size + (rank < extra)])


def lockstep(chunks: list[list[T]], filler: list[T], accelerator) -> list[tuple[list[T], bool]]:
    """`chunks` padded with `(filler, False)` to the longest process's count, so every process runs
    as many passes as the others; a False pass must contribute nothing (scale its loss by 0)."""
    out = [(c, True) for c in chunks]
    if accelerator.num_processes == 1:
        return out
    counts = accelerator.gather(torch.tensor([len(chunks)], device=accelerator.device))
    return out + [(filler, False)] * (int(counts.max()) - len(chunks))


def all_gather_objects(items: list, accelerator) -> list:
    """Every process's `items`, concatenated in rank order, on every process."""
    if accelerator.num_processes == 1:
        return list(items)
    from accelerate.utils import gather_object

    return gather_object(list(items))


def broadcast_object(obj: T, accelerator) -> T:
    """The main process's `obj` on every process (rollouts, eval results)."""
    if accelerator.num_processes == 1:
        return obj
    from accelerate.utils import broadcast_object_list

    box = [obj if accelerator.is_main_process else None]
    broadcast_object_list(box, from_process=0)
    return box[0]


def mean_over_processes(metrics: dict[str, float], accelerator, summed: Sequence[str] = ()) -> dict[str, float]:
    """Each metric averaged over processes (those in `summed` added up), same keys everywhere."""
    if accelerator.num_processes == 1 or not metrics:
        return metrics
    keys = sorted(metrics)
    values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64, device=accelerator.device)
    total = accelerator.reduce(values, reduction="sum")
    n = accelerator.num_processes
    return {k: float(v) if k in summed else float(v) / n for k, v in zip(keys, total.tolist())}


@contextlib.contextmanager
def gathered(accelerator, parameters: list[torch.nn.Parameter]) -> Iterator[None]:
    """Inside, `parameters` hold their full values on every process (ZeRO-3 partitions them
    otherwise); a no-op elsewhere. Collective: every process must enter it."""
    if zero_stage(accelerator) == 3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(parameters, modifier_rank=None):
            yield
    else:
        yield


@contextlib.contextmanager
def unpartitioned(accelerator) -> Iterator[None]:
    """Models transformers builds inside are ordinary ones (under ZeRO-3 it partitions every
    model it builds); for consolidated copies made on one process."""
    if zero_stage(accelerator) != 3:
        yield
        return
    from transformers.integrations import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    try:
        yield
    finally:
        accelerator.state.deepspeed_plugin.set_deepspeed_weakref()
