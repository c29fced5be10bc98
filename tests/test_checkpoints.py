"""Checkpoints survive faults: atomic writes, corrupt ones skipped, a SIGKILLed run resumes
without losing or repeating an iteration or an episode."""
from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from agentrl import checkpoints
from test_trainer import _cfg, _state

from agentrl.algorithms import LOOP
from agentrl.episode import load_episodes
from agentrl.trainer import Trainer


def _write(root: Path, iteration: int, payload: bytes, keep: int = 0) -> Path:
    partial = checkpoints.begin(root, iteration)
    (partial / "sub").mkdir()
    (partial / "sub" / "weights.bin").write_bytes(payload)
    return checkpoints.commit(partial, keep=keep)


def test_partial_checkpoints_are_invisible_and_corrupt_ones_fall_back(tmp_path):
    for i in (1, 2, 3):
        _write(tmp_path, i, bytes([i]) * 100, keep=2)
    assert [p.name for p in checkpoints.complete(tmp_path)] == ["iter_000002", "iter_000003"]  # keep-last-2
    checkpoints.begin(tmp_path, 4)  # a run killed while writing 4 leaves only iter_000004.partial
    assert [p.name for p in checkpoints.complete(tmp_path)] == ["iter_000002", "iter_000003"]
    checkpoints.verify(tmp_path / "iter_000003")

    weights = tmp_path / "iter_000003" / "sub" / "weights.bin"
    weights.write_bytes(b"\x00" * 100)  # same size, different bytes
    with pytest.raises(checkpoints.CorruptCheckpoint, match="sub/weights.bin does not match its checksum"):
        checkpoints.verify(tmp_path / "iter_000003")
    weights.write_bytes(b"\x03" * 10)
    with pytest.raises(checkpoints.CorruptCheckpoint, match="has 10 bytes, expected 100"):
        checkpoints.verify(tmp_path / "iter_000003")
    with pytest.warns(RuntimeWarning, match="iter_000003 is unusable"):
        path, data = checkpoints.load_latest(tmp_path, lambda p: (p / "sub" / "weights.bin").read_bytes())
    assert path.name == "iter_000002" and data == b"\x02" * 100
    weights.unlink()
    with pytest.raises(checkpoints.CorruptCheckpoint, match="sub/weights.bin is missing"):
        checkpoints.verify(tmp_path / "iter_000003")

    # a checkpoint that verifies but fails to load is skipped too; none usable -> None
    def broken(path):
        raise ValueError("bad pickle")

    with pytest.warns(RuntimeWarning) as caught:
        assert checkpoints.load_latest(tmp_path, broken) is None
    assert ["missing" in str(w.message) or "bad pickle" in str(w.message) for w in caught] == [True, True]
    assert "bad pickle" in str(caught[1].message)


def test_corrupted_latest_checkpoint_resumes_from_the_previous_one(sft_model, sokoban_env, tmp_path, capsys):
    """Checkpoints 1 and 2 written, 2's model weights overwritten: the resume warns, restarts from 1,
    and the run ends in the same state as one never interrupted (iterations logged once each)."""
    straight = Trainer(_cfg(sft_model, sokoban_env, tmp_path / "a", 3))
    straight.fit()
    Trainer(_cfg(sft_model, sokoban_env, tmp_path / "b", 2)).fit()
    latest = tmp_path / "b" / "checkpoints" / "iter_000002"
    weights = next(p for p in latest.rglob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a torn write
    resumed = Trainer(_cfg(sft_model, sokoban_env, tmp_path / "b", 3, resume=True))
    with pytest.warns(RuntimeWarning, match="iter_000002 is unusable"):
        resumed.fit()
    printed = capsys.readouterr().out
    assert "[resume] warning" in printed and "iter_000001 (iteration 1)" in printed
    params_a, opt_a, steps_a, _ = _state(straight)
    params_b, opt_b, steps_b, _ = _state(resumed)
    assert steps_a == steps_b > 0
    for k in params_a:
        torch.testing.assert_close(params_a[k], params_b[k], rtol=1e-5, atol=1e-6)
    assert [r["iteration"] for r in resumed.log.history() if "train/success_rate" in r] == [1, 2, 3]


KILLED_RUN = """
import pickle, sys, time
from pathlib import Path
from agentrl.learner import Learner
from agentrl.trainer import Trainer

update, calls = Learner.update, []


def update_that_stalls_in_iteration_3(self, *args, **kwargs):
    calls.append(1)
    if len(calls) == 3:  # the injected fault: iteration 3 says it has started, then hangs until killed
        Path(sys.argv[2]).touch()
        time.sleep(600)
    return update(self, *args, **kwargs)


Learner.update = update_that_stalls_in_iteration_3
Trainer(pickle.load(open(sys.argv[1], "rb"))).fit()
"""


@pytest.mark.slow
def test_sigkill_mid_iteration_then_resume_loses_and_repeats_nothing(sft_model, sokoban_env, tmp_path):
    """An async-rollout run SIGKILLed during iteration 3 (checkpoint 2 sealed, 3 not written) and
    resumed: iterations 1..4 logged once each, iteration 3 trains on exactly the episodes that were
    collected before the kill (saved with checkpoint 2), and the final weights and optimizer state
    equal an uninterrupted run's."""
    algorithm = LOOP(epochs=1, minibatch_episodes=0, min_abs_advantage=0.0)
    cfg = _cfg(sft_model, sokoban_env, tmp_path / "killed", 4, async_rollouts=True, algorithm=algorithm,
               save_episodes=1000)
    (tmp_path / "cfg.pkl").write_bytes(pickle.dumps(cfg))
    (tmp_path / "run.py").write_text(KILLED_RUN)
    in_iteration_3 = tmp_path / "in_iteration_3"
    proc = subprocess.Popen([sys.executable, str(tmp_path / "run.py"), str(tmp_path / "cfg.pkl"), str(in_iteration_3)],
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
                            stdout=subprocess.DEVNULL, stderr=(tmp_path / "stderr.txt").open("wb"))
    sealed = tmp_path / "killed" / "checkpoints" / "iter_000002"
    deadline = time.monotonic() + 300
    # a fixed sleep after checkpoint 2 once let iteration 3 finish first on a fast machine: the run
    # itself says when it is inside iteration 3's update
    while not in_iteration_3.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if not in_iteration_3.exists():
        proc.kill()  # never leave the run behind
    assert in_iteration_3.exists(), (tmp_path / "stderr.txt").read_text()[-3000:] if proc.poll() is not None else "timed out"
    assert sealed.exists()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (tmp_path / "killed" / "checkpoints" / "iter_000003").exists(), "killed too late: iteration 3 done"
    pending = load_episodes(str(sealed / "pending_episodes.jsonl"))
    assert len(pending) == cfg.tasks_per_iteration * cfg.rollouts_per_task

    cfg.resume = True
    resumed = Trainer(cfg)
    resumed.fit()
    straight = Trainer(_cfg(sft_model, sokoban_env, tmp_path / "straight", 4, async_rollouts=True,
                            algorithm=algorithm, save_episodes=1000))
    straight.fit()

    rows = [json.loads(line) for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows if "train/success_rate" in r] == [1, 2, 3, 4]
    trained_3 = load_episodes(str(tmp_path / "killed" / "episodes" / "train_00003.jsonl"))
    assert [e.episode_id for e in trained_3] == [e.episode_id for e in pending]
    assert [e.turns[0].completion_ids for e in trained_3] == [e.turns[0].completion_ids for e in pending]
    for it in (1, 2, 3, 4):  # every iteration's episodes are the uninterrupted run's, none twice
        ids = [e.episode_id for e in load_episodes(str(tmp_path / "killed" / "episodes" / f"train_{it:05d}.jsonl"))]
        same = [e.episode_id for e in load_episodes(str(tmp_path / "straight" / "episodes" / f"train_{it:05d}.jsonl"))]
        assert ids == same and len(set(ids)) == len(ids)
    params_a, opt_a, steps_a, version_a = _state(straight)
    params_b, opt_b, steps_b, version_b = _state(resumed)
    assert (steps_a, version_a) == (steps_b, version_b)
    for k in params_a:
        torch.testing.assert_close(params_a[k], params_b[k], rtol=1e-5, atol=1e-6)
