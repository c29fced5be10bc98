"""A transformers engine: concurrent `generate` calls are batched into one forward pass.

For tests, CPU demos and small models. Requests that arrive while a batch is running
wait and form the next batch, so many episodes stepping at once share every forward.
Sampling is done here (not by `model.generate`) so that each request gets its own
seeded generator (same seed, same sample, whatever else is in the batch) and the
returned logprobs are exactly log_softmax(logits / temperature) of the sampled tokens:
what the learner recomputes.
"""
from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from agentrl.engines.base import Completion, Engine, SamplingParams, WeightUpdate, serving


@dataclass
class _Request:
    prompt_ids: list[int]
    sampling: SamplingParams
    future: asyncio.Future


class HFEngine(Engine):
    def __init__(
        self,
        model: str,
        *,
        dtype: str = "float32",
        device: str = "cpu",
        max_batch_size: int = 256,
        max_model_len: int | None = None,
        seed: int = 0,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype)).to(device).eval()
        self.device = device
        self.max_batch_size = max_batch_size
        self.max_model_len = max_model_len or self.model.config.max_position_embeddings
        self.eos_ids = _eos_ids(self.tokenizer, self.model)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]
        self.version = 0
        self.adapters: dict[str, str] = {}  # route -> peft adapter name serving it ("" = every other route)
        self._rng = torch.Generator().manual_seed(seed)
        self._pending: list[_Request] = []
        self._batcher: asyncio.Task | None = None
        self._wakeup: asyncio.Event | None = None
        self._lock = threading.Lock()  # the model is used by one thread at a time
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hf-engine")
        self.stats = {"batches": 0, "requests": 0, "generate_seconds": 0.0}

    # -- the async interface -------------------------------------------------
    async def generate(self, prompt_ids: list[int], sampling: SamplingParams) -> Completion:
        self.check_request(prompt_ids, sampling)
        loop = asyncio.get_running_loop()
        if self._batcher is None or self._batcher.done() or self._batcher.get_loop() is not loop:
            self._wakeup = asyncio.Event()
            self._batcher = loop.create_task(self._run_batches())
        request = _Request(list(prompt_ids), sampling, loop.create_future())
        self._pending.append(request)
        self._wakeup.set()
        return await request.future

    async def _run_batches(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await asyncio.sleep(0)  # let every coroutine that is ready enqueue first
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch_size], self._pending[self.max_batch_size:]
                try:
                    results = await loop.run_in_executor(self._executor, self.generate_batch, batch)
                except Exception as exc:  # one bad batch fails its requests, not the engine
                    for r in batch:
                        if not r.future.done():
                            r.future.set_exception(exc)
                    continue
                for r, completion in zip(batch, results):
                    if not r.future.done():
                        r.future.set_result(completion)

    # -- batched sampling ----------------------------------------------------
    @torch.no_grad()
    def generate_batch(self, requests: list[_Request]) -> list[Completion]:
        start = time.perf_counter()
        with self._lock:
            out: list[Completion | None] = [None] * len(requests)
            groups: dict[str | None, list[int]] = {}  # one forward pass per adapter
            for i, r in enumerate(requests):
                groups.setdefault(serving(self.adapters, r.sampling.route), []).append(i)
            for adapter, members in groups.items():
                base_only = contextlib.nullcontext()
                if adapter is not None:
                    self.model.set_adapter(adapter)
                elif self.adapters:  # a route with no adapter of its own, and no default one: the base model
                    base_only = self.model.disable_adapter()
                with base_only:
                    for i, completion in zip(members, self._sample([requests[i] for i in members])):
                        out[i] = completion
        self.stats["batches"] += 1
        self.stats["requests"] += len(requests)
        self.stats["generate_seconds"] += time.perf_counter() - start
        return out

    def _sample(self, requests: list[_Request]) -> list[Completion]:
        n = len(requests)
        lengths = [len(r.prompt_ids) for r in requests]
        # identical prompts (the K rollouts of a task start alike and often revisit states)
        # are prefilled once; their cache rows are then copied for per-request sampling
        unique: dict[tuple[int, ...], int] = {}
        inverse = torch.tensor([unique.setdefault(tuple(r.prompt_ids), len(unique)) for r in requests])
        width = max(lengths)
        ids = torch.full((len(unique), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(unique), width), dtype=torch.long)
        for i, prompt in enumerate(unique):  # left padding: every row's next token is at the end
            ids[i, width - len(prompt):] = torch.tensor(prompt)
            mask[i, width - len(prompt):] = 1
        budget = [min(r.sampling.max_new_tokens, self.max_model_len - lengths[i]) for i, r in enumerate(requests)]
        # greedy requests report logprobs of the unscaled distribution
        temps = torch.tensor([r.sampling.temperature or 1.0 for r in requests], dtype=torch.float32)
        gens = [
            torch.Generator().manual_seed(r.sampling.seed) if r.sampling.seed is not None
            else torch.Generator().manual_seed(int(torch.randint(2**62, (1,), generator=self._rng)))
            for r in requests
        ]
        stops = [set(self.eos_ids) | set(r.sampling.stop_token_ids) for r in requests]
        tokens: list[list[int]] = [[] for _ in range(n)]
        logps: list[list[float]] = [[] for _ in range(n)]
        finish = ["length"] * n
        live = [True] * n

        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        cache, logits = out.past_key_values, out.logits[:, -1, :].float().cpu()[inverse]
        if len(unique) < n:
            cache.reorder_cache(inverse.to(self.device))
            mask, positions = mask[inverse.to(self.device)], positions[inverse.to(self.device)]
        for _ in range(max(budget)):
            scaled = logits / temps[:, None]
            logprobs = torch.log_softmax(scaled, dim=-1)
            next_ids = torch.full((n,), self.pad_id, dtype=torch.long)
            for i in range(n):
                if not live[i]:
                    continue
                tok = _pick(logprobs[i], requests[i].sampling, gens[i])
                next_ids[i] = tok
                tokens[i].append(tok)
                logps[i].append(float(logprobs[i, tok]))
                if tok in stops[i]:
                    live[i], finish[i] = False, "stop"
                elif len(tokens[i]) >= budget[i]:
                    live[i] = False
            if not any(live):
                break
            mask = torch.cat([mask, torch.ones((n, 1), dtype=torch.long, device=self.device)], dim=1)
            positions = positions[:, -1:] + 1
            out = self.model(
                input_ids=next_ids[:, None].to(self.device), attention_mask=mask,
                position_ids=positions, past_key_values=cache, use_cache=True,
            )
            cache, logits = out.past_key_values, out.logits[:, -1, :].float().cpu()
        return [Completion(tokens[i], logps[i], finish[i]) for i in range(n)]

    # -- weights -------------------------------------------------------------
    def sync(self, update: WeightUpdate) -> None:
        with self._lock:
            if update.kind == "lora":
                self._load_adapter(update)
            elif update.kind == "full":
                if hasattr(self.model, "get_base_model"):  # full weights replace the policy: drop the adapters
                    self.model = self.model.unload().eval()
                    self.adapters = {}
                self.model.load_state_dict(update.state_dict, strict=True)
            else:
                raise ValueError(f"unknown weight update kind {update.kind!r}")
            self.version = update.version

    def _load_adapter(self, update: WeightUpdate) -> None:
        """Serve `update` for its route as a peft adapter; one whose rank changed (a DPS stage
        switch) is added under a new name and the old one deleted."""
        from peft import PeftModel, get_peft_model, set_peft_model_state_dict

        name = self.adapters.get(update.route)
        if name is None or self.model.peft_config[name].r != update.peft_config.r:
            new = f"{update.route or 'default'}-v{update.version}"
            if not isinstance(self.model, PeftModel):
                self.model = get_peft_model(self.model, update.peft_config, adapter_name=new).eval()
            else:
                self.model.add_adapter(new, update.peft_config)
            if name is not None:
                self.model.set_adapter(new)
                self.model.delete_adapter(name)
            self.adapters[update.route] = name = new
        self.model.set_adapter(name)
        result = set_peft_model_state_dict(self.model, update.state_dict, adapter_name=name)
        if getattr(result, "unexpected_keys", None):
            raise ValueError(f"adapter has unexpected keys: {result.unexpected_keys[:5]}")
        self.model.eval()

    def close(self) -> None:
        if self._batcher is not None and not self._batcher.done():
            self._batcher.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)


def _pick(logprobs: torch.Tensor, sampling: SamplingParams, gen: torch.Generator) -> int:
    if sampling.temperature == 0:
        return int(torch.argmax(logprobs))
    probs = logprobs.exp()
    if sampling.top_p < 1.0:
        sorted_p, order = probs.sort(descending=True)
        keep = sorted_p.cumsum(0) - sorted_p < sampling.top_p  # smallest set reaching top_p
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
    return int(torch.multinomial(probs, 1, generator=gen))


def _eos_ids(tokenizer, model) -> list[int]:
    ids = []
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (tokenizer.eos_token_id, gen_eos):
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is not None and v not in ids:
                ids.append(int(v))
    if not ids:
        raise ValueError("the tokenizer defines no eos token: set one so generation can stop")
    return ids
