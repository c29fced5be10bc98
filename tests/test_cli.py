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
