"""Build small local models (tokenizer + tiny Qwen2/Llama) from environment text.

No weights can be downloaded here, so the framework trains a BPE tokenizer on the
text its environments produce and pairs it with a randomly initialised tiny
causal LM. The result is an ordinary HF checkpoint directory (`save_pretrained`)
that vLLM, peft and DeepSpeed load like any hub model.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # heavy imports stay lazy so `agentrl --help` is fast
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

    from agentrl.env import EnvConfig

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
UNK_TOKEN = "<unk>"
SPECIAL_TOKENS = [PAD_TOKEN, IM_START, IM_END, UNK_TOKEN]
CHAT_ROLES = ("system", "user", "assistant")
INVALID_ACTION = "xyzzy"

# Qwen-style ChatML, without Qwen's default system prompt (our envs bring their own).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Runs of ASCII letters form words; every other character is its own pre-token,
# so grid cells, digits, spaces and newlines are never merged with neighbours.
PRETOKENIZE_PATTERN = r"[A-Za-z]+|[^A-Za-z]"


def _chat_scaffold_texts() -> list[str]:
    """Text the chat template itself emits, so role headers are learnt as whole tokens."""
    return [f"{role}\n" for role in CHAT_ROLES] * 8


def build_tokenizer(
    texts: Iterable[str], vocab_size: int = 512, model_max_length: int = 2048
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on `texts`, wrapped as a HF fast tokenizer with ChatML.

    Why byte-level: `AutoTokenizer` (and so vLLM) rebuilds any `qwen2` checkpoint's
    tokenizer as `Qwen2Tokenizer` -- NFC, Qwen's split regex, ByteLevel, no unk --
    keeping only our vocab and merges. Our merges only ever join ASCII letters (or
    the bytes of one character), which Qwen's regex never separates, so both
    pipelines give identical ids; the full 256-byte alphabet means no text is lost.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [*texts, *_chat_scaffold_texts()]
    tok.train_from_iterator(corpus, trainer=trainer, length=len(corpus))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token=IM_END,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        extra_special_tokens=[IM_START],
        chat_template=CHAT_TEMPLATE,
        model_max_length=model_max_length,
        # The default cleanup would eat spaces before punctuation and break round trips.
        clean_up_tokenization_spaces=False,
    )


def build_model(
    tokenizer: PreTrainedTokenizerFast,
    *,
    arch: str = "qwen2",
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    num_kv_heads: int | None = None,
    intermediate_size: int = 384,
    max_position_embeddings: int = 2048,
    seed: int = 0,
) -> PreTrainedModel:
    """A randomly initialised tiny causal LM sized to `tokenizer`'s vocabulary."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    classes = {"qwen2": (Qwen2Config, Qwen2ForCausalLM), "llama": (LlamaConfig, LlamaForCausalLM)}
    if arch not in classes:
        raise ValueError(f"unknown arch {arch!r} (choose from {', '.join(classes)})")
    config_cls, model_cls = classes[arch]
    pad_id = tokenizer.convert_tokens_to_ids(PAD_TOKEN)
    config = config_cls(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads or num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        # Untied: vLLM on CPU keeps a stale lm_head after weight reloads when tied.
        tie_word_embeddings=False,
        bos_token_id=pad_id,  # as in Qwen: no BOS is prepended, <|endoftext|> doubles as bos
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=pad_id,
    )
    # Fork the RNG so the init is a function of `seed` alone and callers' RNG state is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
    model = model.to(torch.float32)
    model.config.dtype = torch.float32
    model.eval()
    return model


def count_parameters(model: PreTrainedModel) -> int:
    """Distinct parameters (a tied tensor would be counted once)."""
    return sum(p.numel() for p in model.parameters())


def environment_corpus(env_config: EnvConfig, n_tasks: int = 200, seed: int = 0) -> list[str]:
    """Texts an environment emits: system prompt, observations, expert actions, invalid-action
    reply, and the env's `extra_texts()` (replies expert play never triggers)."""
    texts: list[str] = []
    env = env_config.make()
    prompts: list[str] = []
    try:
        for task in env_config.tasks("train", n_tasks, seed):
            texts.append(env.reset(task))
            # Checked after reset: an env may set its system prompt per task.
            if env.system_prompt and env.system_prompt not in prompts:
                prompts.append(env.system_prompt)
            # A deliberately bad action, on its own episode, captures the env's error message.
            try:
                texts.append(env.step(INVALID_ACTION).observation)
            except Exception:  # an env may raise instead; the corpus just lacks that text
                pass
            actions = env_config.expert_actions(task)
            if not actions:
                continue
            texts.append(env.reset(task))
            for action in actions:
                texts.append(action)
                step = env.step(action)
                texts.append(step.observation)
                if step.done:
                    break
    finally:
        env.close()
    return [t for t in prompts + texts + list(env_config.extra_texts()) if t]


def build_local_model(
    out_dir: str | Path,
    env_configs: Sequence[EnvConfig] | None = None,
    extra_texts: Iterable[str] = (),
    vocab_size: int = 512,
    *,
    n_tasks: int = 200,
    seed: int = 0,
    **model_kwargs: Any,
) -> Path:
    """Build tokenizer + model from environment text and save both as one HF checkpoint dir."""
    from transformers import GenerationConfig

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    corpus: list[str] = []
    envs: list[dict[str, str]] = []
    for cfg in env_configs or ():
        corpus.extend(environment_corpus(cfg, n_tasks=n_tasks, seed=seed))
        envs.append({"class": f"{type(cfg).__module__}.{type(cfg).__qualname__}", "config": repr(cfg)})
    corpus.extend(extra_texts)

    max_pos = model_kwargs.get("max_position_embeddings", 2048)
    tokenizer = build_tokenizer(corpus, vocab_size=vocab_size, model_max_length=max_pos)
    model = build_model(tokenizer, seed=seed, **model_kwargs)
    eos_id = tokenizer.convert_tokens_to_ids(IM_END)
    pad_id = tokenizer.convert_tokens_to_ids(PAD_TOKEN)
    model.generation_config = GenerationConfig(
        bos_token_id=model.config.bos_token_id, eos_token_id=eos_id, pad_token_id=pad_id
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)

    n_params = count_parameters(model)
    cfg = model.config
    info = {
        "builder": "agentrl.model_builder.build_local_model",
        "arch": cfg.model_type,
        "vocab_size": len(tokenizer),
        "requested_vocab_size": vocab_size,
        "hidden_size": cfg.hidden_size,
        "num_layers": cfg.num_hidden_layers,
        "num_heads": cfg.num_attention_heads,
        "num_kv_heads": cfg.num_key_value_heads,
        "intermediate_size": cfg.intermediate_size,
        "max_position_embeddings": cfg.max_position_embeddings,
        "num_parameters": n_params,
        "seed": seed,
        "envs": envs,
        "n_tasks_per_env": n_tasks if envs else 0,
        "corpus_texts": len(corpus),
        "corpus_chars": sum(len(t) for t in corpus),
    }
    (out / "agentrl_model.json").write_text(json.dumps(info, indent=2) + "\n")
    return out
