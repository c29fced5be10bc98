"""ML-engineering sandbox: escape attempts, stage rewards, metric mapping, instrumenters.

Every sandbox test runs real agent-style programs under the real namespaces; none sends
traffic anywhere but 127.0.0.1.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from agentrl.env import Task
from agentrl_mle import (MLEConfig, RewardConfig, Sandbox, SandboxLimits, StaticInstrumenter, builtin_task,
                         expert_program, parse_action, reached_milestones)
from agentrl_mle.instrument import accept_lm_instrumentation, new_nonce, strip_markers


def _sandbox(tmp_path, **limits) -> Sandbox:
    return Sandbox(tmp_path / "work", SandboxLimits(**{"wall_s": 20, "cpu_s": 10, "memory_mb": 1024, **limits}))


def _run(sb: Sandbox, code: str):
    (sb.workdir / "prog.py").write_text(textwrap.dedent(code))
    os.chmod(sb.workdir / "prog.py", 0o644)
    return sb.python("prog.py")


def _processes_with(token: str) -> list[int]:
    """Host processes whose command line contains `token`."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if token.encode() in Path(entry.path, "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


# --- escapes -------------------------------------------------------------------------------
def test_no_network_not_even_the_hosts_loopback(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    result = _run(_sandbox(tmp_path), f"""
        import socket
        print("interfaces", socket.if_nameindex())
        print("routes", sum(not l.startswith("Iface") for l in open("/proc/net/route").read().splitlines() if l.strip()))
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=2)
            print("CONNECTED")
        except OSError as e:
            print("connect failed:", e)
    """)
    assert result.returncode == 0, result.stderr
    assert "interfaces [(1, 'lo')]" in result.stdout  # its own loopback, nothing else
    assert "routes 0" in result.stdout
    assert "connect failed" in result.stdout and "CONNECTED" not in result.stdout
    with pytest.raises(socket.timeout):  # the host's listener saw nothing
        listener.accept()
    listener.close()


def test_hidden_labels_and_host_files_are_out_of_view(tmp_path):
    hidden = tmp_path / "grader" / "test_labels.csv"
    hidden.parent.mkdir()
    hidden.write_text("id,target\n0,1\n")
    outside = tmp_path / "outside.txt"
    token = secrets.token_hex(6)
    result = _run(_sandbox(tmp_path), f"""
        import os
        for path in [{str(hidden)!r}, {str(Path.cwd() / 'README.md')!r}, "/proc/1/root/etc/hostname"]:
            try:
                open(path).read(); print("READ", path)
            except OSError as e:
                print("no read", type(e).__name__)
        for path in [{str(outside)!r}, "/escape-{token}", "/etc/escape-{token}", "/usr/escape-{token}"]:
            try:
                open(path, "w").write("x"); print("WROTE", path)
            except OSError as e:
                print("no write", type(e).__name__)
        open("/tmp/escape-{token}", "w").write("x")   # a private tmpfs: allowed, never on the host
        open("/workdir/inside.txt", "w").write("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert "READ" not in result.stdout and "WROTE" not in result.stdout
    assert result.stdout.count("no read") == 3 and result.stdout.count("no write") == 4
    assert not outside.exists() and not Path(f"/tmp/escape-{token}").exists()
    assert (tmp_path / "work" / "inside.txt").read_text() == "ok"


def test_fork_bomb_is_bounded_and_leaves_nothing(tmp_path):
    token = secrets.token_hex(6)
    result = _run(_sandbox(tmp_path, max_processes=16), f"""
        import os, sys, time
        n = 0
        try:
            while True:
                if os.fork() == 0:
                    os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)", "{token}"])
                n += 1
        except OSError as e:
            print("fork refused after", n, "children:", e)
    """)
    assert "fork refused after" in result.stdout
    assert int(result.stdout.split("after ")[1].split()[0]) < 16
    time.sleep(0.5)
    assert _processes_with(token) == []  # every child died with the sandbox


def test_memory_cpu_and_wall_limits_give_clear_observations(tmp_path):
    sb = _sandbox(tmp_path, cpu_s=2, wall_s=6)
    big = _run(sb, "buf = bytearray(10 * 2**30)\nprint('allocated')")
    assert "allocated" not in big.stdout and "memory limit" in big.limit
    spin = _run(sb, "while True:\n    pass")
    assert "CPU time limit" in spin.limit and spin.duration_s < 6
    sleep = _run(sb, "import time\ntime.sleep(60)")
    assert sleep.returncode is None and "wall-clock limit of 6 s" in sleep.limit


def test_background_child_is_killed_with_the_run(tmp_path):
    token = secrets.token_hex(6)
    result = _run(_sandbox(tmp_path), f"""
        import os, subprocess, sys
        code = "import time; time.sleep(3); open('/workdir/late.txt', 'w').write('x')"
        subprocess.Popen([sys.executable, "-c", code, "{token}"], start_new_session=True)
        print("parent exits")
    """)
    assert result.ok and "parent exits" in result.stdout
    time.sleep(0.3)
    assert _processes_with(token) == []
    time.sleep(3.5)
    assert not (tmp_path / "work" / "late.txt").exists()


def test_machine_is_left_clean(tmp_path):
    before = {p.name for p in Path("/sys/fs/cgroup").rglob("agentrl-*")} if os.geteuid() == 0 else set()
    sb = _sandbox(tmp_path)
    result = _run(sb, "print('hi')")
    assert result.ok and result.stdout == "hi\n"
    after = {p.name for p in Path("/sys/fs/cgroup").rglob("agentrl-*")} if os.geteuid() == 0 else set()
    assert after <= before  # no cgroup left behind
    if sb.uid is not None:
        assert not any(os.stat(f"/proc/{pid}").st_uid == sb.uid for pid in os.listdir("/proc") if pid.isdigit())


# --- rewards -------------------------------------------------------------------------------
LOADS = 'import pandas as pd\nfrom sklearn.linear_model import LogisticRegression\ntrain = pd.read_csv("train.csv")\ntest = pd.read_csv("test.csv")\n'
STAGE_PROGRAMS = [  # each fails one stage later than the one before
    "import no_such_package_xyz\n",
    'import pandas as pd\ntrain = pd.read_csv("missing.csv")\n',
    LOADS + 'X = train.drop(columns=["no_such_column"])\nmodel = LogisticRegression()\nmodel.fit(X, train["target"])\n',
    LOADS + 'model = LogisticRegression()\nmodel.fit(train.drop(columns=["target"]), None)\n',
    LOADS + 'model = LogisticRegression(max_iter=2000)\nmodel.fit(train.drop(columns=["target"]), train["target"])\npred = model.predict(test)\n',
    LOADS + 'model = LogisticRegression(max_iter=2000)\nmodel.fit(train.drop(columns=["target"]), train["target"])\n'
            'pred = model.predict(test.drop(columns=["id"]))\npd.DataFrame({"id": test["id"], "target": pred}).to_csv("no/such/dir/submission.csv")\n',
    LOADS + 'model = LogisticRegression(max_iter=2000)\nmodel.fit(train.drop(columns=["target"]), train["target"])\n'
            'pred = model.predict(test.drop(columns=["id"]))\npd.DataFrame({"label": pred}).to_csv("submission.csv", index=False)\n',
]


def _episode_reward(cfg: MLEConfig, task: Task, program: str):
    env = cfg.make()
    try:
        env.reset(task)
        step = env.step(f"```python\n{program}```")
        assert step.done  # max_runs=1: the run is graded
        return step
    finally:
        env.close()


def test_stage_failures_get_strictly_increasing_rewards():
    cfg = MLEConfig(datasets=["iris"], max_runs=1)
    task = cfg.tasks("train", 1, seed=3)[0]
    steps = [_episode_reward(cfg, task, p) for p in STAGE_PROGRAMS]
    rewards = [s.reward for s in steps]
    assert rewards == pytest.approx([0.0, 0.06, 0.12, 0.18, 0.24, 0.30, 0.36])
    assert [len(s.info["milestones"]) for s in steps] == list(range(7))
    assert all(s.info["duration_s"] > 0 and not s.info["valid_submission"] for s in steps)
    valid = _episode_reward(cfg, task, expert_program("classification", 0))
    assert valid.reward > 0.5 > max(rewards) and valid.info["valid_submission"]


def test_correct_program_reward_is_the_metric_mapping():
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import accuracy_score, mean_squared_error

    cfg = MLEConfig(datasets=["wine", "diabetes"], max_runs=1)
    by_name = {t.data["dataset"]: t for t in cfg.tasks("train", 2, seed=5)}
    wine_task, diabetes_task = by_name["wine"], by_name["diabetes"]
    wine = builtin_task("wine", wine_task.data["split_seed"])  # an independent, in-process reference
    model = LogisticRegression(max_iter=2000).fit(wine.train.drop(columns=["target"]), wine.train["target"])
    acc = accuracy_score(wine.labels["target"], model.predict(wine.test.drop(columns=["id"])))
    step = _episode_reward(cfg, wine_task, expert_program("classification", 0))
    assert step.info["metric_value"] == pytest.approx(acc, abs=1e-9)
    assert step.reward == pytest.approx(0.5 + 0.5 * acc, abs=1e-9)

    diabetes = builtin_task("diabetes", diabetes_task.data["split_seed"])
    X, y = diabetes.train.drop(columns=["target"]), diabetes.train["target"]
    rmse = mean_squared_error(diabetes.labels["target"], Ridge(alpha=1.0).fit(X, y).predict(diabetes.test.drop(columns=["id"]))) ** 0.5
    baseline = float(np.sqrt(np.mean((diabetes.labels["target"] - y.mean()) ** 2)))
    step = _episode_reward(cfg, diabetes_task, expert_program("regression", 0))
    assert step.info["metric_value"] == pytest.approx(rmse, rel=1e-9)
    assert step.reward == pytest.approx(0.5 + 0.5 * max(0.0, 1 - rmse / baseline), rel=1e-9)


def test_multi_turn_write_run_read_submit_and_symlink_safety(tmp_path):
    cfg = MLEConfig(datasets=["iris"], max_runs=3)
    env = cfg.make()
    try:
        env.reset(cfg.tasks("train", 1, 0)[0])
        assert env.step("what now?").info["invalid_action"]
        wrote = env.step("WRITE model.py\n```python\n" + expert_program("classification", 1) + "```")
        assert "Wrote model.py" in wrote.observation and not wrote.done
        ran = env.step("RUN model.py")
        assert "format valid" in ran.observation and "@@agentrl" not in ran.observation and not ran.done
        # a program that leaves a symlink to a host file: the grader and WRITE never follow it
        secret = tmp_path / "secret.txt"
        secret.write_text("top secret")
        env.step(f"```python\nimport os\nos.symlink({str(secret)!r}, 'submission.csv')\nos.symlink({str(secret)!r}, 'x.py')\n```")
        assert "top secret" not in env.step("READ x.py").observation
        env.step("WRITE x.py\n```python\nprint(1)\n```")
        assert secret.read_text() == "top secret"
        final = env.step("SUBMIT")
        assert final.done and not final.info["valid_submission"] and "top secret" not in final.observation
    finally:
        env.close()


# --- instrumenters, actions, config ----------------------------------------------------------
def test_static_instrumenter_markers_and_nonce():
    nonce = new_nonce()
    source = expert_program("regression", 0)
    instrumented = StaticInstrumenter()(source, nonce)
    forged = "@@agentrl-milestone:0000000000000000:model_trained\n"
    out = "".join(f"@@agentrl-milestone:{nonce}:{m}\n" for m in ("imports", "model_trained")) + forged + "hello\n"
    assert reached_milestones(out, nonce) == ["imports", "model_trained"]  # the forged nonce counts for nothing
    assert strip_markers(out) == "hello\n"
    import ast
    import re
    assert re.findall(rf"{nonce}:(\w+)", instrumented) == [  # in program order: 2 imports, 3 CSV reads, ...
        "imports", "imports", "data_loaded", "data_loaded", "data_loaded", "features_built", "model_trained",
        "predictions_made", "submission_written"]
    assert ast.dump(ast.parse(StaticInstrumenter()(source, nonce))) == ast.dump(ast.parse(instrumented))  # deterministic


def test_lm_instrumentation_accepted_only_when_it_adds_prints():
    source = 'import pandas as pd\ndf = pd.read_csv("train.csv")\nprint(len(df))\n'
    good = 'Here:\n```python\nimport pandas as pd\nprint("@@MILESTONE imports")\ndf = pd.read_csv("train.csv")\nprint("@@MILESTONE data_loaded")\nprint(len(df))\n```'
    result = accept_lm_instrumentation(source, good, "abc")
    assert result is not None and result.count("@@agentrl-milestone:abc:") == 2
    changed = good.replace("print(len(df))", "print(len(df) + 1)")
    unknown = good.replace("data_loaded", "hacked")
    assert accept_lm_instrumentation(source, changed, "abc") is None
    assert accept_lm_instrumentation(source, unknown, "abc") is None
    assert accept_lm_instrumentation(source, "no code", "abc") is None


def test_lm_instrumenter_falls_back_to_static_through_a_real_engine(tiny_model):
    from agentrl.engines.hf import HFEngine
    from agentrl_mle import LMInstrumenter

    engine = HFEngine(tiny_model)
    try:
        lm = LMInstrumenter(engine, max_new_tokens=16)
        nonce = new_nonce()
        short = 'import pandas as pd\ntrain = pd.read_csv("train.csv")\n'
        assert lm(short, nonce) == StaticInstrumenter()(short, nonce)  # an untrained model answers garbage
        long = expert_program("classification", 0) * 3  # a prompt beyond the model's context
        assert lm(long, nonce) == StaticInstrumenter()(long, nonce)
        assert lm.rejected == 2 and lm.accepted == 0
    finally:
        engine.close()


def test_actions_parse():
    assert parse_action("```python\nprint(1)\n```").kind == "write_run"
    assert parse_action("WRITE a.py\n```python\nx=1\n```").name == "a.py"
    assert parse_action("RUN a.py").kind == "run" and parse_action("  SUBMIT ").kind == "submit"
    assert parse_action("READ ../etc/passwd").kind == "invalid"  # no paths, only names


def test_config_errors_name_the_field(tmp_path):
    with pytest.raises(ValueError, match="datasets"):
        MLEConfig(datasets=["mnist"]).validate()
    with pytest.raises(ValueError, match="valid_base"):
        RewardConfig(milestone_reward=0.1).validate()
    with pytest.raises(ValueError, match="sandbox.memory_mb"):
        SandboxLimits(memory_mb=0).validate()
    (tmp_path / "task.json").write_text(json.dumps({"kind": "regression", "metric": "r2", "targets": ["y"]}))
    with pytest.raises(ValueError, match="metric"):
        MLEConfig(task_dirs=[str(tmp_path)]).validate()


def test_user_task_folder_and_disjoint_splits(tmp_path):
    task = builtin_task("iris", 1)
    folder = tmp_path / "iris_folder"
    folder.mkdir()
    task.train.to_csv(folder / "train.csv", index=False)
    task.test.to_parquet(folder / "test.parquet")
    task.labels.to_csv(folder / "test_labels.csv", index=False)
    (folder / "task.json").write_text(json.dumps({"kind": "classification", "metric": "accuracy", "targets": ["target"]}))
    cfg = MLEConfig(datasets=[], task_dirs=[str(folder)], max_runs=1)
    cfg.validate()
    step = _episode_reward(cfg, cfg.tasks("train", 1, 0)[0], expert_program("classification", 0))
    assert step.info["valid_submission"] and step.reward > 0.9
    builtin = MLEConfig()
    train_ids = {t.id for t in builtin.tasks("train", 60, 0)}
    assert not train_ids & {t.id for t in builtin.tasks("test", 60, 0)}


def test_user_namespace_fallback_and_failing_closed(tmp_path, monkeypatch):
    """Without root the sandbox uses a user namespace (same view, no network, no capabilities);
    with no namespaces at all it refuses to run anything."""
    import agentrl_mle.sandbox as sandbox

    probe = sandbox.sandbox_mode.__wrapped__  # the uncached probe
    monkeypatch.setattr(sandbox, "sandbox_mode", lambda: "userns")
    sb = _sandbox(tmp_path)
    assert sb.uid is None
    result = _run(sb, """
        import os, socket
        print(socket.if_nameindex())
        for path in ["/x", "/etc/x"]:
            try:
                open(path, "w"); print("WROTE", path)
            except OSError as e:
                print("no write", e.errno)
        print(open("/proc/self/status").read().split("CapEff:")[1].split()[0])
    """)
    assert result.ok, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "[(1, 'lo')]" and lines[1:3] == ["no write 30", "no write 30"]  # read-only everywhere
    assert int(lines[3], 16) == 0  # no capabilities left

    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.raises(sandbox.SandboxUnavailable, match="unshare"):
        probe()
