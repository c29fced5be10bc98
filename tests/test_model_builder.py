"""Tests for agentrl.model_builder and the `agentrl build-model` CLI (CPU, no downloads)."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch

import agentrl.env
from agentrl.cli import main
from agentrl.env import Env, EnvConfig, Step, Task
from agentrl.model_builder import (
    IM_END,
    IM_START,
    PAD_TOKEN,
    UNK_TOKEN,
    build_local_model,
    build_model,
    build_tokenizer,
    count_parameters,
    environment_corpus,
)

GRID = "#####\n#@$.#\n#####"
TEXTS = [
    GRID,
    "######\n# .  #\n# $@ #\n######",
    "Valid moves: up down left right",
    "Invalid action. Answer with one of: up, down, left, right.",
    "You pushed the box onto the target! Reward: 1.0",
    "up",
    "down",
    "left",
    "right",
] * 3


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(TEXTS, vocab_size=512)


@pytest.fixture(scope="module")
def model(tokenizer):
    return build_model(tokenizer, seed=0)


# ------------------------------------------------------------------ tokenizer


@pytest.mark.parametrize(
    "text",
    [*TEXTS[:5], "Mixed CASE,  double  spaces\n\n\ttab; {x}=42?", "café ✓ 🙂", "  leading and trailing  "],
)
def test_round_trip_is_exact(tokenizer, text):
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text


def test_each_grid_character_is_one_token(tokenizer):
    for grid in (GRID, TEXTS[1], "#  $\n 12 ..\n"):
        ids = tokenizer.encode(grid, add_special_tokens=False)
        assert [tokenizer.decode([i]) for i in ids] == list(grid)


def test_words_are_merged_and_nothing_is_unknown(tokenizer):
    for word in ("up", "down", "left", "right", "system", "user", "assistant"):
        assert tokenizer.tokenize(word) == [word]
    unk_id = tokenizer.convert_tokens_to_ids(UNK_TOKEN)
    for text in TEXTS + ["system\nuser\nassistant\n"]:
        assert unk_id not in tokenizer.encode(text, add_special_tokens=False)


def test_special_tokens(tokenizer):
    assert tokenizer.convert_ids_to_tokens([0, 1, 2, 3]) == [PAD_TOKEN, IM_START, IM_END, UNK_TOKEN]
    assert tokenizer.eos_token == IM_END and tokenizer.pad_token == PAD_TOKEN
    assert tokenizer.bos_token is None
    assert tokenizer.model_max_length == 2048
    # No BOS/EOS is added implicitly.
    assert tokenizer.encode("up") == tokenizer.encode("up", add_special_tokens=False)


def test_chat_template(tokenizer):
    messages = [{"role": "system", "content": "#@$."}, {"role": "user", "content": "#\n#"}]
    expected = "<|im_start|>system\n#@$.<|im_end|>\n<|im_start|>user\n#\n#<|im_end|>\n<|im_start|>assistant\n"
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == expected
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=False)
    assert isinstance(ids, list) and tokenizer.decode(ids) == expected
    # im_start system \n # @ $ . im_end \n  (9) + im_start user \n # \n # im_end \n  (8)
    # + im_start assistant \n  (3)
    assert len(ids) == 9 + 8 + 3
    assert ids[0] == tokenizer.convert_tokens_to_ids(IM_START)
    assert ids.count(tokenizer.eos_token_id) == 2
    # transformers 5 returns a BatchEncoding by default when tokenizing.
    enc = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    assert enc["input_ids"] == ids
    no_prompt = tokenizer.apply_chat_template(messages, tokenize=False)
    assert no_prompt == expected.removesuffix("<|im_start|>assistant\n")


# ---------------------------------------------------------------------- model


def test_model_is_small_untied_and_sized_to_vocab(tokenizer, model):
    assert count_parameters(model) < 5_000_000
    assert model.config.tie_word_embeddings is False
    emb, head = model.get_input_embeddings().weight, model.lm_head.weight
    assert emb is not head and emb.data_ptr() != head.data_ptr()
    assert model.config.vocab_size == len(tokenizer) == emb.shape[0] == head.shape[0]
    assert model.config.eos_token_id == tokenizer.eos_token_id
    assert model.config.pad_token_id == tokenizer.pad_token_id
    assert next(model.parameters()).dtype == torch.float32


def test_model_init_is_deterministic(tokenizer, model):
    same = build_model(tokenizer, seed=0)
    other = build_model(tokenizer, seed=1)
    assert torch.equal(same.lm_head.weight, model.lm_head.weight)
    assert not torch.equal(other.lm_head.weight, model.lm_head.weight)


def test_llama_arch(tokenizer):
    llama = build_model(tokenizer, arch="llama", hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2)
    assert llama.config.model_type == "llama" and llama.config.num_key_value_heads == 2
    assert llama.lm_head.weight.data_ptr() != llama.get_input_embeddings().weight.data_ptr()
    with pytest.raises(ValueError):
        build_model(tokenizer, arch="gpt9")


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_saved_checkpoint_reloads_identically(tmp_path, tokenizer, model, arch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = build_local_model(tmp_path / "m", extra_texts=TEXTS, arch=arch, seed=0)
    info = json.loads((out / "agentrl_model.json").read_text())
    assert info["arch"] == arch and info["num_parameters"] < 5_000_000 and info["envs"] == []
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["eos_token_id"] == tokenizer.eos_token_id and gen["pad_token_id"] == tokenizer.pad_token_id

    loaded_tok = AutoTokenizer.from_pretrained(out)
    loaded = AutoModelForCausalLM.from_pretrained(out)
    assert not loaded.config.tie_word_embeddings
    # AutoTokenizer rebuilds a qwen2 tokenizer as Qwen2Tokenizer: it must still agree with ours.
    probe = TEXTS[:5] + ["Mixed CASE,  spaces\n\ttab café 🙂"]
    for text in probe:
        ids = loaded_tok.encode(text, add_special_tokens=False)
        assert ids == tokenizer.encode(text, add_special_tokens=False)
        assert loaded_tok.decode(ids) == text
    messages = [{"role": "user", "content": GRID}]
    assert loaded_tok.apply_chat_template(
        messages, add_generation_prompt=True, return_dict=False
    ) == tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=False)

    reference = model if arch == "qwen2" else build_model(tokenizer, arch="llama", seed=0)
    input_ids = torch.tensor([tokenizer.encode(GRID + "\nup")])
    with torch.no_grad():
        expected = reference(input_ids).logits
        got = loaded(input_ids).logits
    assert torch.equal(expected, got)


# ----------------------------------------------------------- env corpus + CLI


class CorridorEnv(Env):
    system_prompt = "Walk right to the goal. Answer left or right."

    def reset(self, task: Task) -> str:
        self.pos, self.goal = 1, task.data["goal"]
        return self._render()

    def _render(self) -> str:
        cells = ["@" if i == self.pos else ("." if i == self.goal else " ") for i in range(1, self.goal + 1)]
        return "#" + "".join(cells) + "#"

    def step(self, action: str) -> Step:
        if action not in ("left", "right"):
            return Step("Invalid action: expected left or right.", info={"invalid_action": True})
        self.pos = max(1, self.pos + (1 if action == "right" else -1))
        done = self.pos == self.goal
        return Step(self._render(), reward=float(done), done=done, info={"success": done})


@dataclass
class CorridorConfig(EnvConfig):
    length: int = 4

    def make(self) -> Env:
        return CorridorEnv()

    def tasks(self, split: str, n: int, seed: int) -> list[Task]:
        return [Task(f"{split}-{seed}-{i}", {"goal": 2 + (seed + i) % self.length}) for i in range(n)]

    def expert_actions(self, task: Task) -> list[str]:
        return ["right"] * (task.data["goal"] - 1)


def test_environment_corpus():
    texts = environment_corpus(CorridorConfig(), n_tasks=3, seed=0)
    assert texts[0] == CorridorEnv.system_prompt
    assert "Invalid action: expected left or right." in texts
    assert "right" in texts and "#@.#" in texts and "# @.#" in texts


def test_cli_build_model(tmp_path, monkeypatch, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setattr(agentrl.env, "environment_registry", lambda: {"corridor": CorridorConfig})
    extra = tmp_path / "extra.txt"
    extra.write_text("\n".join(TEXTS))
    out = tmp_path / "cli-model"
    argv = ["build-model", "--out", str(out), "--env", "corridor", "--extra-text-file", str(extra),
            "--n-tasks", "5", "--vocab-size", "300", "--hidden-size", "64", "--layers", "2",
            "--heads", "2", "--intermediate-size", "128", "--arch", "llama", "--seed", "3"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    info = json.loads((out / "agentrl_model.json").read_text())
    assert str(out) in printed and f"{info['num_parameters']:,}" in printed
    assert info["arch"] == "llama" and info["num_layers"] == 2 and info["seed"] == 3
    assert info["envs"][0]["class"].endswith("CorridorConfig")
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.tokenize("right") == ["right"] and len(tok) <= 300
    assert AutoModelForCausalLM.from_pretrained(out).config.hidden_size == 64


def test_cli_unknown_env(tmp_path, monkeypatch):
    monkeypatch.setattr(agentrl.env, "environment_registry", lambda: {})
    with pytest.raises(ValueError, match="unknown environment"):
        main(["build-model", "--out", str(tmp_path / "x"), "--env", "nope"])


def test_cli_help_is_light(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0 and "build-model" in capsys.readouterr().out


def test_cli_import_does_not_load_torch():
    import subprocess
    import sys

    code = "import sys, agentrl.cli; print('torch' in sys.modules, 'transformers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]
