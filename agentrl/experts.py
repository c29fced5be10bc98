"""ScaleZero-style capacity for multi-task runs: task-routed LoRA experts and Dynamic
Parameter Scaling (DPS), on one peft model.

Adapters are named `<group>_s<stage>`; a group is a task family (its own expert) or
"shared" (one adapter every family uses). A request or training sample of family f runs
through f's adapters (and the shared ones) of every stage reached so far, summed, as peft
does for several active adapters. All stages' adapters exist from the start (peft zeroes
lora_B, so an adapter not yet reached has no effect and its parameters never get a
gradient); a stage switch freezes what exists and makes the next stage's adapters
trainable, each with learnable per-module scales a = 1 + 0.2 tanh(logit) in (0.8, 1.2)
(logit 0: the new adapter starts at exactly zero effect, since B = 0).

Engines serve one adapter per family: the family's active adapters concatenated into a
single LoRA of rank sum(r) (A stacked along the rank, B scaled by peft's scaling and the
DPS scale), which is the same function, so vLLM's multi-LoRA serves every family in one
batch without merging anything into the base weights.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from agentrl.engines.base import WeightUpdate

SHARED = "shared"


@dataclass
class ExpertsConfig:
    enabled: bool = False
    per_family: bool = True  # each task family its own LoRA expert
    shared: bool = False  # plus one adapter every family uses (per_family=false: one shared LoRA for all)
    stages: int = 1  # DPS stages (1 = no scaling); each later stage adds adapters on top of the frozen ones
    stage_iterations: int = 0  # switch after this many iterations in a stage even if too few families got solved (0 = never)
    scale_range: float = 0.2  # DPS scales live in (1 - range, 1 + range)

    def validate(self) -> None:
        if self.enabled and not (self.per_family or self.shared):
            raise ValueError("experts: per_family and shared are both off: no adapter to train")
        if self.stages < 1 or self.stage_iterations < 0:
            raise ValueError("experts: stages must be >= 1 and stage_iterations >= 0")
        if not 0 < self.scale_range < 1:
            raise ValueError("experts: scale_range must be in (0, 1)")


class LoraExperts:
    """The adapters of a peft model: which are active for a route, which train, what to serve."""

    def __init__(self, peft_model, families: list[str], cfg: ExpertsConfig, lora_config) -> None:
        if cfg.per_family and not families:
            raise ValueError("experts: per_family needs a multi-task env (env.families) to route by")
        self.model, self.cfg, self.stage = peft_model, cfg, 0
        self.families = list(families) if cfg.per_family else []
        self.groups = _groups(families, cfg)
        names = self.adapter_names(families, cfg)
        missing = [n for n in names if n not in peft_model.peft_config]  # the first comes from get_peft_model
        for name in missing:
            peft_model.add_adapter(name, lora_config)
        self.rank = lora_config.r
        self._lora_modules = [(n, m) for n, m in peft_model.named_modules() if hasattr(m, "lora_A") and names[0] in m.lora_A]
        self._add_scales()
        # (adapter, parameter) for every adapter parameter, found once: activate() runs per forward
        self._adapter_params = [(a, p) for n, p in peft_model.named_parameters() if (a := _adapter_of(n)) is not None]
        self.activate("")

    @staticmethod
    def adapter_names(families: list[str], cfg: ExpertsConfig) -> list[str]:
        return [f"{g}_s{k}" for k in range(cfg.stages) for g in _groups(families, cfg)]

    # -- DPS scales ------------------------------------------------------------
    def _add_scales(self) -> None:
        """A learnable logit on each later-stage lora_B module; a forward hook scales its output."""
        spread = self.cfg.scale_range
        for _, module in self._lora_modules:
            for k in range(1, self.cfg.stages):
                for g in self.groups:
                    b = module.lora_B[f"{g}_s{k}"]
                    b.register_parameter("dps_logit", torch.nn.Parameter(torch.zeros((), dtype=b.weight.dtype)))
                    b.register_forward_hook(lambda m, args, out: out * (1 + spread * torch.tanh(m.dps_logit)))

    def scale(self, module, adapter: str) -> torch.Tensor:
        b = module.lora_B[adapter]
        logit = getattr(b, "dps_logit", None)
        return torch.ones(()) if logit is None else 1 + self.cfg.scale_range * torch.tanh(logit.detach())

    # -- routing -----------------------------------------------------------------
    def adapters_for(self, route: str) -> list[str]:
        """The adapters a request/sample of family `route` runs through at the current stage."""
        groups = ([route] if route in self.families else []) + ([SHARED] if self.cfg.shared else [])
        if not groups:
            raise ValueError(f"no LoRA expert for family {route!r} (experts: {', '.join(self.families)})")
        return [f"{g}_s{k}" for k in range(self.stage + 1) for g in groups]

    def routes(self) -> list[str]:
        """One served adapter per family, or a single default one when every family shares it."""
        return list(self.families) if self.families else [""]

    def activate(self, route: str) -> None:
        self.model.base_model.set_adapter(self.adapters_for(route if route else self.routes()[0]))
        self._apply_trainable()

    def _apply_trainable(self) -> None:
        """Only the current stage trains; peft's set_adapter flips requires_grad, so re-apply."""
        live = {f"{g}_s{self.stage}" for g in self.groups}
        for adapter, p in self._adapter_params:
            p.requires_grad_(adapter in live)

    def all_parameters(self) -> list[torch.nn.Parameter]:
        """Every adapter parameter of every stage: the optimizer holds them all from the start
        (a frozen or unreached one has no gradient, so AdamW leaves it exactly as it is)."""
        return [p for _, p in self._adapter_params]

    def next_stage(self) -> None:
        if self.stage + 1 >= self.cfg.stages:
            raise ValueError(f"already at the last DPS stage ({self.cfg.stages})")
        self.stage += 1
        self.activate("")

    @property
    def served_rank(self) -> int:
        """Rank of the largest served adapter (all stages reached): what vLLM must be started for."""
        return self.rank * self.cfg.stages * (int(bool(self.families)) + int(self.cfg.shared))

    # -- export ----------------------------------------------------------------
    def export(self, version: int) -> list[WeightUpdate]:
        """Per route: the active adapters concatenated into one LoRA (rank sum r, scaling 1)."""
        from peft import LoraConfig

        updates = []
        for route in self.routes():
            adapters = self.adapters_for(route)
            state, base_cfg = {}, self.model.peft_config[adapters[0]]
            for name, module in self._lora_modules:
                a = torch.cat([module.lora_A[x].weight.detach() for x in adapters], dim=0)
                b = torch.cat([module.lora_B[x].weight.detach() * module.scaling[x] * self.scale(module, x)
                               for x in adapters], dim=1)
                state[f"{name}.lora_A.weight"], state[f"{name}.lora_B.weight"] = a.clone(), b.clone()
            rank = self.rank * len(adapters)
            config = LoraConfig(r=rank, lora_alpha=rank, lora_dropout=0.0, target_modules=sorted(base_cfg.target_modules),
                                task_type=base_cfg.task_type, base_model_name_or_path=base_cfg.base_model_name_or_path)
            updates.append(WeightUpdate("lora", state, version, peft_config=config, route=route))
        return updates

    def state_dict(self) -> dict:
        return {"stage": self.stage}

    def load_state_dict(self, state: dict) -> None:
        self.stage = int(state.get("stage", 0))
        self.activate("")


def _groups(families: list[str], cfg: ExpertsConfig) -> list[str]:
    """Adapter groups: each family (per_family) and the shared one (shared)."""
    return (list(families) if cfg.per_family else []) + ([SHARED] if cfg.shared else [])


def _adapter_of(param_name: str) -> str | None:
    """`...lora_A.<adapter>.weight` / `...lora_B.<adapter>.dps_logit` -> adapter."""
    parts = param_name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part in ("lora_A", "lora_B"):
            return parts[i + 1]
    return None


@dataclass
class StageSchedule:
    """ScaleZero's switch rule: move to the next stage when the families solved since the last
    switch reach ceil(unsolved at that switch / stages left), or after `budget` iterations."""

    stages: int
    budget: int = 0  # iterations per stage (0 = no budget)
    stage: int = 0
    unsolved_at_switch: int | None = None  # None until the first observation
    solved_at_switch: int = 0
    iterations_in_stage: int = 0

    def needed(self) -> int:
        """Newly solved families that trigger the next switch (stages left include the current one)."""
        return math.ceil((self.unsolved_at_switch or 0) / (self.stages - self.stage))

    def observe(self, solved: int, total: int) -> bool:
        """One iteration's count of solved families; True when it is time to switch (and switches)."""
        if self.unsolved_at_switch is None:
            self.unsolved_at_switch, self.solved_at_switch = total - solved, solved
        self.iterations_in_stage += 1
        if self.stage + 1 >= self.stages:
            return False
        newly = solved - self.solved_at_switch
        by_solves = self.unsolved_at_switch > 0 and newly >= self.needed()
        by_budget = self.budget > 0 and self.iterations_in_stage >= self.budget
        if not (by_solves or by_budget):
            return False
        self.stage += 1
        self.unsolved_at_switch, self.solved_at_switch, self.iterations_in_stage = total - solved, solved, 0
        return True

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("stage", "unsolved_at_switch", "solved_at_switch", "iterations_in_stage")}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)


def gradient_cosines(grads: dict[str, torch.Tensor]) -> dict[str, float]:
    """Mean and min pairwise cosine of per-family gradients (flattened over trainable params).
    Negative = the families pull the shared weights apart (gradient conflict)."""
    names = sorted(grads)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    if not pairs:
        return {}
    cos = []
    for a, b in pairs:
        ga, gb = grads[a], grads[b]
        denom = ga.norm() * gb.norm()
        cos.append(float((ga @ gb) / denom) if denom > 0 else 0.0)
    return {"conflict/cosine_mean": sum(cos) / len(cos), "conflict/cosine_min": min(cos)}
