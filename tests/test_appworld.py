"""AppWorld through real env servers: AppWorld's engine and evaluator in its own venv (installed by
README's set-up), the built offline world, uvicorn servers on 127.0.0.1, our HTTP client env."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agentrl.env import Task
from agentrl_appworld import AppWorldConfig, extract_code, tgc_sgc
from agentrl_appworld.install import appworld_env, default_home, venv_python, world_root
from agentrl_appworld.metrics import pass_fraction
from agentrl_appworld.prompt import truncate

pytestmark = pytest.mark.appworld
SPLITS = ("train", "dev", "test_normal")


@pytest.fixture(scope="module")
def cfg():
    config = AppWorldConfig(num_servers=2, max_interactions=4)
    yield config
    config.pool().close()


def all_task_ids(cfg: AppWorldConfig) -> list[str]:
    return [t for split in SPLITS for t in cfg.dataset(split)]


def task(task_id: str) -> Task:
    return Task(task_id, {"task_id": task_id})


def template_of(cfg: AppWorldConfig, task_id: str) -> str:
    meta = cfg.resolved_root() / "data" / "tasks" / task_id / "ground_truth" / "metadata.json"
    return json.loads(meta.read_text())["template"]


def play(cfg: AppWorldConfig, task_id: str, actions: list[str]):
    """Run actions until the episode ends; returns (steps, env.report)."""
    env = cfg.make()
    try:
        env.reset(task(task_id))
        steps = []
        for action in actions:
            steps.append(env.step(action))
            if steps[-1].done:
                break
        return steps, env.report
    finally:
        env.close()


def gt(cfg: AppWorldConfig, task_id: str) -> str:
    return cfg.expert_actions(task(task_id))[0]


# --- the built world ----------------------------------------------------------------------
def test_built_world_has_scenarios_of_three_variants_over_several_apps(cfg):
    ids = all_task_ids(cfg)
    scenarios: dict[str, list[str]] = {}
    for task_id in ids:
        scenarios.setdefault(task_id.split("_")[0], []).append(task_id)
    assert all(sorted(v) == [f"{s}_1", f"{s}_2", f"{s}_3"] for s, v in scenarios.items())
    per_split = [{t.split("_")[0] for t in cfg.dataset(split)} for split in SPLITS]
    assert not (per_split[0] & per_split[1]) and not (per_split[0] & per_split[2]) and not (per_split[1] & per_split[2])
    apps = {app for t in ids for app in json.loads(
        (cfg.resolved_root() / "data" / "tasks" / t / "ground_truth" / "required_apps.json").read_text())}
    assert {"simple_note", "todoist", "spotify", "venmo"} <= apps, apps
    for t in ids[:3]:  # AppWorld's own task format
        tdir = cfg.resolved_root() / "data" / "tasks" / t
        specs = json.loads((tdir / "specs.json").read_text())
        assert set(specs) >= {"instruction", "supervisor", "datetime", "db_version"}
        assert (tdir / "dbs" / "model_hashes.json").exists() and (tdir / "ground_truth" / "evaluation.py").exists()
        assert {d["label"] for d in json.loads((tdir / "ground_truth" / "test_data.json").read_text())} <= {
            "no_op_fail", "no_op_pass"}


def test_ground_truth_of_every_built_task_succeeds_through_the_server(cfg):
    ids = all_task_ids(cfg)

    def one(task_id):
        steps, report = play(cfg, task_id, [gt(cfg, task_id)])
        return task_id, steps[-1], report

    with ThreadPoolExecutor(cfg.num_servers) as pool:
        results = list(pool.map(one, ids))
    failed = [(t, s.observation[-300:]) for t, s, _ in results if not (s.done and s.info["success"])]
    assert not failed, failed
    assert all(s.reward == 1.0 and r["num_tests"] == len(r["passes"]) >= 2 for _, s, r in results)


def test_empty_attempt_fails_and_a_wrong_answer_gets_its_passed_fraction(cfg):
    count_task = next(t for t in cfg.dataset("train") if template_of(cfg, t) == "simple_note.count_by_tag")
    # a wrong count: the answer test fails, "no note changed" passes -> 1 of 2 (hand count)
    steps, report = play(cfg, count_task, ["```python\napis.supervisor.complete_task(answer=-1)\n```"])
    assert steps[-1].done and steps[-1].info["task_completed"] and not steps[-1].info["success"]
    assert steps[-1].reward == pass_fraction(report) == 0.5
    assert [f["requirement"] for f in report["failures"]] == ["assert the answer is the number of notes with the tag."]
    # the right deletions but an answer to a question nobody asked -> 2 of 3
    delete_task = next(t for t in cfg.dataset("train") if template_of(cfg, t) == "simple_note.delete_by_tag")
    wrong = gt(cfg, delete_task).replace("apis.supervisor.complete_task()", "apis.supervisor.complete_task(answer=7)")
    steps, report = play(cfg, delete_task, [wrong])
    assert steps[-1].reward == pytest.approx(2 / 3) and report["num_tests"] == 3 and len(report["passes"]) == 2
    # doing nothing for max_interactions: evaluated anyway; only "no note added or updated" passes (the
    # answer test fails too: a task never completed has no answer at all) -> 1 of 3
    steps, report = play(cfg, delete_task, ["```python\nprint('thinking')\n```"] * cfg.max_interactions)
    assert len(steps) == cfg.max_interactions and steps[-1].done and not steps[-1].info["task_completed"]
    assert not steps[-1].info["success"] and steps[-1].reward == pass_fraction(report) == pytest.approx(1 / 3)
    assert [p["requirement"] for p in report["passes"]] == ["assert no note was added or updated."]


def test_tgc_and_sgc_of_a_mixed_set_equal_hand_counts(cfg):
    """Two scenarios: all three tasks of one solved, two of three of the other -> TGC 5/6, SGC 1/2."""
    scenarios = sorted({t.split("_")[0] for t in cfg.dataset("train")})[:2]
    plan = {f"{scenarios[0]}_{v}": True for v in (1, 2, 3)} | {f"{scenarios[1]}_{v}": v != 3 for v in (1, 2, 3)}
    from agentrl.episode import Episode

    episodes, reports = [], {}
    for task_id, solve in plan.items():
        steps, reports[task_id] = play(cfg, task_id, [gt(cfg, task_id) if solve else
                                                      "```python\napis.supervisor.complete_task()\n```"])
        episodes.append(Episode(task_id=task_id, group_id=task_id, episode_id=task_id, success=steps[-1].info["success"]))
    assert [e.success for e in episodes] == list(plan.values())
    assert cfg.metrics(episodes) == {"tgc": 83.3, "sgc": 50.0}
    # AppWorld's own Metric over the same evaluator reports gives the same numbers
    script = ("import json, sys\nfrom appworld.evaluator import Metric\n"
              "print(json.dumps(Metric._compute_metrics(json.load(sys.stdin))['aggregate']))")
    home = default_home()
    proc = subprocess.run([str(venv_python(home)), "-c", script], input=json.dumps(reports), capture_output=True,
                          text=True, env=appworld_env(home, world_root(home)), check=True)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"task_goal_completion": 83.3,
                                                                 "scenario_goal_completion": 50.0}
    assert tgc_sgc({"a_1": True, "a_2": True, "b_1": False, "c_1": True}) == (75.0, 66.7)  # hand: 3/4, 2/3
    assert tgc_sgc({}) == (0.0, 0.0)


def test_appworld_guard_refuses_os_system_and_the_episode_continues(cfg):
    task_id = cfg.dataset("dev")[0]
    env = cfg.make()
    try:
        env.reset(task(task_id))
        for code in ("import os\nos.system('ls /')", "import subprocess\nsubprocess.run(['ls'])",
                     "open('/etc/passwd').read()"):
            step = env.step(f"```python\n{code}\n```")
            assert not step.done and "not allowed" in step.observation, step.observation
        step = env.step(gt(cfg, task_id))
        assert step.done and step.info["success"]
    finally:
        env.close()


def test_a_killed_server_fails_its_episode_with_the_reason_and_is_restarted(cfg):
    """Two episodes at once; one server is SIGKILLed mid-episode: that episode fails (through the real
    rollout) with the reason, the other succeeds, and the restarted server serves the next episode."""
    import asyncio

    from agentrl.chat import ChatFormat
    from agentrl.engines.scripted import ScriptedEngine
    from agentrl.rollout import RolloutConfig, run_episode
    from agentrl_appworld.env import AppWorldEnv

    class KillsItsServer(AppWorldEnv):  # fault injection: the server dies as the agent's code is sent
        def step(self, action):
            os.killpg(self.server.process.pid, signal.SIGKILL)
            self.server.process.wait()
            return super().step(action)

    class FaultyConfig(AppWorldConfig):
        def make(self):
            return KillsItsServer(self)

    from agentrl.model_builder import build_tokenizer

    tokenizer = build_tokenizer([gt(cfg, t) for t in cfg.dataset("train")[:4]], vocab_size=400)
    faulty = FaultyConfig(num_servers=2, max_interactions=4)
    assert faulty.pool() is cfg.pool()  # same servers: the pool is shared per (python, world, size)
    ids = cfg.dataset("train")[:2]
    chat = ChatFormat(tokenizer)
    rollout = RolloutConfig(max_turns=2)

    async def both():
        return await asyncio.gather(
            run_episode(ScriptedEngine(tokenizer, [gt(cfg, ids[0])], 1 << 20), faulty, task(ids[0]), rollout, chat,
                        group_id="killed", episode_index=0, seed=0),
            run_episode(ScriptedEngine(tokenizer, [gt(cfg, ids[1])], 1 << 20), cfg, task(ids[1]), rollout, chat,
                        group_id="fine", episode_index=1, seed=0))

    restarts = len(cfg.pool().restart_log)
    killed, fine = asyncio.run(both())
    assert killed.failed and "AppWorld server died during the episode" in killed.failure_reason
    assert "it was restarted" in killed.failure_reason and not killed.success
    assert not fine.failed and fine.success
    assert len(cfg.pool().restart_log) == restarts + 1
    servers = cfg.pool().servers
    assert all(s.running() for s in servers)
    for task_id in cfg.dataset("dev")[:2]:  # every server answers again
        steps, _ = play(cfg, task_id, [gt(cfg, task_id)])
        assert steps[-1].info["success"]


# --- pieces -------------------------------------------------------------------------------
def test_code_is_taken_from_the_first_python_block():
    assert extract_code("Let me look.\n```python\nprint(1)\n```\nthen ```python\nprint(2)\n```") == ("print(1)", True)
    assert extract_code("```\nx = 2\n```") == ("x = 2", True)
    assert extract_code("```python\nprint(3)") == ("print(3)", True)  # cut off by max tokens
    assert extract_code("print(4)") == ("print(4)", False)
    text = "a" * 50 + "b" * 50
    cut = truncate(text, 30)
    assert cut.startswith("a" * 20) and cut.endswith("b" * 10) and "70 characters cut" in cut
    assert truncate("short", 30) == "short"


def test_bad_config_names_the_field(tmp_path):
    with pytest.raises(ValueError, match="reward must be one of"):
        AppWorldConfig(reward="tgc")
    with pytest.raises(ValueError, match="eval_split must differ"):
        AppWorldConfig(train_split="dev", eval_split="dev")
    with pytest.raises(FileNotFoundError, match="appworld_root: no AppWorld data"):
        AppWorldConfig(appworld_root=str(tmp_path)).tasks("train", 1, 0)


def test_tasks_are_seeded_and_splits_disjoint(cfg):
    a, b = cfg.tasks("train", 10, 3), cfg.tasks("train", 10, 3)
    assert [t.id for t in a] == [t.id for t in b]
    test_ids = {t.data["task_id"] for t in cfg.tasks("test", 50, 0)}
    assert not test_ids & {t.data["task_id"] for t in cfg.tasks("train", 100, 0)}
    many = cfg.tasks("test", len(cfg.dataset("dev")) + 2, 0)
    assert len({t.id for t in many}) == len(many) and any("#" in t.id for t in many)


def test_world_build_is_reproducible(tmp_path):
    """Two builds with one seed give byte-identical task files (base DBs and API docs copied, not rebuilt)."""
    home = default_home()
    src = world_root(home) / "data"
    outs = []
    for name in ("a", "b"):
        root = tmp_path / name
        (root / "data").mkdir(parents=True)
        for sub in ("api_docs", "base_dbs"):
            shutil.copytree(src / sub, root / "data" / sub)
        subprocess.run([str(venv_python(home)), "-m", "agentrl_appworld.world.build", "--root", str(root),
                        "--scenarios", "1", "--seed", "5", "--templates", "simple_note.count_by_tag"],
                       check=True, env=appworld_env(home, root), capture_output=True)
        outs.append({p.relative_to(root): p.read_bytes() for p in sorted((root / "data" / "tasks").rglob("*"))
                     if p.is_file()})
    assert outs[0] == outs[1] and len(outs[0]) > 10
