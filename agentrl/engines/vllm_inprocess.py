"""vLLM in this process: continuous batching across every live episode, LoRA hot-swap.

vLLM's `AsyncLLM` lives on its own event loop in a background thread, so rollouts
(`asyncio.run` once per iteration) and synchronous callers (the trainer's `sync`) can
both use it. Returned logprobs are vLLM's "processed" logprobs: log-softmax of the logits
after temperature (and top-p), i.e. the distribution the token was sampled from, which
is what the learner recomputes.
"""
from __future__ import annotations

import contextlib
import itertools
import os
from typing import Any

from agentrl.engines.background_loop import BackgroundLoop
from agentrl.engines.base import Completion, Engine, SamplingParams, WeightUpdate, serving
from agentrl.engines.weight_files import WeightFiles, adapter_name, lora_rank_slot


def vllm_environment() -> None:
    """Process-wide settings vLLM reads at start-up (loopback only; a CPU KV cache size)."""
    os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; vLLM's default asks for more than tests have
    os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")


@contextlib.contextmanager
def _without_env(name: str):
    """Child processes started inside this block do not inherit `name`."""
    saved = os.environ.pop(name, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[name] = saved


def current_platform_is_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def cpu_scheduler_args(max_model_len: int) -> dict[str, Any]:
    """vLLM-CPU crashes ("CPU Generator does not use offset") when a seeded request's prompt
    is prefilled in chunks; scheduling every prompt whole avoids that path."""
    return {"enable_chunked_prefill": False, "max_num_batched_tokens": max(int(max_model_len), 8192)}


def check_cpu_head_size(model: str, hf_config: Any) -> None:
    """vLLM's CPU attention kernels exist for a few head sizes only; fail before starting."""
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    head_dim = getattr(hf_config, "head_dim", None) or hf_config.hidden_size // hf_config.num_attention_heads
    supported = CPUAttentionBackend.get_supported_head_sizes()
    if head_dim not in supported:
        raise ValueError(f"{model}: head size {head_dim} (hidden_size / num_attention_heads) has no vLLM CPU "
                         f"attention kernel (supported: {supported}); rebuild the model or use engine hf")


def to_vllm_sampling(sampling: SamplingParams, n: int = 1) -> Any:
    from vllm import SamplingParams as VSamplingParams
    from vllm.sampling_params import RequestOutputKind

    return VSamplingParams(
        n=n, temperature=sampling.temperature, top_p=sampling.top_p, max_tokens=sampling.max_new_tokens,
        seed=sampling.seed, stop_token_ids=list(sampling.stop_token_ids), logprobs=0,
        detokenize=False, output_kind=RequestOutputKind.FINAL_ONLY,
    )


def completion_from_vllm(output: Any) -> Completion:
    """A vLLM `CompletionOutput` (logprobs=0: one dict per token, the sampled token's entry)."""
    token_ids = list(output.token_ids)
    logprobs = [float(step[tok].logprob) for tok, step in zip(token_ids, output.logprobs)]
    return Completion(token_ids, logprobs, "stop" if output.finish_reason == "stop" else "length")


class VLLMEngine(Engine):
    def __init__(
        self,
        model: str,
        *,
        dtype: str = "float32",
        max_model_len: int | None = None,
        seed: int = 0,
        lora_rank: int | None = None,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.85,
        enforce_eager: bool = True,
        sync_dir: str | None = None,
        max_loras: int = 1,
        engine_kwargs: dict[str, Any] | None = None,
    ) -> None:
        vllm_environment()
        from transformers import AutoConfig, AutoTokenizer
        from vllm import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.on_cpu = current_platform_is_cpu()
        hf_config = AutoConfig.from_pretrained(model)
        self.tied_embeddings = bool(getattr(hf_config, "tie_word_embeddings", False))
        engine_kwargs = dict(engine_kwargs or {})
        if self.on_cpu:
            check_cpu_head_size(model, hf_config)
            engine_kwargs = {**cpu_scheduler_args(max_model_len or hf_config.max_position_embeddings), **engine_kwargs}
        args = AsyncEngineArgs(
            model=model, dtype=dtype, max_model_len=max_model_len, seed=seed,
            tensor_parallel_size=tensor_parallel_size, gpu_memory_utilization=gpu_memory_utilization,
            enforce_eager=enforce_eager, enable_prefix_caching=True,
            logprobs_mode="processed_logprobs",  # after temperature: what the sample was drawn from
            enable_lora=lora_rank is not None, max_lora_rank=lora_rank_slot(lora_rank) if lora_rank else 16,
            # one adapter per route (task family) being served, plus the one replacing it
            max_loras=max_loras + 1,
            **engine_kwargs,
        )
        self.background = BackgroundLoop("vllm-engine")
        with _without_env("OMP_NUM_THREADS"):  # accelerate sets it for the learner; vLLM's workers pick their own
            self.llm = self.background.run(self._start(AsyncLLM, args))
        self.max_model_len = self.llm.model_config.max_model_len
        self.files = WeightFiles(sync_dir)
        self.loras: dict[str, Any] = {}  # route -> the LoRARequest serving it ("" = every other route)
        self.version = 0
        self._ids = itertools.count()
        self._lora_ids = itertools.count(1)
        self._closed = False

    @staticmethod
    async def _start(cls, args):
        return cls.from_engine_args(args)

    # -- generation ----------------------------------------------------------
    async def generate(self, prompt_ids: list[int], sampling: SamplingParams) -> Completion:
        return (await self.generate_n(prompt_ids, sampling, 1))[0]

    async def generate_n(self, prompt_ids: list[int], sampling: SamplingParams, n: int) -> list[Completion]:
        self.check_request(prompt_ids, sampling)
        return await self.background.submit(self._generate(list(prompt_ids), sampling, n))

    async def _generate(self, prompt_ids: list[int], sampling: SamplingParams, n: int) -> list[Completion]:
        from vllm.inputs import TokensPrompt

        final = None
        async for out in self.llm.generate(
            TokensPrompt(prompt_token_ids=prompt_ids), to_vllm_sampling(sampling, n),
            request_id=f"agentrl-{next(self._ids)}", lora_request=serving(self.loras, sampling.route),
        ):
            final = out
        if final is None:
            raise RuntimeError("vLLM returned no output")
        return [completion_from_vllm(o) for o in sorted(final.outputs, key=lambda o: o.index)]

    # -- weights -------------------------------------------------------------
    def sync(self, update: WeightUpdate) -> None:
        self.background.run(self._sync(update))

    async def _sync(self, update: WeightUpdate) -> None:
        from vllm.lora.request import LoRARequest

        if update.kind == "lora":
            if self.llm.vllm_config.lora_config is None:
                raise ValueError("a LoRA update reached a vLLM engine started without LoRA (pass lora_rank)")
            path = self.files.write(update)
            new = LoRARequest(adapter_name(update.version, update.route), next(self._lora_ids), str(path),
                              load_inplace=True)
            await self.llm.add_lora(new)
            old = self.loras.get(update.route)
            if old is not None:
                await self.llm.remove_lora(old.lora_int_id)
            self.loras[update.route] = new
        elif update.kind == "full":
            if self.on_cpu and self.tied_embeddings:
                # measured (PLATFORM.md): vLLM-CPU keeps a stale packed lm_head after reload
                raise ValueError("full-weight sync into vLLM on CPU needs a model with untied embeddings; use LoRA")
            path = self.files.write(update)
            await self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(path)})
            for old in self.loras.values():  # the new full weights are the policy now, with no adapter on top
                await self.llm.remove_lora(old.lora_int_id)
            self.loras = {}
        else:
            raise ValueError(f"unknown weight update kind {update.kind!r}")
        await self.llm.reset_prefix_cache()  # cached prefixes were computed with the old weights
        self.files.commit(path, update.route, full=update.kind == "full")
        self.version = update.version

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            handler = getattr(self.llm, "output_handler", None)
            if handler is not None:  # stop reading outputs first, so shutdown is not reported as a crash
                self.background.loop.call_soon_threadsafe(handler.cancel)
            try:
                self.llm.shutdown(timeout=2.0)  # the engine core ignores SIGTERM for a while; then it is killed
            except Exception as e:  # noqa: BLE001 - re-raised unless a process just vanished
                # vLLM's shutdown inspects its workers with psutil; one that exited meanwhile is what we want
                if not _process_gone(e):
                    raise
            self.llm = None  # collected now, not at interpreter exit (where vLLM's __del__ fails)
        finally:
            self.background.close()
            self.files.close()


def _process_gone(error: BaseException) -> bool:
    """True when `error` (or its cause) says a process vanished (psutil.NoSuchProcess, /proc/<pid> gone)."""
    while error is not None:
        if type(error).__name__ in ("NoSuchProcess", "ProcessLookupError") or "/proc/" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False
