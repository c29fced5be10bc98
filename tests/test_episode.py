from agentrl.episode import Episode, Turn, load_episodes, save_episodes


def _episode():
    turns = [
        Turn([1, 2, 3], [4, 5], [-0.5, -0.25], action="up", observation="obs1", reward=0.0, info={"invalid_action": False}),
        Turn([1, 2, 3, 4, 5, 6, 7], [8], [-1.0], action="left", observation="obs2", reward=1.0, info={"success": True}),
        Turn([9, 9], [10, 11], [-0.1, -0.2], action="down"),  # a window restart: a new sequence
    ]
    return Episode("t", "g", "g/0", turns, reward=1.0, success=True, finish_reason="done")


def test_sequences_merge_prefix_extending_turns():
    first, second = _episode().sequences()
    assert first.token_ids == [1, 2, 3, 4, 5, 6, 7, 8]
    assert first.loss_mask == [0, 0, 0, 1, 1, 0, 0, 1]
    assert first.logprobs == [0, 0, 0, -0.5, -0.25, 0, 0, -1.0]
    assert second.token_ids == [9, 9, 10, 11] and second.loss_mask == [0, 0, 1, 1]


def test_save_and_load_roundtrip(tmp_path):
    ep = _episode()
    for name in ("eps.jsonl", "eps.parquet"):
        save_episodes([ep, ep], str(tmp_path / name))
        loaded = load_episodes(str(tmp_path / name))
        assert loaded == [ep, ep]
