"""launch/: every accelerate config parses and points at a DeepSpeed config that exists, and the
Slurm script wires servers and learners as documented (dry run, with a stand-in `scontrol`)."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("config", sorted(p.name for p in (ROOT / "launch").glob("*.yaml")))
def test_accelerate_configs_parse_and_name_existing_deepspeed_configs(config):
    cfg = yaml.safe_load((ROOT / "launch" / config).read_text())
    assert cfg["distributed_type"] in ("NO", "MULTI_GPU", "DEEPSPEED")
    if cfg["distributed_type"] == "DEEPSPEED":
        ds = json.loads((ROOT / cfg["deepspeed_config"]["deepspeed_config_file"]).read_text())
        stage = ds["zero_optimization"]["stage"]
        assert stage in (2, 3) and cfg["deepspeed_config"]["zero3_init_flag"] == (stage == 3)
        # the learner sizes and accumulates its own microbatches (agentrl.distributed.prepare_deepspeed_config)
        assert ds["gradient_accumulation_steps"] == "auto"
        assert "mixed_precision" not in cfg  # accelerate refuses it beside a deepspeed_config_file


def test_slurm_script_gives_learners_every_server_and_one_rank_per_node(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "scontrol").write_text('#!/bin/bash\n[[ "$1 $2" == "show hostnames" ]] && printf "n1\\nn2\\nn3\\nn4\\n"\n')
    (fake / "scontrol").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "DRY_RUN": "1", "SLURM_JOB_NODELIST": "n[1-4]",
           "MODEL": "org/model", "GPUS_PER_NODE": "4", "VLLM_TP": "2", "SYNC_DIR": str(tmp_path / "sync")}
    out = subprocess.run(["bash", "launch/slurm.sbatch", "recipes/loop_appworld.py", "--preset", "paper"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    lines = [shlex.split(line) for line in out.splitlines() if line.startswith("srun")]
    servers = [c for c in lines if "agentrl.engines.vllm_launch" in c]
    learners = [c for c in lines if "accelerate.commands.launch" in c]
    # node n1 serves: 4 GPUs / TP 2 = 2 servers on GPUs 0,1 and 2,3, bound to n1's own name
    assert [(c[c.index("-w") + 1], c[c.index("--port") + 1], c[c.index("--host") + 1]) for c in servers] == [
        ("n1", "8000", "n1"), ("n1", "8001", "n1")]
    assert [next(a for a in c if a.startswith("CUDA_VISIBLE_DEVICES")) for c in servers] == [
        "CUDA_VISIBLE_DEVICES=0,1", "CUDA_VISIBLE_DEVICES=2,3"]
    # n2..n4 learn: one launch each, ranks 0..2, 12 processes, all rendezvous at n2, all see both servers
    by_rank = {int(c[c.index("--machine_rank") + 1]): c for c in learners}
    assert sorted(by_rank) == [0, 1, 2]
    for rank, c in by_rank.items():
        assert c[c.index("-w") + 1] == f"n{rank + 2}"
        assert c[c.index("--main_process_ip") + 1] == "n2"
        assert c[c.index("--num_machines") + 1] == "3" and c[c.index("--num_processes") + 1] == "12"
        assert c[c.index("--rl.engine.urls") + 1] == "http://n1:8000,http://n1:8001"
        assert c[c.index("--rl.engine.sync_dir") + 1] == str(tmp_path / "sync")
        assert c[-2:] == ["--preset", "paper"]
