"""Engines: where rollouts' tokens come from. `make_engine` builds one from an `EngineConfig`."""
from __future__ import annotations

from dataclasses import dataclass

from agentrl.engines.base import Completion, Engine, SamplingParams, WeightUpdate


@dataclass
class EngineConfig:
    backend: str = "hf"
    dtype: str = "float32"
    max_batch_size: int = 256
    max_model_len: int | None = None

    def validate(self) -> None:
        if self.backend not in ("hf",):
            raise ValueError(f"backend must be one of: hf (got {self.backend!r})")


def make_engine(model: str, cfg: EngineConfig, seed: int = 0) -> Engine:
    from agentrl.engines.hf import HFEngine

    return HFEngine(model, dtype=cfg.dtype, max_batch_size=cfg.max_batch_size, max_model_len=cfg.max_model_len, seed=seed)


__all__ = ["Completion", "Engine", "EngineConfig", "SamplingParams", "WeightUpdate", "make_engine"]
