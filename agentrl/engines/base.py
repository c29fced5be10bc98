"""The engine interface: token ids in, token ids + behaviour logprobs out."""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    seed: int | None = None  # per request: the same seed gives the same sample, batched or not
    stop_token_ids: list[int] = field(default_factory=list)  # besides the tokenizer's eos
    route: str = ""  # which adapter serves the request (a task family's LoRA expert); "" = the default

    def validate(self) -> None:
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")


@dataclass
class Completion:
    token_ids: list[int]
    logprobs: list[float]  # logprob of each sampled token under the sampling distribution
    finish_reason: str  # "stop" (eos/stop token, included in token_ids) or "length"


@dataclass
class WeightUpdate:
    """New policy weights for an engine: a LoRA adapter or a full state dict.

    `version` counts learner updates so engines and logs can tell policies apart.
    """

    kind: str  # "lora" | "full"
    state_dict: dict[str, Any]
    version: int
    peft_config: Any = None  # peft.LoraConfig when kind == "lora"
    route: str = ""  # the requests this adapter serves (SamplingParams.route); "" = all without their own

    def save(self, directory: str | Path) -> Path:
        """Write as a peft adapter dir or a safetensors file (for servers that load from disk)."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.state_dict.items()}
        if self.kind == "lora":
            self.peft_config.save_pretrained(str(directory))
            save_file(tensors, str(directory / "adapter_model.safetensors"))
        else:
            save_file(tensors, str(directory / "model.safetensors"))
        return directory

    @classmethod
    def load_adapter(cls, directory: str | Path, route: str = "", version: int = 0) -> WeightUpdate:
        """A LoRA update from a peft adapter dir (as `save` writes it)."""
        from peft import LoraConfig
        from safetensors.torch import load_file

        directory = Path(directory)
        return cls("lora", load_file(str(directory / "adapter_model.safetensors")), version,
                   LoraConfig.from_pretrained(str(directory)), route)


ADAPTERS_DIR = "adapters"  # a multi-task checkpoint's served adapters, one subdirectory per route
DEFAULT_ROUTE_DIR = "default"  # the subdirectory of route "" (one adapter every request uses)


def save_routed_adapters(updates: list[WeightUpdate], model: str | Path) -> None:
    """Write each route's adapter under `<model>/adapters/<route>/`, for `routed_adapters`."""
    for update in updates:
        update.save(Path(model) / ADAPTERS_DIR / (update.route or DEFAULT_ROUTE_DIR))


def routed_adapter_dirs(model: str | Path) -> dict[str, Path]:
    """Route -> adapter directory of a multi-task checkpoint, as `save_routed_adapters` wrote them;
    {} for any other model."""
    root = Path(model) / ADAPTERS_DIR
    if not root.is_dir():
        return {}
    return {("" if d.name == DEFAULT_ROUTE_DIR else d.name): d for d in sorted(root.iterdir())
            if (d / "adapter_model.safetensors").exists()}


def routed_adapters(model: str | Path) -> list[WeightUpdate]:
    """The per-route adapters a multi-task checkpoint carries (LoRA experts: the base model's
    weights are the checkpoint itself); [] for any other model."""
    return [WeightUpdate.load_adapter(d, route) for route, d in routed_adapter_dirs(model).items()]


def serving(served: dict[str, Any], route: str) -> Any:
    """What serves a request of `route`: its own adapter, else the default ("") one, else None."""
    return served.get(route, served.get(""))


class Engine(abc.ABC):
    """Generates completions for token-id prompts; many calls may be in flight at once."""

    tokenizer: Any
    max_model_len: int

    @abc.abstractmethod
    async def generate(self, prompt_ids: list[int], sampling: SamplingParams) -> Completion:
        ...

    def check_request(self, prompt_ids: list[int], sampling: SamplingParams) -> None:
        sampling.validate()
        if len(prompt_ids) >= self.max_model_len:
            raise ValueError(f"prompt of {len(prompt_ids)} tokens does not fit max_model_len={self.max_model_len}")

    async def generate_n(self, prompt_ids: list[int], sampling: SamplingParams, n: int) -> list[Completion]:
        """`n` samples of one prompt (seeded requests use seed, seed+1, ...); engines may batch them natively."""
        import asyncio
        from dataclasses import replace

        seeds = [None if sampling.seed is None else sampling.seed + i for i in range(n)]
        return list(await asyncio.gather(*(self.generate(prompt_ids, replace(sampling, seed=s)) for s in seeds)))

    @abc.abstractmethod
    def sync(self, update: WeightUpdate) -> None:
        """Serve `update`'s weights from now on."""

    def close(self) -> None:
        """Stop workers/servers. Safe to call twice."""
