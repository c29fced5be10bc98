"""The README demo's code path, shrunk: build model -> SFT -> LOOP -> summary; a rerun resumes."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes"))

SMALL = [
    "--preset", "cpu", "--local_model.hidden_size", "64", "--local_model.layers", "1", "--local_model.heads", "2",
    "--local_model.intermediate_size", "64", "--sft.tasks", "40", "--sft.steps", "10", "--sft.batch_size", "8",
    "--tasks_per_iteration", "3", "--rollouts_per_task", "2", "--eval.tasks", "5", "--eval.every", "1",
    "--checkpoint_every", "1", "--rollout.max_turns", "6",
]


@pytest.mark.slow
def test_cpu_recipe_runs_every_stage_and_resumes(tmp_path, capsys):
    import loop_sokoban

    out = tmp_path / "run"
    # the first run on the real vLLM (full-weight sync every iteration); the resume checks on the
    # HF engine, which starts in a second instead of ~35 s
    results = loop_sokoban.main(SMALL + ["--output_dir", str(out), "--rl.iterations", "2", "--engine", "vllm"])
    assert set(results) == {"untrained", "before RL", "after RL"}
    for stage in results.values():
        assert 0.0 <= stage["success_rate"] <= 1.0 and stage["mean_steps"] > 0
    for path in ("base_model/config.json", "sft_model/config.json", "rl/config.yaml", "rl/metrics.jsonl",
                 "rl/progress.png", "rl/final/config.json", "rl/checkpoints/iter_000002/trainer_state.json",
                 "results.json"):
        assert (out / path).exists(), path
    assert json.loads((out / "results.json").read_text()) == results
    assert any((out / "rl").glob("events.out.tfevents*")) or any((out / "rl").rglob("events.out.tfevents*"))
    printed = capsys.readouterr().out
    assert "Greedy success" in printed

    # a rerun with more iterations skips the built stages and continues RL from its checkpoint
    results_after_3 = loop_sokoban.main(SMALL + ["--output_dir", str(out), "--rl.iterations", "3", "--engine", "hf"])["after RL"]
    printed = capsys.readouterr().out
    assert "[sft]" not in printed and "continuing from" in printed and "iteration 3/3" in printed
    iterations = [r["iteration"] for r in map(json.loads, (out / "rl" / "metrics.jsonl").read_text().splitlines())
                  if "train/success_rate" in r]
    assert iterations == [1, 2, 3]

    # and a rerun of a finished run trains nothing, but still evaluates and prints the table
    again = loop_sokoban.main(SMALL + ["--output_dir", str(out), "--rl.iterations", "3", "--engine", "hf"])
    printed = capsys.readouterr().out
    assert "iteration 3/3" not in printed and "Greedy success" in printed
    assert again["after RL"]["success_rate"] == results_after_3["success_rate"]


def check_two_iteration_vllm_run(out: Path) -> list[dict]:
    """A recipe's run directory after SFT + 2 RL iterations on vLLM: every stage's output, both
    iterations logged, no failed episode (every one ran on the engine). Returns the metrics rows."""
    for path in ("base_model/config.json", "sft_model/config.json", "rl/config.yaml", "rl/metrics.jsonl",
                 "rl/final/config.json", "rl/checkpoints/iter_000002/trainer_state.json", "results.json"):
        assert (out / path).exists(), path
    assert "backend: vllm" in (out / "rl" / "config.yaml").read_text()
    rows = [json.loads(line) for line in (out / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows if "train/success_rate" in r] == [1, 2]
    assert all(r["train/failed"] == 0 for r in rows if "train/failed" in r)
    return rows


def alfworld_small(tmp_path: Path, games: int) -> list[str]:
    """An ALFWorld cpu preset shrunk: games generated under tmp_path, a 1-layer model, 2 RL iterations."""
    return [
        "--preset", "cpu", "--env.generated_dir", str(tmp_path / "games"), "--env.max_steps", "50",
        "--rollout.max_turns", "50", "--local_model.hidden_size", "64", "--local_model.layers", "1",
        "--local_model.heads", "2", "--local_model.intermediate_size", "64", "--local_model.corpus_tasks", str(games),
        "--sft.tasks", str(games), "--sft.steps", "3", "--task_pool", str(games), "--tasks_per_iteration", "2",
        "--rollouts_per_task", "2", "--rl.iterations", "2", "--eval.tasks", "2",
    ]


@pytest.mark.slow
@pytest.mark.alfworld
def test_alfworld_cpu_recipe_runs_on_vllm(tmp_path, capsys):
    """recipes/loop_alfworld.py's cpu preset, shrunk, end to end on the real engine and vLLM:
    generated games -> tokenizer/model -> SFT on the expert -> LOOP -> summary and run directory."""
    import loop_alfworld

    out = tmp_path / "run"
    results = loop_alfworld.main([
        "--output_dir", str(out), "--engine", "vllm", *alfworld_small(tmp_path, games=6)])
    assert set(results) == {"untrained", "before RL", "after RL"}
    check_two_iteration_vllm_run(out)
    from agentrl.episode import load_episodes

    episodes = load_episodes(str(out / "rl" / "episodes" / "train_00001.jsonl"))
    assert episodes and all(e.initial_observation.startswith("-= Welcome to TextWorld, ALFRED! =-") for e in episodes)
    assert all(e.turns and e.turns[0].info["gamefile"].startswith(str(tmp_path / "games")) for e in episodes)
    assert "Greedy success" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.appworld
def test_appworld_cpu_recipe_under_accelerate_launch(tmp_path):
    """`accelerate launch recipes/loop_appworld.py --preset cpu` (model shrunk): the built world, 4 env
    servers at once, SFT on ground-truth solutions, 2 LOOP iterations on vLLM; metrics and checkpoints
    written, and no server left running afterwards."""
    import subprocess

    out = tmp_path / "run"
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "accelerate"), "launch", "--config_file",
         str(ROOT / "launch" / "accelerate_cpu.yaml"), str(ROOT / "recipes" / "loop_appworld.py"),
         "--preset", "cpu", "--output_dir", str(out), "--engine", "vllm",
         "--local_model.hidden_size", "64", "--local_model.layers", "1", "--local_model.heads", "2",
         "--local_model.intermediate_size", "64", "--local_model.corpus_tasks", "4",
         "--sft.tasks", "8", "--sft.steps", "3", "--rollout.max_new_tokens", "64"],
        capture_output=True, text=True, timeout=1500, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    rows = check_two_iteration_vllm_run(out)
    assert any("eval/tgc" in r and "eval/sgc" in r for r in rows)
    from agentrl.episode import load_episodes

    servers = set()
    for it in (1, 2):
        episodes = load_episodes(str(out / "rl" / "episodes" / f"train_{it:05d}.jsonl"))
        assert len(episodes) == 4 and all(e.turns and e.turns[-1].info.get("num_tests", 0) >= 2 for e in episodes)
        assert all(e.reward == pytest.approx(e.turns[-1].info["pass_fraction"]) for e in episodes)
        servers |= {e.turns[-1].info["server"] for e in episodes}
    assert len(servers) == 4  # 2 tasks x K=2 episodes at once, one server each
    left = subprocess.run(["pgrep", "-af", "agentrl_appworld.serve"], capture_output=True, text=True).stdout
    assert not any(url.rsplit(":", 1)[1] in left for url in servers), left


@pytest.mark.slow
def test_dyna_vs_grpo_bench_trains_both_arms_from_one_resim_start(tmp_path, capsys):
    """bench/dyna_vs_grpo.py shrunk (HF engine): one ReSim start, a Dyna-GRPO arm whose first iteration
    runs SimRollouts, a GRPO arm that runs none, and the four-stage table."""
    sys.path.insert(0, str(ROOT / "bench"))
    import dyna_vs_grpo

    small = [a for a in SMALL if a != "cpu" and a != "--preset"] + [
        "--out", str(tmp_path), "--sft.steps", "20", "--rl.iterations", "2", "--rollouts_per_task", "4",
        "--rollout.max_new_tokens", "120", "--engine", "hf"]
    results = dyna_vs_grpo.main(small)
    assert list(results) == list(dyna_vs_grpo.STAGES)
    assert all(0.0 <= r["success_rate"] <= 1.0 for r in results.values())
    rows = {arm: [json.loads(line) for line in (tmp_path / arm / "metrics.jsonl").read_text().splitlines()]
            for arm in ("dyna", "grpo")}
    # iteration 1 is a simulation step: half of each task's 4 rollouts were SimRollouts; 2 is plain GRPO
    sim = {r["iteration"]: r.get("sim/episodes") for r in rows["dyna"] if "train/success_rate" in r}
    assert sim == {1: 3 * 2.0, 2: None}
    assert not any(k.startswith("sim/") for r in rows["grpo"] for k in r)
    printed = capsys.readouterr().out
    assert "ReSim + Dyna-GRPO" in printed and "Dyna-GRPO / GRPO wall time" in printed


@pytest.mark.parametrize("name", ["resim_sokoban", "dyna_grpo_sokoban", "resim_alfworld", "dyna_grpo_alfworld"])
def test_dyna_mind_recipes_presets_parse_and_validate(name):
    """Every preset of the ReSim / Dyna-GRPO recipes builds and validates (their runs are measured by
    bench/dyna_vs_grpo.py; on ALFWorld one game's trees take ~1 min of engine replays on CPU)."""
    import importlib

    from agentrl.algorithms import DynaGRPO
    from agentrl.config import parse_config

    module = importlib.import_module(name)
    for preset in module.PRESETS.values():
        recipe = parse_config(preset(), [])
        assert recipe.sft.demonstrations == "resim" and recipe.sft.steps > 0
        assert isinstance(recipe.rl.algorithm, DynaGRPO) == name.startswith("dyna")
    from agentrl.config import ConfigError

    with pytest.raises(ConfigError, match="resim_refine"):  # before any heavy work
        module.main(["--preset", "cpu", "--sft.resim_refine", "3"])


@pytest.mark.slow
def test_mle_cpu_recipe_runs_on_vllm(tmp_path, capsys):
    """recipes/mle_partial_credit.py's cpu preset, shrunk, on vLLM: sandboxed expert programs ->
    tokenizer/model -> SFT -> 2 asynchronous, duration-weighted GRPO iterations -> run directory."""
    import mle_partial_credit

    out = tmp_path / "run"
    results = mle_partial_credit.main([
        "--preset", "cpu", "--output_dir", str(out), "--engine", "vllm", "--local_model.hidden_size", "64",
        "--local_model.layers", "1", "--local_model.heads", "2", "--local_model.intermediate_size", "64",
        "--local_model.corpus_tasks", "3", "--sft.tasks", "6", "--sft.steps", "10", "--rl.iterations", "2",
        "--tasks_per_iteration", "2", "--rollouts_per_task", "2", "--eval.tasks", "2",
        "--rollout.max_new_tokens", "64"])
    assert set(results) == {"untrained", "before RL", "after RL"}
    rows = check_two_iteration_vllm_run(out)
    trained = [r for r in rows if "train/success_rate" in r]
    assert all("batch/duration_weight_max" in r and "importance_weight/mean" in r for r in trained)
    assert "async_rollouts: true" in (out / "rl" / "config.yaml").read_text()
    from agentrl.episode import load_episodes

    episodes = load_episodes(str(out / "rl" / "episodes" / "train_00001.jsonl"))
    assert episodes and all(t.duration > 0 and "duration_s" in t.info for e in episodes for t in e.turns)
    assert "Greedy success" in capsys.readouterr().out


def multitask_small(tmp_path: Path) -> list[str]:
    """recipes/scalezero_multitask.py's cpu preset shrunk: 1-layer model, 3 ALFWorld games generated
    under tmp_path (5 steps each), 2 RL iterations of 3 tasks x 2 rollouts, one held-out task per family."""
    alf = "--env.families.alfworld."
    return [
        "--preset", "cpu", alf + "generated_dir", str(tmp_path / "games"), alf + "train_games_per_type", "2",
        alf + "eval_games_per_type", "1", alf + "max_steps", "5", "--rollout.max_turns", "8",
        "--local_model.hidden_size", "64", "--local_model.layers", "1", "--local_model.heads", "2",
        "--local_model.intermediate_size", "64", "--local_model.corpus_tasks", "3", "--sft.tasks", "6",
        "--sft.steps", "3", "--sft.batch_size", "4", "--rl.iterations", "2", "--tasks_per_iteration", "3",
        "--rollouts_per_task", "2", "--eval.tasks", "3", "--checkpoint_every", "1",
        "--env.weights", "{alfworld: 1}",  # one held-out task per family (the preset's 0.25 would give ALFWorld none of 3)
    ]


@pytest.mark.slow
@pytest.mark.alfworld
def test_scalezero_cpu_recipe_serves_one_expert_per_family_on_vllm(tmp_path):
    """The multi-task recipe on vLLM multi-LoRA: every family's episodes ran (none failed), per-family
    metrics logged, the DPS stage switched after its 1-iteration budget, the final checkpoint holds one
    served adapter per family, and evaluating that checkpoint serves them: same per-family greedy
    results as the trainer's own last evaluation."""
    import scalezero_multitask

    from agentrl.evaluation import evaluate_checkpoint

    out = tmp_path / "run"
    results = scalezero_multitask.main(multitask_small(tmp_path) + [
        "--output_dir", str(out), "--engine", "vllm", "--experts.stage_iterations", "1"])
    rows = check_two_iteration_vllm_run(out)
    families = ["sokoban_short", "sokoban_long", "alfworld"]
    trained = [r for r in rows if "train/success_rate" in r]
    assert [r["dps/stage"] for r in trained] == [1.0, 1.0]  # switched after iteration 1, the last stage after
    for f in families:
        assert all(f"train/family/{f}/env_steps" in r for r in trained)
        assert f"eval/family/{f}/success_rate" in rows[-1]
    assert sorted(p.name for p in (out / "rl" / "final" / "adapters").iterdir()) == sorted(families)
    from agentrl.config import load_config

    cfg = load_config(scalezero_multitask.cpu_preset().rl, out / "rl" / "config.yaml")  # the run's own settings
    again, episodes = evaluate_checkpoint(str(out / "rl" / "final"), cfg.engine, cfg.env, cfg.rollout, cfg.eval, cfg.seed)
    after = results["after RL"]
    for f in families:
        assert again[f"family/{f}/success_rate"] == after[f"family/{f}/success_rate"]
        assert again[f"family/{f}/mean_steps"] == after[f"family/{f}/mean_steps"]
    assert {e.family for e in episodes} == set(families)


@pytest.mark.slow
@pytest.mark.alfworld
def test_multitask_bench_compares_shared_lora_experts_and_dps(tmp_path, capsys):
    """bench/multitask.py shrunk (HF engine): one SFT start, three arms with the same sampler and budget;
    one shared LoRA has a nonzero per-family gradient cosine, experts have exactly 0 (disjoint adapters),
    the DPS arm reaches stage 1; env steps are what each family's episodes took."""
    sys.path.insert(0, str(ROOT / "bench"))
    import multitask

    small = [a for a in multitask_small(tmp_path) if a not in ("--preset", "cpu")]
    # a penalty for moves that change nothing: rollouts of an unsolved level still differ in reward,
    # so both Sokoban families carry a gradient in the same update (ALFWorld's all-0 groups do not)
    signal = [a for f in ("sokoban_short", "sokoban_long") for a in (f"--env.families.{f}.blocked_move_penalty", "0.1")]
    results = multitask.main(small + signal + ["--out", str(tmp_path / "bench"), "--engine", "hf",
                                               "--experts.stage_iterations", "1", "--rollouts_per_task", "4",
                                               "--sft.steps", "40", "--sft.tasks", "12",  # valid moves, mostly
                                               "--save_episodes", "100"])  # all of them, to count steps
    assert list(results) == ["shared", "experts", "dps"]
    assert results["shared"]["cosine_mean"] != 0.0 and results["experts"]["cosine_mean"] == 0.0
    assert results["dps"]["stage"] == 1.0 and results["experts"]["stage"] == 0.0
    from agentrl.episode import load_episodes

    for arm, r in results.items():
        episodes = [e for it in (1, 2) for e in load_episodes(str(tmp_path / "bench" / arm / "episodes" / f"train_{it:05d}.jsonl"))]
        for f, steps in r["env_steps"].items():
            assert steps == sum(e.num_turns for e in episodes if e.family == f)
        assert r["before"] == results["shared"]["before"]  # every arm starts from the same SFT model
    printed = capsys.readouterr().out
    assert "(a) one shared LoRA" in printed and "(c) experts + DPS" in printed
