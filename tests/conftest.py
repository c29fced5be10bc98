"""Shared fixtures: one tiny locally built model per test session (no downloads)."""
from __future__ import annotations

import os
import tempfile

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# datasets caches JSON/parquet loads under HF_HOME: keep that inside a temp dir too
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="agentrl-test-datasets-"))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def sokoban_env():
    from agentrl_sokoban import SokobanConfig

    return SokobanConfig(width=5, height=5, num_boxes=1, max_solution_length=6, instructions=False)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, sokoban_env) -> str:
    """An untrained ~0.2M-parameter Qwen2 whose tokenizer knows Sokoban's text."""
    from agentrl.model_builder import build_local_model

    path = tmp_path_factory.mktemp("models") / "tiny"
    build_local_model(path, env_configs=[sokoban_env], n_tasks=50, hidden_size=64, num_layers=2,
                      num_heads=2, intermediate_size=128, max_position_embeddings=1024)
    return str(path)


@pytest.fixture(scope="session")
def sft_model(tmp_path_factory, tiny_model, sokoban_env) -> str:
    """`tiny_model` after a short SFT on solver demonstrations: it plays valid moves and
    sometimes solves, so its rollouts have reward variance (what RL tests need)."""
    from agentrl.rollout import RolloutConfig
    from agentrl.sft import SFTConfig, train_sft

    path = tmp_path_factory.mktemp("models") / "sft"
    train_sft(tiny_model, sokoban_env, RolloutConfig(max_turns=20, max_new_tokens=4, history=0),
              SFTConfig(tasks=200, steps=120, batch_size=32, lr=3e-3, warmup_steps=10), path)
    return str(path)
