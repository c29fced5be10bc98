"""Several processes against one: DDP and DeepSpeed ZeRO-2/ZeRO-3 (gloo, CPU), started by
`accelerate launch` with the configs in launch/ exactly as README tells users to.

- the same fixed batches (tests/distributed_job.py) give the same loss curve, grad norms and
  weights on 2 processes as on 1, for full fine-tuning and LoRA;
- a ZeRO-3 recipe run syncs its (partitioned) weights to a real vLLM server after every update,
  and what the server generates at the end is what the consolidated `final/` model generates.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = [pytest.mark.distributed, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / "tests" / "distributed_job.py"


def _run(command: list[str], log: Path, timeout: float = 420) -> None:
    """Run `command` from the repository root (launch/ configs name their JSON relative to it)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    with open(log, "w") as out:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = "timeout"
    assert rc == 0, f"{' '.join(command)} exited {rc}; log tail:\n" + log.read_text()[-4000:]


def _launch(config: str, script: list[str], log: Path) -> None:
    from agentrl.engines.vllm_launch import free_port

    accelerate = str(Path(sys.executable).parent / "accelerate")
    _run([accelerate, "launch", "--config_file", f"launch/{config}.yaml", "--main_process_port", str(free_port()),
          *script], log)


_single: dict[str, Path] = {}


def _one_process(tiny_model: str, mode: str, root: Path) -> Path:
    if mode not in _single:
        out = root / f"one_{mode}"
        _run([sys.executable, str(JOB), tiny_model, str(out), mode], root / f"one_{mode}.log")
        _single[mode] = out
    return _single[mode]


@pytest.mark.parametrize("config, mode", [
    ("ddp_cpu", "full"), ("deepspeed_zero2", "full"), ("deepspeed_zero3", "full"),
    ("deepspeed_zero2", "lora"), ("deepspeed_zero3", "lora"),
])
def test_two_processes_train_like_one(tiny_model, tmp_path_factory, config, mode):
    root = tmp_path_factory.getbasetemp() / "distributed"
    root.mkdir(exist_ok=True)
    one = _one_process(tiny_model, mode, root)
    two = root / f"{config}_{mode}"
    _launch(config, [str(JOB), tiny_model, str(two), mode], root / f"{config}_{mode}.log")

    a, b = (json.loads((d / "curve.json").read_text()) for d in (one, two))
    assert a["processes"] == 1 and b["processes"] == 2
    assert b["distributed_type"] == ("DistributedType.MULTI_CPU" if config == "ddp_cpu" else "DistributedType.DEEPSPEED")
    assert [u["steps"] for u in b["curve"]] == [u["steps"] for u in a["curve"]] == [4.0, 4.0, 4.0, 1.0, 1.0]
    for u, v in zip(a["curve"], b["curve"]):
        assert v["loss"] == pytest.approx(u["loss"], abs=1e-5)
        assert v["grad_norm"] == pytest.approx(u["grad_norm"], rel=1e-4)
    # the trained (exported) weights, tensor by tensor, and the consolidated checkpoints
    wa, wb = load_file(str(one / "export.safetensors")), load_file(str(two / "export.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=0, atol=2e-5, msg=k)
    fa, fb = load_file(str(one / "final" / "model.safetensors")), load_file(str(two / "final" / "model.safetensors"))
    assert fa.keys() == fb.keys()
    for k in fa:
        torch.testing.assert_close(fb[k], fa[k], rtol=0, atol=2e-5, msg=k)
    # ... and training moved them: a learner that did nothing would fail here
    base = load_file(str(Path(tiny_model) / "model.safetensors"))
    assert max(float((fb[k].float() - base[k].float()).abs().max()) for k in base) > 1e-3


@pytest.mark.vllm
def test_zero3_run_syncs_to_vllm_and_serves_the_consolidated_model(sft_model, sokoban_env, tmp_path):
    tiny_model = sft_model  # it sometimes solves: rewards vary, so the updates move the weights
    from agentrl.chat import ChatFormat
    from agentrl.engines.base import SamplingParams
    from agentrl.engines.vllm_launch import VLLMServer
    from agentrl.engines.vllm_server import VLLMServerEngine
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    with VLLMServer(tiny_model, dtype="float32", enforce_eager=True, log_file=tmp_path / "server.log") as server:
        _launch("deepspeed_zero3", [
            "recipes/loop_sokoban.py", "--preset", "cpu", "--model", tiny_model, "--sft.steps", "0",
            "--output_dir", str(out), "--env.width", "5", "--env.height", "5", "--env.max_solution_length", "6",
            "--rl.iterations", "2", "--rl.tasks_per_iteration", "8", "--rl.rollouts_per_task", "4",
            "--rl.learner.lr", "3e-3", "--rl.eval.tasks", "4", "--rl.eval.every", "0",
            "--rl.engine", "vllm_server", "--rl.engine.urls", server.url,
        ], tmp_path / "zero3.log")
        log = (tmp_path / "zero3.log").read_text()
        assert "[train] iteration 2/2" in log
        metrics = [json.loads(line) for line in (out / "rl" / "metrics.jsonl").read_text().splitlines()]
        assert [m["iteration"] for m in metrics if "train/success_rate" in m] == [1, 2]
        assert any("loss/policy" in m for m in metrics), "no update ran (no reward variance in any group)"

        final = AutoModelForCausalLM.from_pretrained(str(out / "rl" / "final"), dtype=torch.float32).eval()
        base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
        client = VLLMServerEngine(tiny_model, [server.url])
        chat, env = ChatFormat(client.tokenizer), sokoban_env.make()
        prompts = [chat.first_prompt(env.reset(t), env.system_prompt) for t in sokoban_env.tasks("test", 4, seed=0)]
        try:
            import asyncio

            async def served():
                return await asyncio.gather(*(client.generate(p, SamplingParams(0.0, 1.0, 6)) for p in prompts))

            completions = asyncio.run(served())
        finally:
            client.close()
    moved = 0.0
    for prompt, c in zip(prompts, completions):
        ids = torch.tensor([prompt + c.token_ids])
        with torch.no_grad():
            greedy = final.generate(torch.tensor([prompt]), max_new_tokens=6, do_sample=False, top_p=None, top_k=None)
            logp = torch.log_softmax(final(ids).logits[0, len(prompt) - 1: -1].float(), -1)
            logp_base = torch.log_softmax(base(ids).logits[0, len(prompt) - 1: -1].float(), -1)
        assert c.token_ids == greedy[0, len(prompt):].tolist()[: len(c.token_ids)]
        picked = logp.gather(-1, torch.tensor(c.token_ids)[:, None]).squeeze(-1)
        torch.testing.assert_close(torch.tensor(c.logprobs), picked, rtol=0, atol=1e-4)
        moved = max(moved, float((logp - logp_base).abs().max()))
    assert moved > 1e-3, "the served model is still the base model: the ZeRO-3 weights never arrived"
