"""`agentrl eval` end to end on a real (tiny) checkpoint."""
from agentrl.cli import main
from agentrl.episode import load_episodes


def test_eval_prints_table_and_writes_episodes(tiny_model, tmp_path, capsys):
    out = tmp_path / "episodes.jsonl"
    code = main(["eval", "--model", tiny_model, "--env", "sokoban", "--out", str(out),
                 "--eval.tasks", "6", "--env.width", "5", "--env.height", "5", "--env.instructions", "false",
                 "--rollout.max_new_tokens", "3", "--rollout.history", "0", "--engine", "hf"])
    assert code == 0
    printed = capsys.readouterr().out
    for metric in ("success_rate", "mean_reward", "mean_steps", "invalid_action_rate"):
        assert metric in printed
    episodes = load_episodes(str(out))
    assert len(episodes) == 6 and len({e.task_id for e in episodes}) == 6
    assert all(e.task_id.startswith("sokoban/test/") for e in episodes)


def test_eval_bad_field_is_named(tiny_model, capsys):
    assert main(["eval", "--model", tiny_model, "--env", "sokoban", "--eval.tasks", "many"]) == 2
    assert "eval.tasks" in capsys.readouterr().out


def test_export_demos_writes_expert_chats(tmp_path, capsys):
    """Each row replays the expert through the real env: user/assistant turns alternate, the
    assistant turns are the expert's actions, the observations are the env's own replies."""
    import datasets

    from agentrl_sokoban import SokobanConfig

    out = tmp_path / "demos.jsonl"
    assert main(["export-demos", "--env", "sokoban", "--tasks", "4", "--out", str(out), "--seed", "3",
                 "--env.width", "5", "--env.height", "5"]) == 0
    assert "wrote 4 expert episodes" in capsys.readouterr().out
    rows = datasets.load_dataset("json", data_files=str(out), split="train")
    cfg = SokobanConfig(width=5, height=5)
    tasks = cfg.tasks("train", 4, 3)
    assert rows["task_id"] == [t.id for t in tasks]
    for row, task in zip(rows, tasks):
        roles = [m["role"] for m in row["messages"]]
        assert roles == ["user", "assistant"] * row["num_turns"] and row["success"]
        actions = [m["content"] for m in row["messages"] if m["role"] == "assistant"]
        assert actions == cfg.expert_actions(task) and len(actions) == task.data["optimal_length"]
        env = cfg.make()
        assert row["messages"][0]["content"] == env.reset(task)
        first = env.step(actions[0])
        if row["num_turns"] > 1:
            assert row["messages"][2]["content"] == first.observation
        else:
            assert first.done and first.info["success"]


def test_export_demos_bad_env_field_is_named(tmp_path, capsys):
    assert main(["export-demos", "--env", "sokoban", "--out", str(tmp_path / "d"), "--env.widht", "5"]) == 2
    assert "env.widht" in capsys.readouterr().out
