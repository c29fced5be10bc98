"""ReSim search trees on the real Sokoban env: snapshots, real next states, trace round trip, data."""
from __future__ import annotations

import pytest

from agentrl.env import Task
from agentrl.resim import compose_trace, expand_tree, parse_trace, resim_dataset, resim_episode
from agentrl_sokoban import SokobanConfig
from agentrl_sokoban.actions import parse_action
from agentrl_sokoban.levels import parse_level, render_level
from agentrl_sokoban.solver import moves_to_solve

# 7x7: the player left of a box two cells from its target (solution: right, right), room to wander
LEVEL = "\n".join([
    "#######",
    "#     #",
    "# @$ .#",
    "#     #",
    "#     #",
    "#     #",
    "#######",
])


def env_at(prefix: list[str]):
    env = SokobanConfig(instructions=False, max_steps=20).make()
    obs = env.reset(Task("t", {"level": LEVEL}))
    for move in prefix:
        obs = env.step(move).observation
    return env, obs


def test_expanding_a_tree_leaves_the_env_untouched():
    env, obs = env_at(["down"])
    before = (env.render(), env.steps, env.done)
    tree = expand_tree(env, obs, breadth=4, depth=3)
    assert len(tree.children) == 4 and all(len(c.children) == 4 for c in tree.children if not c.done)
    assert (env.render(), env.steps, env.done) == before
    # and it goes on exactly as an env that never searched
    fresh, _ = env_at(["down"])
    for move in ("up", "right", "right"):
        a, b = env.step(move), fresh.step(move)
        assert (a.observation, a.reward, a.done) == (b.observation, b.reward, b.done)
    assert a.done and a.info["success"]


def test_depth_one_predictions_are_the_real_next_states_and_values_the_solver_distance():
    env, obs = env_at([])
    tree = expand_tree(env, obs, breadth=4, depth=1, gamma=0.9)
    assert [c.action for c in tree.children] == ["up", "down", "left", "right"]
    for child in tree.children:
        real, _ = env_at([])
        step = real.step(child.action)
        assert child.observation == step.observation and child.reward == step.reward
        # value: 0.9 ** (optimal moves left), from the solver run on the level text independently
        level = parse_level(LEVEL).move(child.action).level
        assert child.value == pytest.approx(0.9 ** moves_to_solve(render_level(level)))
    # hand count: the solution is right, right; after "right" one move is left -> 0.9, else 3 moves -> 0.729
    assert tree.best().action == "right" and tree.best().value == pytest.approx(0.9)
    assert [round(c.value, 3) for c in tree.children] == [0.729, 0.729, 0.729, 0.9]


def test_trace_parses_back_into_simulations_and_action():
    env, obs = env_at([])
    tree = expand_tree(env, obs, breadth=4, depth=2)
    trace = compose_trace(tree)
    sims, action = parse_trace(trace)
    assert [(s.action, s.next_state) for s in sims] == [(c.action, c.observation) for c in tree.children]
    assert [s.value for s in sims] == [round(c.value, 2) for c in tree.children]
    assert action == tree.best().action == "right"
    assert parse_action(trace) == "right"  # the env reads the trace's final answer
    assert parse_trace("no trace here") == ([], None)
    # what a model writes need not be well formed: a bad value ends the number, nothing raises
    sims, action = parse_trace('<simulate action="up">\n@ \n</simulate>\nvalue: 1.0.5\n<action>up')
    assert [(s.action, s.next_state, s.value) for s in sims] == [("up", "@ ", 1.0)] and action is None


def test_resim_episode_plays_optimally_and_builds_a_chat_dataset():
    cfg = SokobanConfig(width=6, height=6, num_boxes=1, instructions=False)
    tasks = cfg.tasks("train", 3, 7)
    episode = resim_episode(cfg, tasks[0], breadth=4, depth=2)
    assert episode["success"]
    # every chosen move is optimal: the solver's distance drops by one each step
    assert len(episode["examples"]) == tasks[0].data["optimal_length"]
    data = resim_dataset(cfg, tasks, breadth=4, depth=2)
    assert len(data) == sum(t.data["optimal_length"] for t in tasks)
    chat = data[0]["messages"]
    assert [m["role"] for m in chat] == ["user", "assistant"]
    sims, action = parse_trace(chat[1]["content"])
    assert len(sims) == 4 and action in {"up", "down", "left", "right"}
    with pytest.raises(ValueError, match="breadth and depth"):
        expand_tree(cfg.make(), "", 0, 1)


def test_simulation_accuracy_counts_the_taken_moves_predicted_grid():
    from agentrl.episode import Episode, Turn
    from agentrl.evaluation import summarize
    from agentrl.resim import simulation_accuracy

    env, obs = env_at([])
    tree = expand_tree(env, obs, breadth=4, depth=1)
    trace = compose_trace(tree)  # chooses "right"; its simulation is the real grid after "right"
    real_after_right = next(c.observation for c in tree.children if c.action == "right")
    wrong = trace.replace(real_after_right, real_after_right.replace("@", " ", 1), 1)  # a wrong prediction
    turns = [Turn([], [], [], action=trace, observation=real_after_right),  # hit
             Turn([], [], [], action=wrong, observation=real_after_right),  # miss
             Turn([], [], [], action="right", observation=real_after_right),  # no trace: not counted
             Turn([], [], [], action=trace, observation=real_after_right + "\n")]  # hit (trailing newline)
    episodes = [Episode(task_id="t", group_id="g", episode_id="e", turns=turns)]
    assert simulation_accuracy(episodes) == pytest.approx(2 / 3)
    assert summarize(episodes)["sim_accuracy"] == pytest.approx(2 / 3)
    assert simulation_accuracy([Episode(task_id="t", group_id="g", episode_id="e", turns=turns[2:3])]) is None
    assert "sim_accuracy" not in summarize([Episode(task_id="t", group_id="g", episode_id="e", turns=turns[2:3])])


def test_sft_on_resim_traces_uses_them_as_demonstrations(tmp_path):
    from agentrl.model_builder import build_local_model
    from agentrl.resim import resim_actions
    from agentrl.rollout import RolloutConfig
    from agentrl.sft import SFTConfig, demonstration_episodes

    cfg = SokobanConfig(width=6, height=6, num_boxes=1, instructions=False)
    tasks = cfg.tasks("train", 2, 0)
    model = build_local_model(tmp_path / "m", env_configs=[cfg], n_tasks=5, hidden_size=32, num_layers=1,
                              num_heads=2, intermediate_size=32)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model))
    demos = demonstration_episodes(cfg, tasks, tokenizer, RolloutConfig(history=0), 4096, resim_actions(cfg, 4, 2))
    assert len(demos) == 2 and all(d.success for d in demos)
    assert all(parse_trace(t.action)[1] == t.info["action"] for d in demos for t in d.turns)
    # Dyna-GRPO's warm start: with resim_refine=1 every state also gives (s_refine -> its correct trace)
    import numpy as np

    from agentrl.chat import ChatFormat
    from agentrl.sft import refinement_samples

    refine = refinement_samples(demos, ChatFormat(tokenizer), 1.0, np.random.default_rng(0))
    turns = [t for d in demos for t in d.turns]
    assert len(refine) == len(turns)
    for sample, turn in zip(refine, turns):
        trained = [i for i, m in zip(sample.token_ids, sample.loss_mask) if m]
        assert trained == turn.completion_ids and sample.token_ids[: len(turn.prompt_ids)] == turn.prompt_ids
    assert refinement_samples(demos, ChatFormat(tokenizer), 0.0, np.random.default_rng(0)) == []
    with pytest.raises(ValueError, match="demonstrations must be expert or resim"):
        SFTConfig(demonstrations="tree").validate()
    with pytest.raises(ValueError, match="resim_refine"):
        SFTConfig(resim_refine=2.0).validate()


def test_lm_composer_writes_the_comparison_and_falls_back_when_it_picks_another_move(tiny_model):
    """The composing LM is played by a scripted engine (its two answers are the test's input): the
    simulations stay the tree's real states; only a reasoning that picks the tree's best move is kept."""
    from transformers import AutoTokenizer

    from agentrl.engines.scripted import ScriptedEngine
    from agentrl.resim import LMComposer

    env, obs = env_at([])
    tree = expand_tree(env, obs, breadth=4, depth=1)  # best: right
    answers = ["Only right brings the box next to its target. <action>right</action>",
               "Up looks fine. <action>up</action>"]
    engine = ScriptedEngine(AutoTokenizer.from_pretrained(tiny_model), answers, max_model_len=4096)
    composer = LMComposer(engine)
    good, fallback = composer(tree), composer(tree)
    assert good == compose_trace(tree, "Only right brings the box next to its target.")
    sims, action = parse_trace(good)
    assert action == "right" and [s.next_state for s in sims] == [c.observation for c in tree.children]
    assert fallback == compose_trace(tree) and (composer.composed, composer.fallbacks) == (1, 1)
