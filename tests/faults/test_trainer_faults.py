"""The trainer under faults: the disk fills up while checkpointing (a real tmpfs of a few MB), and
the training process is SIGKILLed and SIGTERMed at random points, then resumed, until it finishes.
Each run ends with every iteration logged once, every episode saved once, and every checkpoint
matching its manifest."""
from __future__ import annotations

import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentrl import checkpoints
from agentrl.run_log import RunLog
from agentrl.trainer import Trainer
from ledger import account, saved_train_episodes
from test_trainer import _cfg

RUN = """
import pickle, sys
from agentrl.trainer import Trainer
Trainer(pickle.load(open(sys.argv[1], "rb"))).fit()
"""


def _train_rows(run: Path) -> list[int]:
    return [r["iteration"] for r in RunLog(run).history() if "train/success_rate" in r]


def _episodes(run: Path, iterations: int) -> list:
    return [e for eps in saved_train_episodes(run, iterations) for e in eps]


def _sealed_ok(root: Path, killed_mid_write: bool = False) -> list[str]:
    """Names of the sealed checkpoints, each verified. A process killed while writing leaves its
    `.partial` directory (nothing reads it; the next write of that iteration replaces it); any other
    leftover partial is a failed write that was not cleaned up."""
    for path in checkpoints.complete(root):
        checkpoints.verify(path)  # raises on a corrupt one
    if not killed_mid_write:
        assert not list(root.glob("*.partial")), "a failed write left its partial directory"
    return [p.name for p in checkpoints.complete(root)]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_disk_full_while_checkpointing(sft_model, sokoban_env, tmp_path):
    """Checkpoints go to a tmpfs with room for two and a half: checkpoints 1 and 2 are written,
    3 and 4 fail with ENOSPC, are removed and warned about, and the run finishes; a resume on the
    full disk starts from 2, finishes again, and still no checkpoint is corrupt."""
    probe = Trainer(_cfg(sft_model, sokoban_env, tmp_path / "probe", 1))
    probe.fit()
    size = sum(p.stat().st_size for p in (tmp_path / "probe" / "checkpoints" / "iter_000001").rglob("*") if p.is_file())
    run = tmp_path / "run"
    root = run / "checkpoints"
    root.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={int(size * 2.5) // 4096 * 4096 + 4096}", "tmpfs", str(root)],
                   check=True)
    try:
        cfg = _cfg(sft_model, sokoban_env, run, 4, save_episodes=10_000, keep_checkpoints=2)
        with pytest.warns(RuntimeWarning, match="No space left on device") as failed_writes:
            Trainer(cfg).fit()
        assert len(failed_writes) == 2
        assert _sealed_ok(root) == ["iter_000001", "iter_000002"]
        assert _train_rows(run) == [1, 2, 3, 4] and (run / "final").is_dir()

        cfg.resume = True
        with pytest.warns(RuntimeWarning, match="No space left on device") as again:
            Trainer(cfg).fit()
        assert len(again) == 2 and _sealed_ok(root) == ["iter_000001", "iter_000002"]
        assert _train_rows(run) == [1, 2, 3, 4]
        per_iteration = cfg.tasks_per_iteration * cfg.rollouts_per_task
        account("disk full while checkpointing (tmpfs)", len(failed_writes) + len(again), _episodes(run, 4),
                4 * per_iteration)
    finally:
        subprocess.run(["umount", str(root)], check=False)


@pytest.mark.slow
def test_sigkill_and_sigterm_at_random_points_then_resume(sft_model, sokoban_env, tmp_path):
    """The trainer process is killed (SIGKILL or SIGTERM, chosen at random) at a random moment after
    a random checkpoint, three times, restarted with --resume each time, then left to finish. Its
    iterations, episodes and weights match an uninterrupted run's; SIGTERM exits promptly."""
    iterations = 6
    cfg = _cfg(sft_model, sokoban_env, tmp_path / "killed", iterations, save_episodes=10_000, resume=True)
    (tmp_path / "cfg.pkl").write_bytes(pickle.dumps(cfg))
    (tmp_path / "run.py").write_text(RUN)
    root = tmp_path / "killed" / "checkpoints"
    rng, kills = random.Random(7), []
    targets = sorted(rng.sample(range(1, iterations), 3))  # kill after these checkpoints, plus a random delay

    def newest() -> int:
        done = checkpoints.complete(root) if root.exists() else []
        return int(done[-1].name.split("_")[1]) if done else 0

    signals = rng.sample([signal.SIGKILL, signal.SIGTERM, rng.choice([signal.SIGKILL, signal.SIGTERM])], 3)
    for target in [*targets, None]:
        stderr = (tmp_path / f"stderr{len(kills)}.txt").open("wb")
        proc = subprocess.Popen([sys.executable, str(tmp_path / "run.py"), str(tmp_path / "cfg.pkl")],
                                env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
                                stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            if target is None:
                assert proc.wait(timeout=300) == 0, (tmp_path / f"stderr{len(kills)}.txt").read_text()[-3000:]
                break
            deadline = time.monotonic() + 300
            while newest() < target and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert proc.poll() is None, (tmp_path / f"stderr{len(kills)}.txt").read_text()[-3000:]
            time.sleep(rng.uniform(0.0, 1.5))  # somewhere in the next iteration(s)
            sig = signals[len(kills)]
            t0 = time.monotonic()
            proc.send_signal(sig)
            proc.wait(timeout=60)
            kills.append((signal.Signals(sig).name, newest(), round(time.monotonic() - t0, 1)))
            _sealed_ok(root, killed_mid_write=True)  # whatever the moment, no checkpoint is corrupt
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert len(kills) == 3, kills
    assert all(seconds < 30 for _, _, seconds in kills), kills  # SIGTERM shuts down cleanly, not by timeout

    straight = Trainer(_cfg(sft_model, sokoban_env, tmp_path / "straight", iterations, save_episodes=10_000))
    straight.fit()
    assert _train_rows(tmp_path / "killed") == list(range(1, iterations + 1))
    killed_eps = _episodes(tmp_path / "killed", iterations)
    straight_eps = _episodes(tmp_path / "straight", iterations)
    assert [e.episode_id for e in killed_eps] == [e.episode_id for e in straight_eps]
    assert [t.completion_ids for e in killed_eps for t in e.turns] == [t.completion_ids for e in straight_eps for t in e.turns]
    account(f"trainer killed 3x ({', '.join(k for k, _, _ in kills)}), resumed", len(kills), killed_eps,
            iterations * cfg.tasks_per_iteration * cfg.rollouts_per_task)
    final = Path(tmp_path / "killed" / "final")
    assert final.is_dir() and _sealed_ok(root)
    shutil.rmtree(tmp_path / "straight", ignore_errors=True)
