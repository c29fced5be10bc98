"""The learner: accelerate + peft. Recomputes logprobs, runs clipped policy-gradient
epochs over shuffled minibatches, exports weights for the engine, checkpoints.

LoRA is the default (r/alpha/targets configurable); `lora.enabled=false` trains all
weights. DeepSpeed/multi-process runs come from `accelerate launch` with a config
from `launch/`; nothing here is CPU-specific. With several processes each trains its
shard of every minibatch (agentrl/distributed.py) and DDP/DeepSpeed reduce the gradients,
so the update equals one process's on the whole minibatch.
"""
from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from agentrl import distributed
from agentrl.algorithms.base import Batch, PolicyGradient, Sample
from agentrl.engines.base import WeightUpdate
from agentrl.experts import ExpertsConfig, LoraExperts, gradient_cosines

ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class LoraSettings:
    enabled: bool = True
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: list(ALL_PROJECTIONS))


@dataclass
class LearnerConfig:
    lr: float = 5e-5
    weight_decay: float = 0.01
    max_grad_norm: float = 0.1
    adam_betas: tuple[float, float] = (0.9, 0.999)
    lr_schedule: str = "constant"  # constant | cosine
    warmup_steps: int = 0
    total_steps: int = 0  # for the cosine schedule
    dtype: str = "float32"  # float32 | bfloat16
    max_tokens_per_microbatch: int = 16384  # gradient accumulation inside a minibatch above this
    gradient_checkpointing: bool = False
    lora: LoraSettings = field(default_factory=LoraSettings)
    experts: ExpertsConfig = field(default_factory=ExpertsConfig)  # ScaleZero: LoRA experts per task family, DPS
    # cosine between per-family gradients each step (multi-task runs): logs conflict/cosine_*
    measure_gradient_conflict: bool = False

    def validate(self) -> None:
        if self.experts.enabled and not self.lora.enabled:
            raise ValueError("experts.enabled needs lora.enabled (experts are LoRA adapters)")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be constant or cosine, got {self.lr_schedule!r}")
        if self.lr_schedule == "cosine" and self.total_steps <= 0:
            raise ValueError("total_steps must be > 0 with lr_schedule=cosine")
        if self.dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be float32 or bfloat16, got {self.dtype!r}")


class Learner:
    def __init__(self, model: str, cfg: LearnerConfig, accelerator=None, seed: int = 0,
                 families: list[str] | None = None) -> None:
        from transformers import AutoModelForCausalLM, get_cosine_schedule_with_warmup, get_constant_schedule_with_warmup

        self.cfg, self.seed, self.model_name = cfg, seed, model
        self.experts: LoraExperts | None = None
        self.accelerator = accelerator or distributed.make_accelerator()
        if self.accelerator.num_processes > 1 and (cfg.experts.enabled or cfg.measure_gradient_conflict):
            raise ValueError("learner.experts and learner.measure_gradient_conflict run on one process only "
                             f"(this run has {self.accelerator.num_processes})")
        distributed.prepare_deepspeed_config(self.accelerator, cfg.max_grad_norm)
        net = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, cfg.dtype))
        if cfg.gradient_checkpointing:
            net.gradient_checkpointing_enable()
        if cfg.lora.enabled:
            from peft import LoraConfig, get_peft_model

            lora_config = LoraConfig(
                r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                target_modules=list(cfg.lora.target_modules), task_type="CAUSAL_LM",
            )
            # with experts, the first adapter is named as an expert (the rest are added by LoraExperts)
            first = LoraExperts.adapter_names(families or [], cfg.experts)[:1] if cfg.experts.enabled else []
            with torch.random.fork_rng():  # the adapter's init depends on the seed only, not on what ran before
                torch.manual_seed(seed)
                net = get_peft_model(net, lora_config, adapter_name=(first or ["default"])[0])
            if cfg.experts.enabled:
                self.experts = LoraExperts(net, list(families or []), cfg.experts, lora_config)
        params = self.experts.all_parameters() if self.experts else [p for p in net.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=tuple(cfg.adam_betas))
        if cfg.lr_schedule == "cosine":
            scheduler = get_cosine_schedule_with_warmup(optimizer, cfg.warmup_steps, cfg.total_steps)
        else:
            scheduler = get_constant_schedule_with_warmup(optimizer, cfg.warmup_steps)
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(net, optimizer, scheduler)
        self.optimizer_steps = 0
        self.version = 0  # policy updates so far (one per `update` call)

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    # -- log-probabilities ---------------------------------------------------
    def token_logprobs(self, samples: list[Sample], temperature: float = 1.0) -> torch.Tensor:
        """[rows, T] logprob of each trained token given the ones before it; with LoRA experts
        each family's rows go through its own adapters."""
        if self.experts is None:
            return self._token_logprobs(samples, temperature)
        width = max(len(s.token_ids) for s in samples)
        rows: list[torch.Tensor | None] = [None] * len(samples)
        for family, members in _by_family(list(range(len(samples))), samples).items():
            self.experts.activate(family)
            out = self._token_logprobs([samples[i] for i in members], temperature)
            out = torch.nn.functional.pad(out, (0, width - out.shape[1]))
            for i, row in zip(members, out):
                rows[i] = row
        return torch.stack(rows)

    def _token_logprobs(self, samples: list[Sample], temperature: float = 1.0) -> torch.Tensor:
        """[rows, T] logprob of each trained token (loss_mask = 1) given the ones before it; 0 elsewhere.

        Identical sequences (common with short history windows: the K rollouts of a task
        share states) go through the model once, and the vocabulary projection runs only at
        positions that predict a trained token; gradients still reach every row.
        """
        index: dict[tuple[int, ...], int] = {}
        inverse = [index.setdefault(tuple(s.token_ids), len(index)) for s in samples]
        ids, attention = self._pad([list(key) for key in index], 0)
        masks, _ = self._pad([s.loss_mask for s in samples], 0)
        # positions (in any row) whose next token is trained
        needed = torch.nonzero(masks[:, 1:].any(dim=0)).squeeze(-1)
        logits = self.model(input_ids=ids, attention_mask=attention, logits_to_keep=needed).logits.float()
        logp = torch.log_softmax(logits / temperature, dim=-1)
        picked = logp.gather(-1, ids[:, needed + 1, None]).squeeze(-1)
        out = torch.zeros(ids.shape, dtype=picked.dtype, device=picked.device)
        out = out.index_copy(1, needed + 1, picked)
        return out[torch.tensor(inverse, device=out.device)]

    def _pad(self, rows: list[list], value) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        dtype = torch.float32 if isinstance(value, float) else torch.long
        out = torch.full((len(rows), width), value, dtype=dtype)
        present = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):  # right padding: causal positions of real tokens are unchanged
            out[i, : len(r)] = torch.tensor(r, dtype=dtype)
            present[i, : len(r)] = 1
        return out.to(self.device), present.to(self.device)

    def _microbatches(self, samples: list[Sample]) -> list[list[Sample]]:
        """Split by episode boundaries so no microbatch's padded size (rows x longest row) exceeds
        the token budget (when it can)."""
        chunks, current, longest, last_episode = [], [], 0, None
        for s in samples:
            padded = (len(current) + 1) * max(longest, len(s.token_ids))
            if current and s.episode != last_episode and padded > self.cfg.max_tokens_per_microbatch:
                chunks.append(current)
                current, longest = [], 0
            current.append(s)
            longest = max(longest, len(s.token_ids))
            last_episode = s.episode
        return chunks + ([current] if current else [])

    # -- the RL update -------------------------------------------------------
    def update(self, batch: Batch, algorithm: PolicyGradient, temperature: float = 1.0) -> dict[str, float]:
        self.version += 1
        if not batch.samples:
            return {"update/skipped": 1.0}
        n_episodes = len(batch.episodes)
        per_step = algorithm.minibatch_episodes or n_episodes
        # old logprobs by id(sample), unpadded
        one_step = self._one_step_from_current_policy(batch, algorithm, per_step)
        if one_step:
            # the old policy is the current one: its logprobs are the step's own forward, detached,
            # filled in by `_backward` (a separate no-grad pass would cost a quarter of the update)
            old_of, metrics = {}, {}
        else:
            old_of = self._old_logprobs(batch.samples, temperature)
            metrics = self._check_behaviour(batch.samples, [old_of[id(s)] for s in batch.samples])

        self.model.train()
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.version)
        by_episode: dict[int, list[int]] = {}
        for i, s in enumerate(batch.samples):
            by_episode.setdefault(s.episode, []).append(i)
        sums: dict[str, float] = {}
        steps = 0
        for _ in range(algorithm.epochs):
            for episodes in _shuffled_minibatches(batch, per_step, gen, algorithm.group_minibatches):
                rows = [i for e in episodes for i in by_episode[e]]
                step_metrics = self._step(batch.samples, old_of, rows, algorithm, temperature)
                for k, v in step_metrics.items():
                    sums[k] = sums.get(k, 0.0) + v
                steps += 1
        if one_step:  # the mismatch metrics, from what the step's forward saw (this process's shard)
            seen = [s for s in batch.samples if id(s) in old_of]
            metrics.update(self._check_behaviour(seen, [old_of[id(s)] for s in seen]))
        metrics.update({k: v / steps for k, v in sums.items()})
        metrics = distributed.mean_over_processes(metrics, self.accelerator, summed=("loss/policy",))
        metrics["update/optimizer_steps"] = float(steps)
        return metrics

    def _old_logprobs(self, samples: list[Sample], temperature: float) -> dict[int, torch.Tensor]:
        """id(sample) -> the current policy's logprobs (no grad), each process computing a shard."""
        self.model.eval()
        rows: list[torch.Tensor] = []
        with torch.no_grad():
            mine = distributed.shard(samples, self.accelerator)
            for mb, real in distributed.lockstep(self._microbatches(mine), samples[:1], self.accelerator):
                out = self.token_logprobs(mb, temperature).cpu()
                if real:
                    rows += [row[: len(s.token_ids)] for s, row in zip(mb, out)]
        rows = distributed.all_gather_objects(rows, self.accelerator)  # shards are contiguous: sample order
        return {id(s): row for s, row in zip(samples, rows)}

    reuse_step_forward = True  # `_one_step_from_current_policy` may skip the recompute pass

    def _one_step_from_current_policy(self, batch: Batch, algorithm: PolicyGradient, per_step: int) -> bool:
        """One optimizer step on the whole batch, with no dropout (train and eval forwards agree) and
        every behaviour logprob known (Dyna-GRPO's unknown ones are filled from the old pass)."""
        config = self.accelerator.unwrap_model(self.model).config
        return (self.reuse_step_forward and algorithm.epochs == 1 and per_step >= len(batch.episodes)
                and not getattr(config, "attention_dropout", 0.0)
                and not any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in self.model.modules())
                and not any(math.isnan(x) for s in batch.samples for x in s.behaviour_logprobs))

    def _step(self, samples, old_of, rows, algorithm, temperature) -> dict[str, float]:
        chosen = [samples[i] for i in rows]
        n_episodes = len({s.episode for s in chosen})
        n_tokens = sum(sum(s.loss_mask) for s in chosen)
        # this process's episodes of the minibatch (all of them on one process)
        episodes = set(distributed.shard(sorted({s.episode for s in chosen}), self.accelerator))
        mine = [s for s in chosen if s.episode in episodes]
        total, logs = 0.0, {}
        per_family = self.experts is not None or self.cfg.measure_gradient_conflict
        groups = _by_family(mine, mine) if per_family else {"": mine}
        grads, before = {}, None
        for f, (family, members) in enumerate(groups.items()):
            passes = distributed.lockstep(self._microbatches(members), chosen[:1], self.accelerator)
            for i, (mb, real) in enumerate(passes):
                last = f == len(groups) - 1 and i == len(passes) - 1  # gradients are reduced once, here
                total_mb, mb_logs = self._backward(mb, old_of, algorithm, temperature, n_episodes, n_tokens, real, last)
                total += total_mb
                logs = mb_logs if real else logs
            if self.cfg.measure_gradient_conflict:  # this family's gradient = accumulated now - before it
                now = self._flat_grad()
                grads[family], before = now - (before if before is not None else 0), now
        grad_norm = self._optimizer_step()
        return {"loss/policy": total, "loss/grad_norm": float(grad_norm), **logs, **gradient_cosines(grads)}

    def _flat_grad(self) -> torch.Tensor:
        params = [p for p in self.model.parameters() if p.requires_grad]
        return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).detach().flatten().float()
                          for p in params])

    def _backward(self, mb, old_of, algorithm, temperature, n_episodes, n_tokens, real: bool = True,
                  sync: bool = True) -> tuple[float, dict[str, float]]:
        """Backward of one microbatch's share of the minibatch loss (`real=False`: a zero-weight
        pass that keeps this process in step with the others)."""
        mask, _ = self._pad([s.loss_mask for s in mb], 0)
        behaviour, _ = self._pad([s.behaviour_logprobs for s in mb], 0.0)
        episodes = sorted({s.episode for s in mb})
        owner = torch.tensor([episodes.index(s.episode) for s in mb], device=self.device)
        adv = torch.tensor([s.advantage for s in mb], dtype=torch.float32, device=self.device)
        weights = torch.tensor([s.weight for s in mb], dtype=torch.float32, device=self.device)
        logp = self.token_logprobs(mb, temperature)
        if all(id(s) in old_of for s in mb):
            old = torch.nn.utils.rnn.pad_sequence([old_of[id(s)] for s in mb], batch_first=True).to(self.device)
        else:  # one step from the current policy: old = this forward (ratio 1, the gradient of pi/pi_old)
            old = logp.detach()
            for s, row in zip(mb, old.cpu() if real else []):
                old_of[id(s)] = row[: len(s.token_ids)]
        loss, logs = algorithm.loss(logp, old, behaviour, adv, weights, mask, owner)
        # each microbatch's share of the minibatch mean
        if algorithm.aggregation == "episode_mean":
            share = len(episodes) / n_episodes
        else:
            share = mask.sum().item() / max(n_tokens, 1)
        # DDP and DeepSpeed average gradients over processes; shares add up to 1 over all of them
        scale = self.accelerator.num_processes if real else 0.0
        self._backward_pass(loss * share * scale, sync)
        return (loss.item() * share if real else 0.0), logs

    def _backward_pass(self, loss: torch.Tensor, sync: bool) -> None:
        """Accumulate `loss`'s gradients; reduce them over processes only when `sync`."""
        if distributed.uses_deepspeed(self.accelerator):  # self.model is the DeepSpeed engine
            self.model.set_gradient_accumulation_boundary(sync)
            self.model.backward(loss)
            return
        with contextlib.nullcontext() if sync else self.accelerator.no_sync(self.model):
            self.accelerator.backward(loss)

    def _optimizer_step(self) -> float:
        if distributed.uses_deepspeed(self.accelerator):  # clips (gradient_clipping), steps optimizer and schedule
            self.model.step()
            self.optimizer_steps += 1
            norm = self.model.get_global_grad_norm()
            return float("nan") if norm is None else float(norm)
        grad_norm = self.accelerator.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.optimizer_steps += 1
        return float(grad_norm)

    def _check_behaviour(self, samples: list[Sample], old: list[torch.Tensor]) -> dict[str, float]:
        """How far the learner's logprobs are from the engine's (same weights, different kernels).
        Behaviour logprobs that were never computed (NaN: Dyna-GRPO's (s_t, a_refine)) are left out,
        then replaced by the learner's own."""
        diffs = []
        for s, row in zip(samples, old):
            behaviour, row = torch.tensor(s.behaviour_logprobs), row[: len(s.loss_mask)]
            unknown = behaviour.isnan()
            m = torch.tensor(s.loss_mask, dtype=torch.bool) & ~unknown
            diffs.append(row[m] - behaviour[m])
            if unknown.any():
                s.behaviour_logprobs = torch.where(unknown, row, behaviour).tolist()
        d = torch.cat(diffs) if diffs else torch.zeros(1)
        d = d if d.numel() else torch.zeros(1)
        # importance weights pi_old / pi_behaviour: ~1 on-policy, spread by stale (async) rollouts
        weights = d.exp()
        return {"logprob_mismatch/mean_abs": float(d.abs().mean()), "logprob_mismatch/max_abs": float(d.abs().max()),
                "importance_weight/mean": float(weights.mean()), "importance_weight/max": float(weights.max()),
                "importance_weight/min": float(weights.min())}

    # -- supervised warm start -----------------------------------------------
    def sft_step(self, samples: list[Sample]) -> dict[str, float]:
        """One optimizer step of token-mean cross-entropy on the masked (policy) tokens."""
        self.model.train()
        n_tokens = sum(sum(s.loss_mask) for s in samples)
        total = 0.0
        # by length, so a microbatch pads its short sequences (Sokoban moves) to similar ones, not to
        # the longest of the batch (an ALFWorld observation); the loss is a sum, order does not matter
        # (every process trains the same samples: SFT batches are drawn from one seeded generator)
        chunks = self._microbatches(sorted(samples, key=lambda s: len(s.token_ids)))
        for i, mb in enumerate(chunks):
            mask, _ = self._pad([s.loss_mask for s in mb], 0)
            logp = self.token_logprobs(mb)
            loss = -(logp * mask).sum() / max(n_tokens, 1)
            self._backward_pass(loss, sync=i == len(chunks) - 1)
            total += loss.item()
        grad_norm = self._optimizer_step()
        return {"sft/loss": total, "sft/grad_norm": float(grad_norm), "sft/lr": self.scheduler.get_last_lr()[0]}

    # -- weights out ---------------------------------------------------------
    @property
    def served_lora_rank(self) -> int | None:
        """The LoRA rank engines must accept (None: full weights are synced)."""
        if self.experts is not None:
            return self.experts.served_rank
        return self.cfg.lora.r if self.cfg.lora.enabled else None

    def export_updates(self) -> list[WeightUpdate]:
        """What engines sync after an update: one adapter per task family with experts, else one."""
        if self.experts is not None:
            return self.experts.export(self.version)
        return [self.export_weights()]

    def next_stage(self) -> None:
        """DPS: freeze every adapter trained so far and train the next stage's (zero-effect) ones."""
        self.experts.next_stage()

    def export_weights(self) -> WeightUpdate:
        """The trained weights, whole (gathered from every process under ZeRO-3: a collective call)."""
        net = self.accelerator.unwrap_model(self.model)
        trained = [p for p in net.parameters() if p.requires_grad] if self.cfg.lora.enabled else list(net.parameters())
        with distributed.gathered(self.accelerator, trained):
            if self.cfg.lora.enabled:
                from peft import get_peft_model_state_dict

                sd = {k: v.detach().clone() for k, v in get_peft_model_state_dict(net).items()}
                return WeightUpdate("lora", sd, self.version, peft_config=net.peft_config["default"])
            return WeightUpdate("full", {k: v.detach().clone() for k, v in net.state_dict().items()}, self.version)

    def _standalone_model(self):
        """A plain (unpartitioned) copy of the policy, built from `export_weights` (ZeRO-3 saves)."""
        from transformers import AutoModelForCausalLM

        update = self.export_weights()
        if not self.accelerator.is_main_process:
            return None
        with distributed.unpartitioned(self.accelerator):
            net = AutoModelForCausalLM.from_pretrained(self.model_name, dtype=getattr(torch, self.cfg.dtype))
        if update.kind == "full":
            net.load_state_dict(update.state_dict)
            return net
        from peft import get_peft_model, set_peft_model_state_dict

        net = get_peft_model(net, update.peft_config)
        set_peft_model_state_dict(net, update.state_dict)
        return net

    def save_pretrained(self, directory: str | Path, tokenizer=None, merge: bool = True) -> Path:
        """A standalone HF checkpoint (LoRA merged in by default) others can load by path. Every
        process calls it (ZeRO-3 gathers the weights); the main process writes."""
        import copy

        directory = Path(directory)
        if distributed.zero_stage(self.accelerator) == 3 and self.experts is None:
            net = self._standalone_model()  # consolidated from the partitions
        else:
            net = self.accelerator.unwrap_model(self.model)
        if not self.accelerator.is_main_process:
            return directory
        if self.experts is not None:  # the base model plus one served adapter per family
            from transformers import AutoModelForCausalLM

            from agentrl.engines.base import save_routed_adapters

            AutoModelForCausalLM.from_pretrained(self.model_name).save_pretrained(str(directory))
            save_routed_adapters(self.experts.export(self.version), directory)
            if tokenizer is not None:
                tokenizer.save_pretrained(str(directory))
            return directory
        if self.cfg.lora.enabled:
            net.save_pretrained(str(directory / "adapter"))
            if merge:
                net = copy.deepcopy(net).merge_and_unload()
        if not self.cfg.lora.enabled or merge:
            net.save_pretrained(str(directory))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(directory))
        return directory

    # -- checkpoints ---------------------------------------------------------
    def save_checkpoint(self, directory: str | Path) -> None:
        """Model, optimizer, scheduler and RNG states (accelerate), plus our counters."""
        directory = Path(directory)
        self.accelerator.save_state(str(directory))
        if self.accelerator.is_main_process:
            (directory / "learner_state.json").write_text(
                json.dumps({"optimizer_steps": self.optimizer_steps, "version": self.version,
                            "experts": self.experts.state_dict() if self.experts else None})
            )

    def load_checkpoint(self, directory: str | Path) -> None:
        directory = Path(directory)
        self.accelerator.load_state(str(directory))
        state = json.loads((directory / "learner_state.json").read_text())
        self.optimizer_steps, self.version = state["optimizer_steps"], state["version"]
        if self.experts is not None and state.get("experts"):
            self.experts.load_state_dict(state["experts"])


def _by_family(items: list, samples: list[Sample]) -> dict[str, list]:
    """`items` grouped by the family of the matching sample, in first-seen order."""
    groups: dict[str, list] = {}
    for item, s in zip(items, samples):
        groups.setdefault(s.family, []).append(item)
    return groups


def _shuffled_minibatches(batch: Batch, size: int, gen: torch.Generator, by_group: bool) -> list[list[int]]:
    """Episode indices in shuffled minibatches of `size`; with `by_group`, whole groups are
    shuffled and kept together (a group's rollouts share states, so its sequences dedupe)."""
    if not by_group:
        order = torch.randperm(len(batch.episodes), generator=gen).tolist()
        return [order[i: i + size] for i in range(0, len(order), size)]
    groups: dict[str, list[int]] = {}
    for i, ep in enumerate(batch.episodes):
        groups.setdefault(ep.group_id, []).append(i)
    members = list(groups.values())
    chunks: list[list[int]] = [[]]
    for g in torch.randperm(len(members), generator=gen).tolist():
        if chunks[-1] and len(chunks[-1]) + len(members[g]) > size:
            chunks.append([])
        chunks[-1].extend(members[g])
    return chunks
