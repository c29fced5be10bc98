"""vLLM over HTTP: one or many OpenAI-compatible servers (start them with launch/vllm_server.sh).

Token ids go in (`prompt` as a list of ids) and come back (`return_token_ids`) with the
sampled tokens' logprobs, so nothing is re-tokenized. Each request goes to the healthy
server with the fewest requests in flight. A connection error marks that server down and
the request is retried on another after a backoff; when every server stays down the
request fails with `ServersDown`, which fails the episode (not the run). Down servers are
health-checked again from time to time; one that answers gets the current weights
re-applied before it is used.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from agentrl.engines.background_loop import BackgroundLoop
from agentrl.engines.base import Completion, Engine, SamplingParams, WeightUpdate
from agentrl.engines.weight_files import WeightFiles, adapter_name


class ServersDown(RuntimeError):
    """No vLLM server could serve a request."""


@dataclass
class _Server:
    url: str
    up: bool = False
    in_flight: int = 0
    error: str = "not contacted yet"


class VLLMServerEngine(Engine):
    def __init__(
        self,
        model: str,
        urls: list[str],
        *,
        sync_dir: str | None = None,
        request_timeout: float = 600.0,
        max_retries: int = 4,
        retry_backoff: float = 0.5,
        probe_interval: float = 10.0,
    ) -> None:
        import httpx
        from transformers import AutoTokenizer

        if not urls:
            raise ValueError("urls: the vllm_server engine needs at least one server URL")
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.servers = [_Server(u.rstrip("/")) for u in urls]
        self.max_retries, self.retry_backoff = max_retries, retry_backoff
        self.files = WeightFiles(sync_dir)
        self.version = 0
        self._weights: tuple[str, str] | None = None  # (kind, path) every up server is serving
        self._served_name: str | None = None  # the adapter name while serving LoRA
        self.probe_interval = probe_interval
        self._last_probe = time.monotonic()
        self._probing: asyncio.Future | None = None
        self.background = BackgroundLoop("vllm-http")
        self._client = self.background.run(self._make_client(httpx, request_timeout))
        self.background.run(self._probe_all())
        up = [s for s in self.servers if s.up]
        if not up:
            self.close()
            raise ServersDown(_describe(self.servers))
        self.base_name, self.max_model_len = self._model_info(up[0])

    @staticmethod
    async def _make_client(httpx, timeout: float):
        return httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=5.0))

    def _model_info(self, server: _Server) -> tuple[str, int]:
        async def get():
            r = await self._client.get(f"{server.url}/v1/models")
            r.raise_for_status()
            card = r.json()["data"][0]
            return card["id"], int(card.get("max_model_len") or 2**31 - 1)

        return self.background.run(get())

    # -- health --------------------------------------------------------------
    async def _probe(self, server: _Server) -> None:
        """Mark `server` up if it answers /health, re-applying the current weights first."""
        import httpx

        try:
            r = await self._client.get(f"{server.url}/health", timeout=5.0)
            if r.status_code != 200:
                raise RuntimeError(f"/health answered {r.status_code}")
            if self._weights is not None:
                await self._apply(server, *self._weights)
            server.up, server.error = True, ""
        except (httpx.TransportError, RuntimeError) as exc:
            server.up, server.error = False, f"{type(exc).__name__}: {exc}"

    async def _probe_all(self) -> None:
        await asyncio.gather(*(self._probe(s) for s in self.servers if not s.up))

    async def _pick(self) -> _Server:
        """The up server with the fewest requests in flight. Down servers are re-probed (one
        round shared by every request) at once when none is up, else every `probe_interval`
        seconds in the background, so a server that comes back rejoins."""
        up = [s for s in self.servers if s.up]
        probing = self._probing is not None and not self._probing.done()
        if len(up) < len(self.servers) and not probing and (
            not up or time.monotonic() - self._last_probe >= self.probe_interval
        ):
            self._last_probe = time.monotonic()
            self._probing = asyncio.ensure_future(self._probe_all())
        if not up and self._probing is not None:
            await asyncio.shield(self._probing)  # shared: one waiter's cancellation must not stop it
            up = [s for s in self.servers if s.up]
        if not up:
            raise ServersDown(_describe(self.servers))
        return min(up, key=lambda s: s.in_flight)

    # -- generation ----------------------------------------------------------
    async def generate(self, prompt_ids: list[int], sampling: SamplingParams) -> Completion:
        return (await self.generate_n(prompt_ids, sampling, 1))[0]

    async def generate_n(self, prompt_ids: list[int], sampling: SamplingParams, n: int) -> list[Completion]:
        self.check_request(prompt_ids, sampling)
        body = {
            "model": self._served_name or self.base_name, "prompt": list(prompt_ids), "n": n,
            "max_tokens": sampling.max_new_tokens, "temperature": sampling.temperature, "top_p": sampling.top_p,
            "seed": sampling.seed, "stop_token_ids": list(sampling.stop_token_ids), "logprobs": 0,
            "return_token_ids": True, "skip_special_tokens": False,
        }
        return await self.background.submit(self._complete(body))

    async def _complete(self, body: dict[str, Any]) -> list[Completion]:
        import httpx

        for attempt in range(self.max_retries + 1):
            try:
                server = await self._pick()
            except ServersDown:
                if attempt == self.max_retries:
                    raise
                await asyncio.sleep(self.retry_backoff * 2**attempt)
                continue
            server.in_flight += 1
            try:
                r = await self._client.post(f"{server.url}/v1/completions", json=body)
            except httpx.TransportError as exc:
                server.up, server.error = False, f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(self.retry_backoff * 2**attempt)
                continue
            finally:
                server.in_flight -= 1
            if r.status_code >= 500:
                server.error = f"HTTP {r.status_code}: {r.text[:200]}"
                await asyncio.sleep(self.retry_backoff * 2**attempt)
                continue
            if r.status_code != 200:  # our request is wrong: retrying will not help
                raise ValueError(f"{server.url}/v1/completions answered {r.status_code}: {r.text[:500]}")
            return [_completion(c) for c in sorted(r.json()["choices"], key=lambda c: c["index"])]
        raise ServersDown(_describe(self.servers))

    # -- weights -------------------------------------------------------------
    def sync(self, update: WeightUpdate) -> None:
        if update.kind not in ("lora", "full"):
            raise ValueError(f"unknown weight update kind {update.kind!r}")
        if update.route:
            raise ValueError("task-routed LoRA experts (one adapter per family) are served by engine vllm or hf; "
                             "vllm_server serves one adapter")
        path = self.files.write(update)
        self.background.run(self._sync_all(update.kind, str(path), update.version))
        self.files.commit(path, full=update.kind == "full")

    async def _sync_all(self, kind: str, path: str, version: int) -> None:
        previous = self._served_name
        self._weights = (kind, path)
        self._served_name = adapter_name(version) if kind == "lora" else None
        import httpx

        targets = [s for s in self.servers if s.up]
        results = await asyncio.gather(*(self._apply(s, kind, path) for s in targets), return_exceptions=True)
        for server, result in zip(targets, results):
            if isinstance(result, httpx.TransportError):  # it died: it gets these weights when it is back
                server.up, server.error = False, f"{type(result).__name__}: {result}"
            elif isinstance(result, BaseException):  # the server refused the weights: nothing to retry
                raise RuntimeError(f"weight sync failed on {server.url}: {result}") from result
        if previous and previous != self._served_name:
            await asyncio.gather(*(self._post(s, "/v1/unload_lora_adapter", {"lora_name": previous}, ok_missing=True)
                                   for s in self.servers if s.up))
        self.version = version

    async def _apply(self, server: _Server, kind: str, path: str) -> None:
        if kind == "lora":
            await self._post(server, "/v1/load_lora_adapter",
                             {"lora_name": self._served_name, "lora_path": path, "load_inplace": True})
        else:
            await self._post(server, "/collective_rpc",
                             {"method": "reload_weights", "kwargs": {"weights_path": path}})
        await self._post(server, "/reset_prefix_cache", {})

    async def _post(self, server: _Server, route: str, body: dict, ok_missing: bool = False) -> None:
        r = await self._client.post(f"{server.url}{route}", json=body)
        if r.status_code == 404 and route in ("/collective_rpc", "/reset_prefix_cache"):
            raise RuntimeError(f"{server.url}{route} not found: start the server with VLLM_SERVER_DEV_MODE=1 "
                               "(launch/vllm_server.sh does)")
        if r.status_code != 200 and not (ok_missing and r.status_code in (400, 404)):
            raise RuntimeError(f"{server.url}{route} answered {r.status_code}: {r.text[:300]}")

    def close(self) -> None:
        if getattr(self, "_client", None) is not None:
            try:
                self.background.run(self._client.aclose(), timeout=10)
            except Exception:
                pass
            self._client = None
        self.background.close()
        self.files.close()


def _completion(choice: dict) -> Completion:
    token_ids = list(choice["token_ids"])
    logprobs = [float(x) for x in choice["logprobs"]["token_logprobs"]]
    return Completion(token_ids, logprobs, "stop" if choice["finish_reason"] == "stop" else "length")


def _describe(servers: list[_Server]) -> str:
    return "every vLLM server is down: " + "; ".join(f"{s.url} ({s.error})" for s in servers)
