"""Sokoban environment package: levels, loaders, action parsing, env and config."""
import math
from pathlib import Path

import pytest

from agentrl.env import Task, environment_registry
from agentrl_sokoban import (
    LevelError, SokobanConfig, SokobanEnv, crop_border, load_boxoban, load_levels, load_xsb,
    parse_action, parse_level, play, render_level, solve, split_of,
)
from agentrl_sokoban.env import DEFAULT_MAX_STEPS
from shared_data import SHARED_DATA

BOXOBAN_TEST = SHARED_DATA / "boxoban" / "unfiltered" / "test" / "000.txt"
BOXOBAN_HARD = SHARED_DATA / "boxoban" / "hard" / "000.txt"
CORRIDOR = "#####\n#@$.#\n#####"
# 'right' pushes the box on (1,2) onto the next target (1,3); the box on (1,4) then blocks it.
TARGET_TO_TARGET = "######\n#@*.$#\n######"


# ---- levels -----------------------------------------------------------------------------

def test_parse_symbols_and_render_roundtrip():
    text = "#######\n#+$* .#\n#-_ $ #\n#######"
    level = parse_level(text)
    assert level.player == (1, 1) and (1, 1) in level.targets
    assert level.boxes == {(1, 2), (1, 3), (2, 4)}
    assert level.targets == {(1, 1), (1, 3), (1, 5)}
    assert (2, 1) not in level.walls and (2, 2) not in level.walls  # '-' and '_' are floor
    assert level.boxes_on_target == 1 and not level.solved
    assert render_level(level) == "#######\n#+$* .#\n#   $ #\n#######"
    assert render_level(level, floor="_") == "#######\n#+$*_.#\n#___$_#\n#######"
    assert parse_level(render_level(level)) == level


def test_parse_ragged_rows_and_blank_edges():
    level = parse_level("\n  ####\n###  #\n#@$. #\n######\n\n")
    assert (level.height, level.width) == (4, 6)
    assert render_level(level).split("\n")[0] == "  ####"


@pytest.mark.parametrize("text,message", [
    ("####\n#$.#\n####", "exactly one player"),
    ("#####\n#@@$.#\n#####", "exactly one player"),
    ("#####\n#@ .#\n#####", "at least one box"),
    ("######\n#@$$.#\n######", "differs from number of targets"),
    ("#####\n#@$x#\n#####", "unknown symbol 'x'"),
    ("\n\n", "empty level"),
])
def test_parse_errors(text, message):
    with pytest.raises(LevelError, match=message):
        parse_level(text)


def test_crop_border():
    assert crop_border("#####\n#@$.#\n#####") == "@$."
    # Repeated: Boxoban-style extra wall rows/columns go too; inner walls stay.
    assert crop_border("######\n######\n## @ #\n##$. #\n######") == " @ \n$. "
    assert crop_border("#\n#") == "#"  # never crops to nothing


def test_moves_pushes_and_blocking():
    level = parse_level("######\n#    #\n# $$@#\n#.. ##\n######")
    assert not level.move("left").moved  # two boxes in a row cannot be pushed
    assert not level.move("right").moved  # wall
    after = level.move("down")  # (3,4) is a wall
    assert not after.moved
    up = level.move("up")
    assert up.moved and up.pushed is None and up.level.player == (1, 4)
    cropped = parse_level("@$.")  # outside the grid counts as wall
    assert not cropped.move("up").moved and not cropped.move("left").moved
    pushed = cropped.move("right")
    assert pushed.pushed == ((0, 1), (0, 2)) and pushed.level.solved


# ---- loaders ----------------------------------------------------------------------------

def test_load_boxoban_real_files():
    for path in (BOXOBAN_TEST, BOXOBAN_HARD):
        levels = load_boxoban(path)
        assert len(levels) == 1000
        assert [lid for lid, _ in levels[:3]] == ["0", "1", "2"]
        for _, text in levels:
            level = parse_level(text)
            assert (level.height, level.width) == (10, 10) and len(level.boxes) == 4
    first = load_boxoban(BOXOBAN_TEST)[0][1]
    assert first.split("\n")[1] == "###    . #" and first.split("\n")[8] == "#####@####"
    assert load_levels(BOXOBAN_TEST) == load_boxoban(BOXOBAN_TEST)  # auto-detected


def test_load_xsb(tmp_path):
    path = tmp_path / "set.xsb"
    path.write_text(
        "; My collection\n; by someone\n\n"
        "; Level One\n#####\n#@$.#\n#####\n\n"
        "Title: Second\nAuthor: me\n  #####\n###---#\n#@$.--#\n#######\n\n"
        "#####\n#.$@#\n#####\n"
    )
    levels = load_xsb(path)
    assert [lid for lid, _ in levels] == ["Level One", "Second", "3"]
    assert levels[1][1].split("\n")[0] == "  #####"
    assert solve(levels[1][1]) == ["right"] and solve(levels[2][1]) == ["left"]
    assert load_levels(path) == levels  # not all comments are '; N': XSB


def test_loader_errors_name_the_level(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("; 0\n#####\n#@$.#\n#####\n\n; 1\n#####\n#@$$#\n#####\n")
    with pytest.raises(LevelError, match=r"bad.txt: level 1: .*boxes"):
        load_boxoban(path)
    with pytest.raises(ValueError, match="unknown level file format"):
        load_levels(path, "sok")


# ---- actions ----------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("up", "up"), ("Up", "up"), (" UP\n", "up"), ("<action>up</action>", "up"),
    ("<ACTION> Left </ACTION>", "left"), ("Action: left", "left"), ("move down", "down"),
    ("I think going right is best. Right!", "right"), ("u", "up"), ("D", "down"), (" l.\n", "left"),
    ("r", "right"), ("Action: r", "right"),
    # a tag wins over other words; the last tag counts
    ("Not left or up, so <action>down</action>", "down"),
    ("<action>up</action> no wait <action>right</action>", "right"),
    # ambiguous or empty
    ("up or down", None), ("left, then right", None), ("", None), ("jump", None),
    ("<action>up down</action>", None), ("upward", None), ("u d", None), ("I say r", None),
])
def test_parse_action(text, expected):
    assert parse_action(text) == expected


# ---- env --------------------------------------------------------------------------------

def _task(level: str, optimal=...) -> Task:
    data = {"level": level}
    if optimal is not ...:
        data["optimal_length"] = optimal
    return Task("t", data)


def test_env_observations_and_solve():
    env = SokobanConfig().make()
    assert isinstance(env, SokobanEnv) and env.system_prompt is None
    first = env.reset(_task(CORRIDOR, 1))
    assert first.endswith("\n\n@$.") and "Answer with one of: up, down, left, right." in first
    assert first.startswith("You are playing Sokoban")
    step = env.step("<action>right</action>")
    assert step.observation == " @*" and step.done and step.reward == 1.0
    assert step.info["success"] is True and step.info["boxes_on_target"] == 1
    assert step.info["invalid_action"] is False
    with pytest.raises(RuntimeError, match="episode is over"):
        env.step("left")
    plain = SokobanConfig(instructions=False, crop_border=False).make()
    assert plain.reset(_task(CORRIDOR, 1)) == CORRIDOR


def test_env_invalid_and_blocked_actions():
    env = SokobanConfig(instructions=False, step_penalty=0.1).make()
    env.reset(_task(CORRIDOR, 1))  # max steps = ceil(2 * 1) + 2 = 4
    assert env.max_steps == 4
    bad = "I would like to jump over the box please, thank you"
    step = env.step(bad)
    assert step.observation == f'Invalid action "{bad[:40]}". Answer with one of: up, down, left, right.\n@$.'
    assert step.info["invalid_action"] is True and not step.done
    assert step.reward == pytest.approx(-0.1)
    blocked = env.step("up")  # wall: a legal no-op that still costs a step, and is reported
    assert blocked.observation == "You cannot move up.\n@$." and blocked.info["moved"] is False
    env.step("left")
    last = env.step("u")  # 4th step: out of steps
    assert last.done and last.info["success"] is False and last.reward == pytest.approx(-0.1)


def test_env_box_on_target_rewards():
    env = SokobanConfig(box_on_target_reward=0.5, solve_reward=2.0, step_penalty=0.01).make()
    env.reset(_task(TARGET_TO_TARGET, 5))
    first = env.step("right")  # off one target and onto another: net 0
    assert first.reward == pytest.approx(-0.01) and first.info["boxes_on_target"] == 1
    second = env.step("right")  # blocked by the box behind: no push, no reward
    assert second.reward == pytest.approx(-0.01) and second.info["moved"] is False
    env.reset(_task("######\n#@$. #\n######", 3))
    on = env.step("right")
    assert on.reward == pytest.approx(0.5 + 2.0 - 0.01)
    env.reset(_task("#######\n#@* $.#\n#######", 5))
    off = env.step("right")  # pushed off its target
    assert off.reward == pytest.approx(-0.5 - 0.01) and off.info["boxes_on_target"] == 0


def test_env_max_steps_rules():
    level = "#######\n#@    #\n#   $.#\n#######"  # optimal 4
    cfg = SokobanConfig(max_steps_factor=1.5, max_steps_offset=3)
    env = cfg.make()
    env.reset(_task(level, 4))
    assert env.max_steps == math.ceil(1.5 * 4) + 3 == 9
    env.reset(_task(level))  # no optimal length given: solved on reset
    assert env.max_steps == 9
    env.reset(_task("#####\n#$  #\n# @.#\n#####"))  # unsolvable: solver gives None
    assert env.max_steps == DEFAULT_MAX_STEPS
    env.reset(_task(level, None))
    assert env.max_steps == DEFAULT_MAX_STEPS
    fixed = SokobanConfig(max_steps=3).make()
    fixed.reset(_task(level, 4))
    assert fixed.max_steps == 3
    for _ in range(2):
        assert not fixed.step("down").done
    assert fixed.step("down").info["success"] is False


def test_env_expert_replay_on_generated_tasks():
    cfg = SokobanConfig(instructions=False)
    env = cfg.make()
    for task in cfg.tasks("train", 10, 3):
        env.reset(task)
        actions = cfg.expert_actions(task)
        assert len(actions) == task.data["optimal_length"]
        for i, action in enumerate(actions):
            step = env.step(action)
            assert step.done == (i == len(actions) - 1)
        assert step.info["success"] is True


# ---- config -----------------------------------------------------------------------------

def test_registry_entry_point():
    assert environment_registry()["sokoban"] is SokobanConfig


@pytest.mark.parametrize("kwargs,field", [
    (dict(num_boxes=0), "num_boxes must be >= 1"), (dict(width=2), "width must be >= 3"),
    (dict(height=1), "height must be >= 3"), (dict(max_inner_walls=-1), "max_inner_walls"),
    (dict(min_solution_length=0), "min_solution_length"),
    (dict(min_solution_length=9, max_solution_length=8), "max_solution_length must be >= min"),
    (dict(max_steps=0), "max_steps"), (dict(max_steps_factor=0), "max_steps_factor"),
    (dict(max_steps_offset=-1), "max_steps_offset"), (dict(floor_symbol="."), "floor_symbol"),
    (dict(level_file_format="txt"), "level_file_format"), (dict(level_file_split="x"), "level_file_split"),
    (dict(width=3, height=3, num_boxes=8), "num_boxes must leave"),
])
def test_config_validation(kwargs, field):
    with pytest.raises(ValueError, match=field):
        SokobanConfig(**kwargs)


def test_tasks_reproducible_disjoint_and_labelled():
    cfg = SokobanConfig()
    train = cfg.tasks("train", 60, 0)
    test = cfg.tasks("test", 30, 0)
    assert [t.data for t in train] == [t.data for t in cfg.tasks("train", 60, 0)]
    assert [t.data for t in train[:10]] == [t.data for t in cfg.tasks("train", 10, 0)]  # prefix-stable
    assert [t.data for t in train] != [t.data for t in cfg.tasks("train", 60, 1)]
    assert train[0].id == "sokoban/train/0/0" and test[29].id == "sokoban/test/0/29"
    train_levels = {t.data["level"] for t in train}
    test_levels = {t.data["level"] for t in test}
    assert len(train_levels) == 60 and len(test_levels) == 30  # distinct
    assert not train_levels & test_levels
    assert all(split_of(x) == "train" for x in train_levels)
    assert all(split_of(x) == "test" for x in test_levels)
    # another seed of test never yields a train level either: the split is a property of the level
    assert not {t.data["level"] for t in cfg.tasks("test", 30, 9)} & train_levels
    for t in train + test:
        assert 1 <= t.data["optimal_length"] <= 8
    with pytest.raises(ValueError, match="split"):
        cfg.tasks("valid", 1, 0)


def test_tasks_from_level_files(tmp_path):
    cfg = SokobanConfig(level_file=str(BOXOBAN_TEST))
    test = cfg.tasks("test", 20, 0)
    train = cfg.tasks("train", 20, 0)
    assert not {t.data["level"] for t in test} & {t.data["level"] for t in train}
    assert all(split_of(t.data["level"]) == "test" for t in test)
    assert "optimal_length" not in test[0].data and test[0].data["level_id"].isdigit()
    assert [t.data for t in test] == [t.data for t in cfg.tasks("test", 20, 0)]
    everything = SokobanConfig(level_file=str(BOXOBAN_TEST), level_file_split="all")
    assert len({t.data["level_id"] for t in everything.tasks("test", 1000, 0)}) == 1000

    xsb = tmp_path / "tiny.xsb"
    xsb.write_text("; a\n#####\n#@$.#\n#####\n\n; b\n######\n#@$ .#\n######\n")
    small = SokobanConfig(level_file=str(xsb), level_file_split="all", instructions=False)
    tasks = small.tasks("train", 5, 0)  # more than the file holds: reshuffled repeats
    assert len(tasks) == 5 and {t.data["level_id"] for t in tasks} == {"a", "b"}
    env = small.make()
    for task in tasks[:2]:
        assert env.reset(task) in ("@$.", "@$ .")
        expected = 1 if task.data["level_id"] == "a" else 2
        assert env.max_steps == 2 * expected + 2  # solved lazily on reset
        assert small.expert_actions(task) == ["right"] * expected


def test_boxoban_task_expert_replays():
    cfg = SokobanConfig(level_file=str(BOXOBAN_TEST), instructions=False)
    task = cfg.tasks("train", 1, 0)[0]
    actions = cfg.expert_actions(task)
    assert play(parse_level(task.data["level"]), actions).solved
    env = cfg.make()
    env.reset(task)
    assert env.max_steps == 2 * len(actions) + 2


def test_blocked_move_penalty_only_on_moves_that_change_nothing():
    from agentrl.env import Task
    from agentrl_sokoban import SokobanConfig

    env = SokobanConfig(blocked_move_penalty=0.25, step_penalty=0.5, instructions=False, max_steps=5).make()
    env.reset(Task("t", {"level": "#######\n#@$   #\n#    .#\n#######", "optimal_length": 6}))
    step = env.step("up")  # wall above: blocked, both penalties
    assert step.reward == -0.75 and step.observation.startswith("You cannot move up.")
    assert env.step("down").reward == -0.5  # a real move: only the step penalty
    assert env.step("jump").reward == -0.5  # unparseable: an invalid action, not a blocked move


def test_blocked_feedback_can_be_turned_off_and_reaches_the_tokenizer_corpus():
    from agentrl_sokoban import SokobanConfig

    cfg = SokobanConfig(blocked_feedback=False, instructions=False, max_steps=3)
    env = cfg.make()
    env.reset(_task(CORRIDOR, 1))
    assert env.step("up").observation == "@$."
    assert "You cannot move left." in cfg.extra_texts()


def test_moves_to_solve_tells_deadlock_from_give_up():
    from agentrl_sokoban.solver import moves_to_solve

    level = "#######\n#@    #\n#   $.#\n#######"
    assert moves_to_solve(level) == len(solve(level)) == 4
    assert moves_to_solve("#####\n#$  #\n# @.#\n#####") == math.inf  # box in a corner off target
    hard = load_boxoban(BOXOBAN_HARD)[0][1]
    assert moves_to_solve(hard, max_nodes=5) is None  # budget exhausted: unknown, not a deadlock


def test_end_on_deadlock_and_progress_reward():
    # optimal: down, right, right, right (the last one pushes the box onto the target)
    level = "#######\n#@    #\n#   $.#\n#   # #\n#######"
    assert len(solve(level)) == 4
    env = SokobanConfig(end_on_deadlock=True, progress_reward=0.5, max_steps=3).make()
    env.reset(_task(level, 4))
    for move in ("down", "right"):
        step = env.step(move)  # walking, no push: nothing solved, nothing lost
        assert not step.done and "deadlock" not in step.info and step.reward == 0.0
    end = env.step("right")  # the step budget ends one push short
    assert end.done and end.info["success"] is False
    assert end.info["progress"] == pytest.approx(1 - 1 / 4) and end.reward == pytest.approx(0.5 * 0.75)
    # pushing the box up against the top wall: it can never come back down to the target row
    stuck = "######\n#    #\n# $ .#\n# @  #\n######"
    assert len(solve(stuck)) == 4
    env = SokobanConfig(end_on_deadlock=True, progress_reward=0.5).make()
    env.reset(_task(stuck, 4))
    dead = env.step("up")
    assert dead.done and dead.info["deadlock"] is True and dead.info["success"] is False
    assert dead.info["progress"] == 0.0 and dead.reward == 0.0
    off = SokobanConfig().make()  # defaults: neither feature, the same push goes on
    off.reset(_task(stuck, 4))
    assert not off.step("up").done


def _played(level: str, actions: list[str]):
    """An Episode of `actions` played in the real env (no model): observations as the env gave them."""
    from agentrl.episode import Episode, Turn

    env = SokobanConfig(instructions=False, max_steps=10).make()
    episode = Episode("t", "g", f"g/{'-'.join(actions)}", initial_observation=env.reset(_task(level, 2)))
    for action in actions:
        step = env.step(action)
        episode.turns.append(Turn([], [], [], action=action, observation=step.observation, reward=step.reward))
        if step.done:
            episode.success = bool(step.info["success"])
            break
    return episode


def test_loop_rate_counts_episodes_that_come_back_to_a_seen_observation():
    from agentrl.evaluation import summarize

    level = "######\n#@ $.#\n######"
    solved = _played(level, ["right", "right"])
    back_and_forth = _played(level, ["right", "left"])  # back at the start grid
    bumps = _played(level, ["up", "up"])  # "You cannot move up." twice over the same grid
    one_bump = _played(level, ["up", "right", "right"])  # bumped once, then solved: no cycle
    assert solved.success and one_bump.success and not bumps.success
    assert bumps.turns[0].observation == bumps.turns[1].observation == "You cannot move up.\n@ $."
    assert [e.revisits for e in (solved, back_and_forth, bumps, one_bump)] == [False, True, True, False]
    assert summarize([solved, back_and_forth, bumps, one_bump])["loop_rate"] == 0.5
    assert summarize([])["loop_rate"] == 0.0


def test_value_shaping_pays_the_change_in_solver_value_and_telescopes():
    # optimal: down, right, right, right; V = 0.9 ** moves left (1 solved, 0 deadlocked)
    level = "#######\n#@    #\n#   $.#\n#   # #\n#######"
    env = SokobanConfig(value_shaping=2.0, instructions=False).make()
    env.reset(_task(level, 4))
    assert env.value == pytest.approx(0.9 ** 4)
    moves = ["down", "up", "up", "down", "right", "right", "right"]
    rewards = [env.step(move).reward for move in moves]
    assert rewards[0] == pytest.approx(2.0 * (0.9 ** 3 - 0.9 ** 4))  # one move closer
    assert rewards[1] == pytest.approx(2.0 * (0.9 ** 4 - 0.9 ** 3))  # back where it began
    assert rewards[2] == 0.0  # blocked by the wall: same state, no shaping
    assert env.level.solved and rewards[-1] == pytest.approx(1.0 + 2.0 * (1 - 0.9))  # solve bonus + last step
    assert sum(rewards) == pytest.approx(1.0 + 2.0 * (1 - 0.9 ** 4))  # telescopes: solve + c * (V(end) - V(start))
    # a push against the top wall, off the target row, loses the whole value at once
    stuck = "######\n#    #\n# $ .#\n# @  #\n######"
    env = SokobanConfig(value_shaping=1.0).make()
    env.reset(_task(stuck, 4))
    assert env.step("up").reward == pytest.approx(-(0.9 ** 4))
    off = SokobanConfig().make()  # off by default: reset asks the solver nothing, steps add nothing
    off.reset(_task(stuck, 4))
    assert off.value == 0.0 and off.step("down").reward == 0.0
