"""MultiTaskConfig / MultiTaskEnv / FamilySampler on small real Sokoban families."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from agentrl_sokoban import SokobanConfig

from agentrl.env import EnvConfig, Task
from agentrl.episode import Episode, Turn
from agentrl.multitask import FamilySampler, MultiTaskConfig, MultiTaskEnv, episode_family

ACTIONS = ["up", "left", "down", "right", "jump", "up", "right", "down", "left"]


def short() -> SokobanConfig:
    return SokobanConfig(width=5, height=5, num_boxes=1, max_solution_length=3, instructions=False)


def long() -> SokobanConfig:
    return SokobanConfig(width=6, height=6, num_boxes=1, min_solution_length=5, max_solution_length=6)


def config(*names: str) -> MultiTaskConfig:
    names = names or ("short", "long")
    return MultiTaskConfig({n: (short() if i % 2 == 0 else long()) for i, n in enumerate(names)})


def episode(family: str, success: bool, turns: int = 1, i: int = 0) -> Episode:
    ep = Episode(task_id=f"{family}/sokoban/train/0/{i}", group_id=f"{family}/{i}", episode_id=f"{family}/{i}/0",
                 turns=[Turn([], [], []) for _ in range(turns)], success=success)
    ep.family = family  # the field may or may not exist on Episode yet
    return ep


def observe_rates(sampler: FamilySampler, rates: dict[str, tuple[int, int]], turns: int = 1) -> None:
    """One iteration where family f solves k of n episodes, for rates {f: (k, n)}."""
    sampler.observe([episode(f, j < k, turns, j) for f, (k, n) in rates.items() for j in range(n)])


# --- MultiTaskConfig ------------------------------------------------------------------------
def test_tasks_split_evenly_with_family_ids():
    cfg = config()
    tasks = cfg.tasks("train", 5, 3)
    assert [t.id.split("/", 1)[0] for t in tasks] == ["short"] * 3 + ["long"] * 2  # first family gets the remainder
    for family, n in (("short", 3), ("long", 2)):
        mine = [t for t in tasks if t.data["family"] == family]
        inner = cfg.families[family].tasks("train", n, 3)
        assert [t.id for t in mine] == [f"{family}/{t.id}" for t in inner]
        assert [t.data["task"] for t in mine] == inner
    assert all(t.data["task"].data["optimal_length"] <= 3 for t in tasks[:3])
    assert all(t.data["task"].data["optimal_length"] >= 5 for t in tasks[3:])
    assert [t.id for t in cfg.family_tasks("long", "train", 2, 3)] == [t.id for t in tasks[3:]]
    test = cfg.tasks("test", 6, 3)
    assert len(test) == 6 and not {t.id for t in test} & {t.id for t in tasks}
    # weights: shares 1 : 0.25 of 10 tasks -> 8 : 2 (largest remainder); a family at 0 gets none
    weighted = MultiTaskConfig(cfg.families, weights={"long": 0.25})
    assert [t.data["family"] for t in weighted.tasks("train", 10, 3)] == ["short"] * 8 + ["long"] * 2
    assert {t.data["family"] for t in MultiTaskConfig(cfg.families, weights={"short": 0}).tasks("train", 4, 3)} == {"long"}
    levels = lambda ts: {t.data["task"].data["level"] for t in ts}  # noqa: E731
    assert not levels(test) & levels(cfg.tasks("train", 40, 3))


def test_validate_names_the_field():
    config().validate()
    with pytest.raises(ValueError, match="^families: needs at least one"):
        MultiTaskConfig().validate()
    for bad in ("a/b", ""):
        with pytest.raises(ValueError, match="^families: names"):
            MultiTaskConfig({bad: short()}).validate()
    with pytest.raises(ValueError, match="^families.x: expected an EnvConfig"):
        MultiTaskConfig({"x": {"width": 5}}).validate()
    broken = short()
    broken.width = 1
    with pytest.raises(ValueError, match="^families.short: width must be >= 3"):
        MultiTaskConfig({"short": broken, "long": long()}).validate()
    with pytest.raises(ValueError, match=r"^weights: 'lng' not in families \(short, long\)"):
        MultiTaskConfig(config().families, weights={"lng": 1.0}).validate()
    for weights in ({"short": -1.0}, {"short": 0.0, "long": 0.0}):
        with pytest.raises(ValueError, match="^weights: must be >= 0 with at least one family above 0"):
            MultiTaskConfig(config().families, weights=weights).validate()


@dataclass
class Limited(EnvConfig):
    limit: int | None = None

    def concurrency_limit(self) -> int | None:
        return self.limit

    def extra_texts(self) -> list[str]:
        return ["a", "b"] if self.limit else ["b", "c"]

    def metrics(self, episodes: list) -> dict[str, float]:
        inner = all(e.task_id.startswith("sokoban/") for e in episodes)
        return {"count": float(len(episodes)), "inner_ids": float(inner)}


def test_limits_texts_and_metrics():
    assert config().concurrency_limit() is None
    cfg = MultiTaskConfig({"a": Limited(5), "b": Limited(None), "c": Limited(3)})
    assert cfg.concurrency_limit() == 3
    assert cfg.extra_texts() == ["a", "b", "c"]
    assert config().extra_texts() == short().extra_texts()  # two Sokoban families: each text once
    eps = [episode("a", True, 2), episode("a", False, 4, 1), episode("c", True, 3)]
    metrics = cfg.metrics(eps)
    assert metrics["family/a/success_rate"] == 0.5 and metrics["family/a/mean_steps"] == 3.0
    assert metrics["family/c/success_rate"] == 1.0
    assert metrics["family/a/count"] == 2.0 and metrics["family/a/inner_ids"] == 1.0  # prefix stripped
    assert not any(k.startswith("family/b/") for k in metrics)  # no episodes, no numbers
    assert eps[0].task_id.startswith("a/")  # the caller's episodes are not modified


def test_episode_family_falls_back_to_the_task_id():
    ep = Episode(task_id="long/sokoban/test/0/1", group_id="g", episode_id="e")
    assert episode_family(ep) == "long"
    ep.family = "short"
    assert episode_family(ep) == "short"


# --- MultiTaskEnv ---------------------------------------------------------------------------
def play(env, task: Task, actions: list[str]) -> list:
    out = [env.reset(task)]
    for action in actions:
        step = env.step(action)
        out.append((step.observation, step.reward, step.done, step.info))
        if step.done:
            break
    return out


def test_env_routes_to_the_family():
    cfg = config()
    env = cfg.make()
    assert isinstance(env, MultiTaskEnv) and env.system_prompt is None
    with pytest.raises(RuntimeError, match="reset"):
        env.step("up")
    for task in cfg.tasks("train", 6, 0):
        own = cfg.families[task.data["family"]].make()
        assert play(env, task, ACTIONS) == play(own, task.data["task"], ACTIONS)
        assert env.system_prompt == own.system_prompt
        assert env.candidate_actions() == own.candidate_actions()
        assert env.state_value() == own.state_value()
    assert set(env.envs) == {"short", "long"}  # one env per family, reused
    cached = env.envs["short"]
    env.reset(cfg.tasks("train", 2, 1)[0])
    assert env.envs["short"] is cached
    with pytest.raises(ValueError, match="'alfworld'"):
        env.reset(Task("alfworld/x", {"family": "alfworld", "task": Task("x")}))
    env.close()
    env.close()
    assert env.envs == {} and env.system_prompt is None


def test_snapshot_restore_across_families():
    cfg = config()
    short_task, long_task = cfg.family_tasks("short", "train", 1, 0)[0], cfg.family_tasks("long", "train", 1, 0)[0]
    env = cfg.make()
    env.reset(long_task)
    env.step("up")
    snap = env.snapshot()
    after = env.step("left").observation
    env.reset(short_task)  # another family in between
    env.restore(snap)
    assert env.family == "long" and env.step("left").observation == after


def test_expert_actions_solve_through_the_env():
    cfg = config()
    env = cfg.make()
    for task in cfg.tasks("train", 6, 2):
        actions = cfg.expert_actions(task)
        assert actions == cfg.families[task.data["family"]].expert_actions(task.data["task"])
        env.reset(task)
        steps = [env.step(a) for a in actions]
        assert steps[-1].done and steps[-1].info["success"]


# --- FamilySampler --------------------------------------------------------------------------
def test_allocation_by_largest_remainder():
    sampler = FamilySampler(config("a", "b"), 10)
    assert sampler.allocation(0) == {"a": 5, "b": 5}  # nothing observed: both count as success 0
    observe_rates(sampler, {"a": (1, 5), "b": (3, 5)})
    assert sampler.success() == {"a": 0.2, "b": 0.6}
    # weights 1 - s = 0.8 / 0.4 (sum 1.2): shares 10*0.8/1.2 = 6.667 and 3.333, floors 6 + 3 = 9,
    # the one unit left goes to the larger remainder (a's .667): 7 / 3
    assert sampler.allocation(0) == sampler.allocation(5) == {"a": 7, "b": 3}
    tasks = sampler.sample(4)
    assert [t.data["family"] for t in tasks] == ["a"] * 7 + ["b"] * 3
    # fresh tasks from seed * 100_003 + iteration * 101 + family index (seed 0)
    assert [t.id for t in tasks[7:]] == [t.id for t in sampler.config.family_tasks("b", "train", 3, 4 * 101 + 1)]
    assert sampler.metrics()["train/family/a/tasks"] == 7.0


def test_solved_family_gets_nothing_and_all_solved_is_uniform():
    sampler = FamilySampler(config("a", "b", "c"), 10, solved_threshold=0.9)
    observe_rates(sampler, {"a": (19, 20), "b": (1, 2), "c": (0, 1)})  # 0.95 (solved), 0.5, 0.0
    assert sampler.solved() == ["a"]
    # b and c: weights 0.5 / 1.0 -> shares 3.333 / 6.667 -> 3 + 6, leftover to c: 0 / 3 / 7
    assert sampler.allocation(0) == {"a": 0, "b": 3, "c": 7}
    assert not any(t.data["family"] == "a" for t in sampler.sample(0))
    observe_rates(sampler, {"b": (10, 10), "c": (10, 10)})  # ema 0.5: b 0.75, c 0.5, a stays 0.95
    assert sampler.success() == {"a": 0.95, "b": 0.75, "c": 0.5}
    observe_rates(sampler, {"b": (10, 10), "c": (10, 10)})  # b 0.875, c 0.75
    observe_rates(sampler, {"b": (10, 10), "c": (10, 10)})  # b 0.9375, c 0.875
    observe_rates(sampler, {"c": (10, 10)})  # c 0.9375
    assert sampler.solved() == ["a", "b", "c"]
    # all solved: uniform 10 / 3 = 3 each + 1 leftover, ties rotating with the iteration
    assert sampler.allocation(0) == {"a": 4, "b": 3, "c": 3}
    assert sampler.allocation(1) == {"a": 3, "b": 4, "c": 3}
    assert len(sampler.sample(2)) == 10 and sampler.metrics()["train/families_solved"] == 3.0


def test_min_tasks_floor():
    sampler = FamilySampler(config("a", "b"), 10, min_tasks=2)
    observe_rates(sampler, {"a": (0, 20), "b": (17, 20)})  # 0.0 and 0.85 (unsolved)
    # 2 each first, 6 left by weights 1.0 / 0.15: shares 5.217 / 0.783 -> 5 + 0, leftover to b: 7 / 3
    assert sampler.allocation(0) == {"a": 7, "b": 3}
    plain = FamilySampler(config("a", "b"), 10)
    observe_rates(plain, {"a": (0, 20), "b": (17, 20)})
    assert plain.allocation(0) == {"a": 9, "b": 1}  # 8.696 / 1.304 -> 8 + 1, leftover to a
    with pytest.raises(ValueError, match="min_tasks"):
        FamilySampler(config("a", "b"), 10, min_tasks=6)


def test_ema_updates_by_hand():
    sampler = FamilySampler(config("a", "b"), 4, ema=0.75)
    assert sampler.success() == {"a": 0.0, "b": 0.0}
    observe_rates(sampler, {"a": (1, 5)})  # first observation sets it: a = 0.2
    observe_rates(sampler, {"a": (5, 5), "b": (1, 2)})  # a = 0.75 * 0.2 + 0.25 * 1.0 = 0.4; b first: 0.5
    observe_rates(sampler, {"b": (0, 4)})  # b = 0.75 * 0.5 + 0.25 * 0 = 0.375; a unchanged
    assert sampler.success() == pytest.approx({"a": 0.4, "b": 0.375})
    with pytest.raises(ValueError, match="unknown family 'z'"):
        sampler.observe([episode("z", True)])


def test_env_steps_accumulate():
    sampler = FamilySampler(config("a", "b"), 4)
    observe_rates(sampler, {"a": (1, 2), "b": (0, 1)}, turns=3)  # a 2 * 3, b 1 * 3
    observe_rates(sampler, {"a": (0, 3)}, turns=5)  # a += 15
    metrics = sampler.metrics()
    assert metrics["train/family/a/env_steps"] == 21.0 and metrics["train/family/b/env_steps"] == 3.0
    assert metrics["train/family/a/success_rate"] == 0.25  # 0.5 * 0.5 + 0.5 * 0


def test_state_dict_round_trip():
    cfg = config("a", "b", "c")
    sampler = FamilySampler(cfg, 9, seed=7)
    observe_rates(sampler, {"a": (3, 4), "c": (1, 4)}, turns=2)
    sampler.sample(2)
    state = json.loads(json.dumps(sampler.state_dict()))
    resumed = FamilySampler(cfg, 9, seed=7)
    resumed.load_state_dict(state)
    assert resumed.success() == sampler.success() and resumed.metrics() == sampler.metrics()
    assert [(t.id, t.data["task"]) for t in resumed.sample(3)] == [(t.id, t.data["task"]) for t in sampler.sample(3)]
    # b never observed stays unobserved: its first observation still sets it directly
    observe_rates(resumed, {"b": (1, 1)})
    assert resumed.success()["b"] == 1.0


# --- flags and saved configs ----------------------------------------------------------------
def test_family_fields_are_flags_and_a_saved_config_loads_back(tmp_path):
    """`--env.families.<name>.<field>` sets one family's field (type-checked, named in errors); a
    bare field shared by families is ambiguous; a new family cannot come from a flag; the saved
    config.yaml of a multi-task run loads back with each family's own class."""
    from agentrl.config import ConfigError, parse_config, save_config
    from agentrl.trainer import TrainConfig

    preset = TrainConfig(env=config())
    cfg = parse_config(preset, ["--env.families.long.max_solution_length", "5", "--env.families.short.instructions"])
    assert cfg.env.families["long"].max_solution_length == 5 and cfg.env.families["short"].instructions
    assert preset.env.families["long"].max_solution_length == 6  # the preset itself is untouched
    with pytest.raises(ConfigError, match=r"env\.families\.long\.max_steps: expected an int or None, got 'abc'"):
        parse_config(preset, ["--env.families.long.max_steps", "abc"])
    with pytest.raises(ConfigError, match="ambiguous config field 'max_solution_length'"):
        parse_config(preset, ["--max_solution_length", "4"])
    with pytest.raises(ConfigError, match=r"env\.families\.extra: not in this config \(short, long\)"):
        parse_config(preset, ["--env.families", "{extra: {width: 4}}"])
    with pytest.raises(ConfigError, match=r"families\.short: .*min_solution_length"):  # the family's own check
        parse_config(preset, ["--env.families.short.min_solution_length", "9"])

    save_config(cfg, tmp_path / "config.yaml")
    loaded = parse_config(TrainConfig(env=config()), ["--config", str(tmp_path / "config.yaml")])
    assert loaded.env == cfg.env and type(loaded.env.families["long"]) is SokobanConfig
