"""ALFWorld on the real TextWorld engine: generated games, the env, real-data discovery, threads."""
from __future__ import annotations

import json
import re
import shutil
import threading
from pathlib import Path

import alfworld.gen.constants as C
import pytest

# installed by README's set-up: an ImportError here means a broken install, never a skip
from agentrl_alfworld import TASK_TYPES, AlfWorldConfig, generate_game, parse_command
from agentrl_alfworld.generate import generate_many
from agentrl_alfworld.generate import main as generate_main

pytestmark = pytest.mark.alfworld

PER_TYPE = 5


@pytest.fixture(scope="module")
def games(tmp_path_factory):
    """5 games of each of the 6 task types (seeds 0..4, train split), 2 engine processes at once."""
    root = tmp_path_factory.mktemp("alfworld")
    jobs = [(task_type, seed) for task_type in TASK_TYPES.values() for seed in range(PER_TYPE)]
    paths, stats = generate_many(root, jobs, "train", workers=2)
    return root, paths, stats


def _config(root: Path, **kwargs) -> AlfWorldConfig:
    """Generated-games config whose train pool is exactly the fixture's games."""
    return AlfWorldConfig(generated_dir=str(root), train_games_per_type=PER_TYPE, **kwargs)


def _task(cfg: AlfWorldConfig, gamefile: Path, task_type: str):
    from agentrl.env import Task

    return Task(f"t/{gamefile.parent.name}", {"gamefile": str(gamefile), "task_type": task_type})


def _play(env, task, actions) -> list:
    out = [env.reset(task)]
    for action in actions:
        step = env.step(action)
        out.append((step.observation, step.reward, step.done, step.info.get("success"), step.info["invalid_action"]))
        if step.done:
            break
    return out


def test_generator_all_types_expert_wins(games):
    root, paths, stats = games
    assert stats["games"] == len(paths) == 6 * PER_TYPE  # every game: the expert won it on the engine
    rejected = {k: v for k, v in stats.items() if k.startswith("rejected")}
    assert set(rejected) <= {"rejected: not won after 50 steps"}, rejected  # the only allowed reason
    for (task_type, seed), path in paths.items():
        game, traj = json.loads(path.read_text()), json.loads((path.parent / "traj_data.json").read_text())
        assert game["solvable"] is True and game["walkthrough"][0] == "look"
        description = traj["turk_annotations"]["anns"][0]["task_desc"]
        assert "UNKNOWN GOAL" not in game["grammar"] and f"Your task is to: {description}." in game["grammar"]
        assert set(game) == {"pddl_domain", "grammar", "pddl_problem", "solvable", "walkthrough"}
        assert traj["task_type"] == task_type and traj["agentrl"]["seed"] == seed
        params = traj["pddl_params"]
        assert set(params) == {"object_target", "parent_target", "toggle_target", "mrecep_target", "object_sliced"}
        scene = traj["scene"]["scene_num"]
        assert scene in C.TRAIN_SCENE_NUMBERS and traj["scene"]["floor_plan"] == f"FloorPlan{scene}"
        target = params["parent_target"] or params["toggle_target"]
        assert path.parent.parent.name == f"{task_type}-{params['object_target']}-None-{target}-{scene}"
        assert path.parent.parent.parent == root / "json_2.1.1" / "train"
        assert re.search(r"\(atLocation agent1 loc_bar_", game["pddl_problem"])
        assert "_bar_" in game["pddl_problem"] and "|" not in game["pddl_problem"]

    # ALFWorld's own loader accepts every generated game
    from alfworld.agents.environment.alfred_tw_env import AlfredTWEnv

    loader = AlfredTWEnv({"dataset": {"data_path": str(root / "json_2.1.1" / "train"), "num_train_games": -1},
                          "env": {"task_types": list(TASK_TYPES), "goal_desc_human_anns_prob": 0}}, "train")
    assert sorted(loader.game_files) == sorted(str(p) for p in paths.values())


def test_expert_plans_win_through_env(games):
    """The expert won every game on the engine while generating it (above); replaying its plan
    through the env (engine in a worker process) wins too: one game per task type, two envs in
    two threads."""
    root, paths, _ = games
    cfg = _config(root)
    items = [(key, paths[key]) for key in sorted(paths) if key[1] == 0]
    results: dict = {}

    def worker(part):
        env = cfg.make()
        try:
            for (task_type, seed), path in part:
                plan = cfg.expert_actions(_task(cfg, path, task_type))
                trace = _play(env, _task(cfg, path, task_type), plan)
                results[(task_type, seed)] = (trace[-1], len(trace) - 1, len(plan))
        finally:
            env.close()

    threads = [threading.Thread(target=worker, args=(items[i::2],)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == len(TASK_TYPES)
    for key, ((_, reward, done, success, invalid), steps, plan_len) in results.items():
        assert (reward, done, success, invalid) == (1.0, True, True, False), key
        assert steps == plan_len <= 50, key


def test_observations_and_commands(games):
    root, paths, _ = games
    cfg = _config(root, max_steps=6)
    path = paths[("pick_and_place_simple", 0)]
    env = cfg.make()
    try:
        task = _task(cfg, path, "pick_and_place_simple")
        obs = env.reset(task)
        assert obs.startswith("-= Welcome to TextWorld, ALFRED! =-")
        assert "Your task is to: " in obs and "\n\nAdmissible commands: " in obs
        admissible = obs.split("Admissible commands: ")[1].split(", ")
        assert admissible == sorted(admissible) and "look" in admissible and "inventory" in admissible
        assert env.system_prompt and "one command per turn" in env.system_prompt
        task_text = next(line for line in obs.splitlines() if line.startswith("Your task is to: "))
        assert env.system_prompt.endswith("\n\n" + task_text)  # the task stays in view

        step = env.step("fly to the moon")  # ALFWorld's own answer, flagged invalid, not an exception
        assert step.observation.startswith("Nothing happens.") and step.info["invalid_action"] is True
        assert not step.done and step.reward == 0.0
        assert step.info["task_type"] == "pick_and_place_simple" and step.info["gamefile"] == str(path)
        assert step.info["expert_plan_length"] == len(json.loads(path.read_text())["walkthrough"])

        go = next(c for c in admissible if c.startswith("go to "))
        step = env.step(f"  {go.upper()}  \nI think this is right.")  # first line, stripped, lower-cased
        assert step.info["invalid_action"] is False and step.observation.startswith("You arrive at ")

        # a wrong policy loses: only "look" / "inventory" until max_steps
        for i in range(4):
            step = env.step("look" if i % 2 else "inventory")
        assert step.done and step.info["success"] is False and step.reward == 0.0
        with pytest.raises(RuntimeError):
            env.step("look")
    finally:
        env.close()
    assert parse_command("\n\n Take Egg 1 from CounterTop 1 \nblah") == "take egg 1 from countertop 1"
    no_list = _config(root, admissible_commands=False, instructions=False).make()
    try:
        assert "Admissible commands" not in no_list.reset(task) and no_list.system_prompt is None
    finally:
        no_list.close()


def test_generation_is_deterministic(games, tmp_path):
    root, paths, _ = games
    again = generate_game(tmp_path, "pick_and_place_simple", 0)  # same seed, another root
    first, other = paths[("pick_and_place_simple", 0)], paths[("pick_and_place_simple", 1)]
    assert again.relative_to(tmp_path) == first.relative_to(root)
    for name in ("game.tw-pddl", "traj_data.json"):
        assert (again.parent / name).read_bytes() == (first.parent / name).read_bytes()
        assert (other.parent / name).read_bytes() != (first.parent / name).read_bytes()
    assert generate_game(tmp_path, "pick_and_place_simple", 0) == again  # found, not redone
    with pytest.raises(ValueError, match="task_type"):
        generate_game(tmp_path, "pick_three", 0)


def test_cli_summary(games, capsys):
    root, _, _ = games  # all asked-for games exist: the CLI only reads them
    assert generate_main(["--out", str(root), "--per-type", "2", "--seed", "0", "--task-types", "1", "6"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"pick_and_place_simple\s+2\s", out) and re.search(r"pick_two_obj_and_place\s+2\s", out)
    assert "look_at_obj_in_light" not in out


def test_config_validation_names_the_field(tmp_path):
    for kwargs, name in [({"max_steps": 0}, "max_steps"), ({"task_types": [7]}, "task_types"),
                         ({"eval_split": "train"}, "eval_split"), ({"expert_type": "oracle"}, "expert_type"),
                         ({"data_dir": str(tmp_path)}, "data_dir"), ({"train_split": "dev"}, "train_split")]:
        with pytest.raises(ValueError, match=f"^{name} "):
            AlfWorldConfig(**kwargs)
    from agentrl.env import env_config_class

    assert env_config_class("alfworld") is AlfWorldConfig


def test_config_tasks_train_test_disjoint(games, monkeypatch):
    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    root, paths, _ = games
    cfg = _config(root, task_types=[1, 3], eval_games_per_type=1)
    assert cfg.resolved_data_dir() is None
    train = cfg.tasks("train", 8, seed=0)
    assert [t.id for t in train] == [t.id for t in cfg.tasks("train", 8, seed=0)]
    assert [t.id for t in train] != [t.id for t in cfg.tasks("train", 8, seed=1)]
    assert len({t.id for t in train}) == 8
    existing = {str(p) for p in paths.values()}
    assert all(t.data["gamefile"] in existing for t in train)  # the pool: the fixture's games
    assert {t.data["task_type"] for t in train} <= {TASK_TYPES[1], TASK_TYPES[3]}
    test = cfg.tasks("test", 2, seed=0)  # generated into valid_unseen on demand
    assert {t.id for t in train}.isdisjoint(t.id for t in test)
    assert {t.data["gamefile"] for t in train}.isdisjoint(t.data["gamefile"] for t in test)
    for t in test:
        traj = json.loads((Path(t.data["gamefile"]).parent / "traj_data.json").read_text())
        assert "/json_2.1.1/valid_unseen/" in t.data["gamefile"]
        assert traj["scene"]["scene_num"] in C.TEST_SCENE_NUMBERS  # held-out floor plans


def _copy_as_real(src: Path, dst_trial: Path, solvable: bool = True) -> Path:
    """A generated game rewritten the way a real ALFWorld game looks (no agentrl fields)."""
    dst_trial.mkdir(parents=True)
    game = json.loads(src.read_text())
    game.pop("walkthrough")
    game["solvable"] = solvable
    (dst_trial / "game.tw-pddl").write_text(json.dumps(game))
    traj = json.loads((src.parent / "traj_data.json").read_text())
    traj.pop("agentrl")
    (dst_trial / "traj_data.json").write_text(json.dumps(traj))
    return dst_trial / "game.tw-pddl"


def test_real_data_layout_is_discovered(games, tmp_path, monkeypatch):
    root, paths, _ = games
    data = tmp_path / "alfworld_data"
    base = data / "json_2.1.1"
    src = min((p for (t, _), p in paths.items() if t == "pick_heat_then_place_in_recep"),
              key=lambda p: len(json.loads(p.read_text())["walkthrough"]))  # the quickest to replay
    src_two = paths[("pick_and_place_simple", 1)]
    train_game = _copy_as_real(src, base / "train" / src.parent.parent.name / "trial_T20190907_000001_000001")
    test_game = _copy_as_real(src_two, base / "valid_unseen" / src_two.parent.parent.name / "trial_T20190908_1")
    _copy_as_real(src_two, base / "valid_seen" / src_two.parent.parent.name / "trial_T20190909_1", solvable=False)
    _copy_as_real(src, base / "train" / "pick_and_place_with_movable_recep-Egg-Pan-CounterTop-10" / "trial_T1")
    monkeypatch.setenv("ALFWORLD_DATA", str(data))
    cfg = AlfWorldConfig(generated_dir=str(tmp_path / "cache"), eval_split="valid_seen")
    assert cfg.resolved_data_dir() == str(data)
    with pytest.raises(ValueError, match="no solvable games"):
        cfg.tasks("test", 1, 0)  # valid_seen has only an unsolvable game
    cfg = AlfWorldConfig(generated_dir=str(tmp_path / "cache"))
    train = cfg.tasks("train", 3, 0)  # one game: repeated, ids kept distinct
    assert {t.data["gamefile"] for t in train} == {str(train_game)} and len({t.id for t in train}) == 3
    assert train[0].data["task_type"] == "pick_heat_then_place_in_recep"
    test = cfg.tasks("test", 1, 0)
    assert test[0].data["gamefile"] == str(test_game) and test[0].data["split"] == "valid_unseen"
    assert not (tmp_path / "cache" / "json_2.1.1").exists()  # nothing generated

    plan = cfg.expert_actions(train[0])  # no walkthrough: the expert plays it once, then it is cached
    assert plan == json.loads(src.read_text())["walkthrough"]
    assert len(list((tmp_path / "cache" / "expert_plans" / "handcoded").glob("*.json"))) == 1
    env = cfg.make()
    try:
        trace = _play(env, train[0], plan)
    finally:
        env.close()
    assert trace[-1][1:4] == (1.0, True, True)


def _in_threads(cfg, tasks, scripts) -> list:
    """Each (task, script) played by its own env in its own thread, all started together."""
    out: list = [None] * len(tasks)
    barrier = threading.Barrier(len(tasks))

    def run(i):
        env = cfg.make()
        try:
            barrier.wait()
            out[i] = _play(env, tasks[i], scripts[i])
        finally:
            env.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(tasks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_threads_match_sequential(games):
    """4 envs stepped from 4 threads at once give what one env gives playing them in turn, with
    engines in worker processes (default) and in-process (serialised on a lock)."""
    root, paths, _ = games
    picks = [("pick_two_obj_and_place", 1), ("look_at_obj_in_light", 2), ("pick_and_place_simple", 3),
             ("pick_clean_then_place_in_recep", 4)]
    for engine_process in (True, False):
        cfg = _config(root, engine_process=engine_process)
        tasks = [_task(cfg, paths[p], p[0]) for p in picks]
        scripts = [cfg.expert_actions(t)[:4] + ["fly to the moon", "inventory"] for t in tasks]
        sequential = []
        env = cfg.make()
        try:
            for task, script in zip(tasks, scripts, strict=True):
                sequential.append(_play(env, task, script))
        finally:
            env.close()
        threaded = _in_threads(cfg, tasks, scripts)
        assert threaded == sequential, f"engine_process={engine_process}"


def test_environment_corpus_and_extra_texts(games):
    from agentrl.model_builder import environment_corpus

    root, _, _ = games
    cfg = _config(root, task_types=[2])
    corpus = environment_corpus(cfg, n_tasks=2, seed=0)
    assert any(t.startswith("-= Welcome to TextWorld, ALFRED! =-") for t in corpus)
    assert any(t.startswith("use ") for t in corpus) and "Nothing happens." in corpus
    assert any("Available commands" in t for t in cfg.extra_texts())


def test_generated_dir_default(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    assert AlfWorldConfig().cache_dir() == str(tmp_path / "agentrl" / "alfworld")
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_eval_cli_runs_on_alfworld(games, tmp_path, capsys):
    """`agentrl eval --env alfworld` with a tiny model whose tokenizer learnt ALFWorld's text:
    held-out games (held-out floor plans, generated on demand), episodes written."""
    from agentrl.cli import main
    from agentrl.episode import load_episodes
    from agentrl.model_builder import build_local_model

    root, _, _ = games
    model = build_local_model(tmp_path / "model", env_configs=[_config(root)], n_tasks=2, vocab_size=1024,
                              hidden_size=64, num_layers=1, num_heads=2, intermediate_size=64)
    out = tmp_path / "episodes.jsonl"
    code = main(["eval", "--model", str(model), "--env", "alfworld", "--out", str(out), "--engine", "hf",
                 "--env.generated_dir", str(root), "--env.eval_games_per_type", "1",
                 "--eval.tasks", "2", "--rollout.max_turns", "3", "--rollout.max_new_tokens", "8",
                 "--rollout.history", "0"])
    assert code == 0 and "success_rate" in capsys.readouterr().out
    episodes = load_episodes(str(out))
    assert len(episodes) == 2 and not any(e.failed for e in episodes)
    for e in episodes:
        assert "/valid_unseen/" in e.task_id
        assert e.initial_observation.startswith("-= Welcome to TextWorld, ALFRED! =-")
        assert 1 <= e.num_turns <= 3


def test_snapshots_replay_the_commands_so_trees_see_real_next_states(games):
    from agentrl.resim import expand_tree

    root, paths, _ = games
    cfg = _config(root)
    task = _task(cfg, paths[("pick_and_place_simple", 0)], "pick_and_place_simple")
    plan = cfg.expert_actions(task)
    env = cfg.make()
    try:
        env.reset(task)
        for command in plan[:2]:
            observation = env.step(command).observation
        snap, admissible = env.snapshot(), env.admissible
        after = env.step(plan[2]).observation
        env.restore(snap)
        assert env.admissible == admissible and env.steps == 2
        # candidates: the expert's next command first, then the other admissible ones
        assert env.candidate_actions()[0] == plan[2] and set(env.candidate_actions()) == set(admissible) | {plan[2]}
        assert env.state_value() == pytest.approx(0.9 ** (len(plan) - 2))  # on the expert's plan
        tree = expand_tree(env, observation, breadth=3, depth=1)
        assert tree.best().action == plan[2]  # the only candidate with a value: off the plan counts 0
        assert env.admissible == admissible and env.steps == 2  # untouched by the search
        assert env.step(plan[2]).observation == after
        for child in tree.children:  # each predicted next state is the real one
            env.restore(snap)
            assert env.step(child.action).observation == child.observation
        # SimRollout's check of simulated commands: the same real outcomes, and the env is left as it was
        from agentrl.sim_rollout import real_outcomes

        env.restore(snap)
        assert real_outcomes(env, [c.action for c in tree.children]) == [c.observation for c in tree.children]
        assert env.admissible == admissible and env.steps == 2
    finally:
        env.close()
    assert parse_command("<think>go to fridge 1?</think>\n<action>Open Fridge 1</action>") == "open fridge 1"
