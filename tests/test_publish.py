"""`agentrl publish` on a real (tiny) training run: the real huggingface_hub client pushes it to a
fake Hub on 127.0.0.1 (tests/fake_hub.py); the files, the model card and its model-index are
checked against the run itself; `--dry-run` writes the same files with no server."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agentrl.cli import main
from fake_hub import FakeHub

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hf_test_secret"
TOKENIZER = {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"}
COMMON = {"README.md", "training_config.yaml", "progress.png"} | TOKENIZER
LORA_FILES = COMMON | {"adapter_config.json", "adapter_model.safetensors"}
MERGED_FILES = COMMON | {"config.json", "generation_config.json", "model.safetensors"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A real recipe run (build model -> SFT -> 2 LOOP iterations with LoRA -> results.json), tiny
    enough for ~20 s on 2 cores; a step penalty keeps success rate and mean reward apart."""
    sys.path.insert(0, str(ROOT / "recipes"))
    import loop_sokoban

    out = tmp_path_factory.mktemp("publish") / "loop_sokoban"
    loop_sokoban.main([
        "--preset", "cpu", "--output_dir", str(out), "--engine", "hf", "--trackers", "[]",
        "--local_model.hidden_size", "64", "--local_model.layers", "2", "--local_model.heads", "2",
        "--local_model.intermediate_size", "128", "--local_model.corpus_tasks", "50",
        "--env.width", "5", "--env.height", "5", "--env.max_solution_length", "6", "--env.step_penalty", "0.01",
        "--sft.tasks", "200", "--sft.steps", "120", "--sft.batch_size", "32", "--sft.lr", "3e-3",
        "--sft.warmup_steps", "10", "--rl.iterations", "2", "--tasks_per_iteration", "4", "--rollouts_per_task", "4",
        "--eval.tasks", "10", "--eval.every", "1", "--rollout.max_turns", "8",
        "--rl.learner.lora.enabled", "true", "--rl.learner.lora.r", "4", "--rl.learner.lr", "1e-3",
    ])
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _push(run: Path, hub: FakeHub, *args: str, token_env: str | None = TOKEN, home: Path) -> subprocess.CompletedProcess:
    """`agentrl publish` as a user runs it: its own process, the endpoint and token from the environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_TOKEN")}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(home), HF_HUB_DISABLE_PROGRESS_BARS="1")
    if token_env:
        env["HF_TOKEN"] = token_env
    return subprocess.run([sys.executable, "-m", "agentrl.cli", "publish", str(run), *args], env=env,
                          capture_output=True, text=True, timeout=120)


def _card(content: str):
    from huggingface_hub import ModelCard

    return ModelCard(content)  # parses the YAML and the model-index (raises on a malformed one)


def _model_index(card) -> dict[str, float]:
    return {r.metric_type: r.metric_value for r in card.data.eval_results}


def test_push_uploads_adapter_card_and_curves(run_dir, tmp_path):
    results = json.loads((run_dir / "results.json").read_text())
    final = run_dir / "rl" / "final"
    with FakeHub(TOKEN) as hub:
        done = _push(run_dir, hub, "--repo-id", "agentrl-tests/tiny-sokoban", home=tmp_path / "hf")
        assert done.returncode == 0, done.stdout + done.stderr
        assert hub.unexpected == []
        repo = hub.repos["agentrl-tests/tiny-sokoban"]
    uploaded = repo["files"]
    assert set(uploaded) == LORA_FILES
    assert repo["private"] is False and len(repo["commits"]) == 1
    # the bytes are the run's own files
    assert uploaded["adapter_model.safetensors"] == (final / "adapter" / "adapter_model.safetensors").read_bytes()
    assert uploaded["adapter_config.json"] == (final / "adapter" / "adapter_config.json").read_bytes()
    for name in TOKENIZER:
        assert uploaded[name] == (final / name).read_bytes()
    assert uploaded["training_config.yaml"] == (run_dir / "rl" / "config.yaml").read_bytes()
    assert uploaded["progress.png"] == (run_dir / "rl" / "progress.png").read_bytes()
    assert uploaded["progress.png"][:8] == b"\x89PNG\r\n\x1a\n"

    card = _card(uploaded["README.md"].decode())
    assert _model_index(card) == results["after RL"]  # exactly the numbers the recipe measured
    assert results["after RL"]["success_rate"] != results["after RL"]["mean_reward"]  # the check can tell them apart
    first = card.data.eval_results[0]
    assert (first.task_type, first.dataset_type, first.dataset_split) == ("reinforcement-learning", "agentrl/sokoban", "test")
    assert card.data.model_name == "tiny-sokoban" and card.data.library_name == "peft"
    assert card.data.base_model is None  # a local checkpoint is not a Hub id: not claimed as one
    assert {"agentrl", "loop", "sokoban"} <= set(card.data.tags)
    text = card.text
    assert "**LOOP**" in text and "![training curves](progress.png)" in text
    assert "| learner.lr | 0.001 |" in text and "| learner.lora.r | 4 |" in text and "| step_penalty | 0.01 |" in text
    for stage in ("untrained", "before RL", "after RL"):
        assert stage in text
    assert f"{results['untrained']['invalid_action_rate']:.1%}" in text

    # a dry run writes exactly what was pushed, byte for byte, with no server
    dry = tmp_path / "dry"
    assert main(["publish", str(run_dir), "--repo-id", "agentrl-tests/tiny-sokoban", "--dry-run", str(dry)]) == 0
    assert _files(dry) == uploaded


def test_push_merged_private_with_token_flag(run_dir, tmp_path):
    final = run_dir / "rl" / "final"
    with FakeHub(TOKEN) as hub:
        done = _push(run_dir, hub, "--repo-id", "agentrl-tests/merged", "--merge", "--private", "--token", TOKEN,
                     "--reproduce", "python recipes/loop_sokoban.py --preset cpu", token_env=None, home=tmp_path / "hf")
        assert done.returncode == 0, done.stdout + done.stderr
        repo = hub.repos["agentrl-tests/merged"]
    assert repo["private"] is True
    assert set(repo["files"]) == MERGED_FILES
    for name in ("model.safetensors", "config.json", "generation_config.json"):
        assert repo["files"][name] == (final / name).read_bytes()
    card = _card(repo["files"]["README.md"].decode())
    assert card.data.library_name == "transformers"
    assert 'AutoModelForCausalLM.from_pretrained("agentrl-tests/merged")' in card.text
    assert "python recipes/loop_sokoban.py --preset cpu" in card.text


def test_wrong_token_fails_clearly_and_commits_nothing(run_dir, tmp_path):
    with FakeHub(TOKEN) as hub:
        done = _push(run_dir, hub, "--repo-id", "agentrl-tests/denied", token_env="hf_wrong", home=tmp_path / "hf")
        assert hub.repos == {}
    assert done.returncode == 1
    assert "publish error: pushing to agentrl-tests/denied" in done.stdout and "401" in done.stdout
    assert "Traceback" not in done.stderr


def test_card_rebuilds_the_run_config_and_its_eval(run_dir, tmp_path):
    """The card's reproduce code rebuilds the very TrainConfig the run saved, and its eval command
    parses back to the run's env, rollout and eval settings."""
    from agentrl.cli import _eval_command, build_parser
    from agentrl.config import config_to_dict, format_config

    dry = tmp_path / "dry"
    assert main(["publish", str(run_dir), "--repo-id", "me/x", "--dry-run", str(dry)]) == 0
    text = (dry / "README.md").read_text()
    code = text.split("```python\n")[-1].split("```")[0]
    assert code.rstrip().endswith("Trainer(cfg).fit()")
    scope: dict = {}
    cwd = os.getcwd()
    try:
        os.chdir(dry)
        rebuild = [line for line in code.splitlines() if not line.startswith(("cfg.output_dir", "Trainer("))]
        exec("\n".join(rebuild), scope)  # everything but the new output_dir and the training itself
    finally:
        os.chdir(cwd)
    saved = (run_dir / "rl" / "config.yaml").read_text()
    assert "# TrainConfig\n" + format_config(scope["cfg"]) == saved

    command = text.split("```bash\n")[-1].split("```")[0].replace("\\\n", " ")
    argv = shlex.split(command)
    assert argv[:2] == ["agentrl", "eval"]
    argv[argv.index("--model") + 1] = str(run_dir / "rl" / "final")
    args, rest = build_parser().parse_known_args(argv[1:])
    args.config_overrides = rest
    cfg = config_to_dict(_eval_command(args, "eval"))
    run = config_to_dict(scope["cfg"])
    assert cfg["env"] == run["env"] and cfg["rollout"] == run["rollout"]
    assert {k: v for k, v in cfg["eval"].items() if k != "every"} == {k: v for k, v in run["eval"].items() if k != "every"}


def test_trainer_run_dir_takes_results_from_metrics(run_dir, tmp_path):
    """A Trainer's output_dir has no results.json: the card's stages are the first and last
    evaluations in metrics.jsonl, which are the numbers the recipe put in results.json."""
    results = json.loads((run_dir / "results.json").read_text())
    run = tmp_path / "trainer_run"
    shutil.copytree(run_dir / "rl", run, ignore=shutil.ignore_patterns("checkpoints"))
    dry = tmp_path / "dry"
    assert main(["publish", str(run), "--repo-id", "me/x", "--dry-run", str(dry)]) == 0
    assert set(_files(dry)) == LORA_FILES
    card = _card((dry / "README.md").read_text())
    assert _model_index(card) == results["after RL"]
    assert "| metric | before RL | after RL |" in card.text and "untrained" not in card.text


def test_unmerged_adapter_is_merged_like_the_trainer(run_dir, tmp_path):
    """A LoRA run saved unmerged (final/adapter/ + tokenizer only): --merge builds full weights
    from the adapter and its base model, equal to the ones the trainer merged itself."""
    import torch
    from safetensors.torch import load_file

    copy = tmp_path / "run"
    shutil.copytree(run_dir / "rl", copy, ignore=shutil.ignore_patterns("checkpoints"))
    for name in ("model.safetensors", "config.json", "generation_config.json"):
        (copy / "final" / name).unlink()
    dry = tmp_path / "dry"
    assert main(["publish", str(copy), "--repo-id", "me/x", "--merge", "--dry-run", str(dry)]) == 0
    assert set(_files(dry)) == MERGED_FILES
    ours, trainers = load_file(str(dry / "model.safetensors")), load_file(str(run_dir / "rl" / "final" / "model.safetensors"))
    assert ours.keys() == trainers.keys()
    for key in trainers:
        torch.testing.assert_close(ours[key], trainers[key], rtol=1e-5, atol=1e-6)
    lora_delta = max((ours[k] - load_file(str(run_dir / "sft_model" / "model.safetensors"))[k]).abs().max().item()
                     for k in ours if "proj" in k)
    assert lora_delta > 0  # the adapter really was merged in (LoRA B moved off zero in training)


def test_experts_checkpoint(run_dir, tmp_path):
    """A LoRA-experts final/ (base weights + adapters/<family>/, written with the learner's own
    save_routed_adapters): the adapters by default, the base weights with them on --merge."""
    from agentrl.engines.base import WeightUpdate, save_routed_adapters

    run = tmp_path / "run"
    shutil.copytree(run_dir / "rl", run, ignore=shutil.ignore_patterns("checkpoints", "final"))
    shutil.copytree(run_dir / "sft_model", run / "final")  # the base model, as Learner.save_pretrained writes it
    adapter = run_dir / "rl" / "final" / "adapter"
    save_routed_adapters([WeightUpdate.load_adapter(adapter, "boxes"), WeightUpdate.load_adapter(adapter, "")], run / "final")
    experts = {f"adapters/{r}/{n}" for r in ("boxes", "default") for n in ("adapter_config.json", "adapter_model.safetensors")}
    dry = tmp_path / "dry"
    assert main(["publish", str(run), "--repo-id", "me/x", "--dry-run", str(dry)]) == 0
    assert set(_files(dry)) == COMMON | experts
    merged = tmp_path / "merged"
    assert main(["publish", str(run), "--repo-id", "me/x", "--merge", "--dry-run", str(merged)]) == 0
    assert set(_files(merged)) == MERGED_FILES | experts
    assert (merged / "model.safetensors").read_bytes() == (run_dir / "sft_model" / "model.safetensors").read_bytes()
    assert "one LoRA adapter per task family" in (dry / "README.md").read_text()


@pytest.mark.parametrize("case, message", [
    ("empty", "is not an agentrl run directory"),
    ("no_final", "has no final/ model"),
    ("missing", "is not a directory"),
    ("bad_repo", "--repo-id"),
    ("dry_not_empty", "is not an empty directory"),
])
def test_bad_input_is_named(case, message, run_dir, tmp_path, capsys):
    path, repo, dry = tmp_path / "empty", "me/x", tmp_path / "dry"
    path.mkdir()
    if case == "no_final":
        shutil.copy(run_dir / "rl" / "config.yaml", path / "config.yaml")
    if case == "missing":
        path = tmp_path / "nothing"
    if case in ("bad_repo", "dry_not_empty"):
        path = run_dir
    if case == "bad_repo":
        repo = "a/b/c"
    if case == "dry_not_empty":
        dry.mkdir()
        (dry / "x").write_text("x")
    assert main(["publish", str(path), "--repo-id", repo, "--dry-run", str(dry)]) == 2
    assert message in capsys.readouterr().out


def test_offline_mode_refuses_to_push(run_dir, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets at import
    assert main(["publish", str(run_dir), "--repo-id", "me/x"]) == 2
    assert "HF_HUB_OFFLINE" in capsys.readouterr().out
