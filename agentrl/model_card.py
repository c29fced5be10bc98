"""The model card `agentrl publish` writes for a run.

Metadata the Hub reads (huggingface_hub's ModelCardData): base model (when it is a Hub id),
library, tags, and the final evaluation as `model-index` (EvalResult per metric). The body is
generated from the run alone: the method and its hyperparameters (config.yaml), the
environments, every evaluation stage (results.json or metrics.jsonl), the training curves
(progress.png) and how to reproduce it. config.yaml does not name its classes, so the
environment and algorithm are recognised by their fields (`identify_env`, `identify_algorithm`).
"""
from __future__ import annotations

import dataclasses
import json
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from huggingface_hub import ModelCard

    from agentrl.publish import RunDir

FINAL_STAGE = "after RL"
STAGE_ORDER = {"untrained": 0, "before RL": 0.5}  # table columns: earlier stages first, this model last
METRIC_NAMES = {"success_rate": "success rate", "mean_reward": "mean episode reward", "mean_steps": "mean steps",
                "invalid_action_rate": "invalid action rate", "failed": "failed episodes",
                "loop_rate": "loop rate", "sim_accuracy": "simulation accuracy"}


@dataclasses.dataclass
class EnvSpec:
    label: str  # for people: "sokoban", "sokoban_short (sokoban) + alfworld (alfworld)"
    names: list[str]  # registered environment names used
    single: str | None = None  # the registered name, for a one-environment run
    families: dict[str, str | None] | None = None  # multi-task: family -> registered name (None: unknown)


def is_hub_id(model: str) -> bool:
    return not Path(model).exists() and re.fullmatch(r"[\w.-]+/[\w.-]+", model) is not None


def _init_fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.init}


def identify_env(saved: dict[str, Any]) -> EnvSpec:
    """Which registered environment(s) a saved `env:` section belongs to, by its field names."""
    from agentrl.env import environment_registry
    from agentrl.multitask import MultiTaskConfig

    registry = environment_registry()

    def match(fields: Any) -> str | None:
        keys = set(fields) if isinstance(fields, dict) else set()
        return next((name for name, cls in sorted(registry.items()) if _init_fields(cls) == keys), None)

    if set(saved) == _init_fields(MultiTaskConfig) and isinstance(saved.get("families"), dict):
        families = {str(f): match(fields) for f, fields in saved["families"].items()}
        label = " + ".join(f"{f} ({n or 'unknown env'})" for f, n in families.items())
        return EnvSpec(label, sorted({n for n in families.values() if n}), families=families)
    name = match(saved)
    return EnvSpec(name or "unknown environment", [name] if name else [], single=name)


def identify_algorithm(saved: dict[str, Any]) -> str | None:
    """The registered algorithm whose settings a saved `algorithm:` section has: same fields, then
    the most defaults shared (the advantage estimator and ratio clip decide LOOP vs GRPO vs RLOO)."""
    from agentrl.algorithms import ALGORITHMS
    from agentrl.config import config_to_dict

    best, best_score = None, None
    for name, cls in ALGORITHMS.items():
        default = config_to_dict(cls())
        if set(default) != set(saved):
            continue
        score = (sum(default[k] == saved[k] for k in ("advantage", "ratio_clip")),
                 sum(default[k] == saved[k] for k in default))
        if best_score is None or score > best_score:
            best, best_score = name, score
    return best


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v)) or "[]"
    return repr(v) if isinstance(v, str) and (not v or v != v.strip()) else str(v)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows])


def _metric(key: str, value: float) -> str:
    return f"{value:.1%}" if key.endswith("rate") else f"{value:.3f}"


def hyperparameters(config: dict[str, Any]) -> dict[str, Any]:
    """The settings that define the training: loop sizes, the algorithm, the learner, rollouts."""
    top = {k: config[k] for k in ("seed", "iterations", "tasks_per_iteration", "rollouts_per_task", "task_pool",
                                  "async_rollouts") if k in config}
    learner = dict(config.get("learner", {}))
    if not learner.get("lora", {}).get("enabled", False):
        learner["lora"] = {"enabled": False}
    if not learner.get("experts", {}).get("enabled", False):
        learner["experts"] = {"enabled": False}
    return {**top, **_flat({"algorithm": config.get("algorithm", {}), "learner": learner,
                            "rollout": config.get("rollout", {})})}


def final_stage(results: dict[str, dict[str, float]]) -> str | None:
    """The stage whose numbers describe the published model: after RL, else the last one recorded."""
    if results.get(FINAL_STAGE):
        return FINAL_STAGE
    return next(reversed([s for s, m in results.items() if m]), None)


def eval_results(run: RunDir, env: EnvSpec) -> list:
    from huggingface_hub import EvalResult

    stage = final_stage(run.results)
    if stage is None:
        return []
    ev = run.config.get("eval", {})
    dataset = f"{env.label}: {ev.get('tasks')} seeded {ev.get('split')} tasks (seed {ev.get('seed')})"
    return [EvalResult(task_type="reinforcement-learning", task_name="multi-turn agent",
                       dataset_type=f"agentrl/{'+'.join(env.names) or 'env'}", dataset_name=dataset,
                       dataset_split=str(ev.get("split")), metric_type=key, metric_name=METRIC_NAMES.get(key, key),
                       metric_value=value)
            for key, value in run.results[stage].items()]


def reproduce_code(env: EnvSpec, algorithm: str | None) -> str | None:
    """Python that rebuilds the run's TrainConfig from the uploaded config and trains it."""
    if env.single:
        env_line = f"env = env_config_class({env.single!r})()"
        imports = []
    elif env.families and all(env.families.values()):
        inner = ", ".join(f"{f!r}: env_config_class({n!r})()" for f, n in env.families.items())
        env_line = f"env = MultiTaskConfig(families={{{inner}}})"
        imports = ["from agentrl.multitask import MultiTaskConfig"]
    else:
        return None
    algorithm_arg = f", algorithm=make_algorithm({algorithm!r})" if algorithm else ""
    return "\n".join([
        "from agentrl.algorithms import make_algorithm",
        "from agentrl.config import load_config",
        "from agentrl.env import env_config_class",
        *imports,
        "from agentrl.trainer import TrainConfig, Trainer",
        "",
        env_line,
        f'cfg = load_config(TrainConfig(env=env{algorithm_arg}), "training_config.yaml")',
        'cfg.output_dir = "runs/reproduced"  # a new directory: leave the original run as it is',
        "Trainer(cfg).fit()",
    ])


def _flag(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, (list, dict)):
        return shlex.quote(json.dumps(value))  # JSON is YAML: the config parser reads it back
    return shlex.quote(str(value))


def eval_command(run: RunDir, env: EnvSpec, model: str) -> str | None:
    """`agentrl eval` with the run's evaluation settings and every env/rollout field it changed."""
    if not env.single:
        return None
    from agentrl.config import config_to_dict
    from agentrl.env import env_config_class
    from agentrl.rollout import RolloutConfig

    flags = [f"--eval.{k} {_flag(v)}" for k, v in run.config.get("eval", {}).items() if k != "every"]
    for section, default in (("rollout", config_to_dict(RolloutConfig())),
                             ("env", config_to_dict(env_config_class(env.single)()))):
        flags += [f"--{section}.{k} {_flag(v)}" for k, v in run.config.get(section, {}).items() if default.get(k) != v]
    return " \\\n    ".join([f"agentrl eval --model {model} --env {env.single}"] + flags)


def build_card(run: RunDir, repo_id: str, *, full_weights: bool, reproduce: str | None = None) -> ModelCard:
    from huggingface_hub import ModelCard, ModelCardData

    from agentrl.publish import CONFIG_FILE, PLOT_FILE

    env = identify_env(run.config.get("env", {}))
    algorithm = identify_algorithm(run.config.get("algorithm", {}))
    method = algorithm.upper() if algorithm else "policy-gradient RL"
    base = str(run.config["model"])
    adapter = not full_weights
    name = repo_id.split("/")[-1]
    data = ModelCardData(
        model_name=name, base_model=base if is_hub_id(base) else None,
        library_name="peft" if adapter else "transformers", pipeline_tag="text-generation",
        tags=["agentrl", "reinforcement-learning", *([algorithm] if algorithm else []), *env.names,
              *(["lora"] if run.kind != "full" else [])],
        eval_results=eval_results(run, env) or None,
    )
    what = {("lora", True): "the full weights (LoRA merged in)", ("lora", False): "the LoRA adapter (peft)",
            ("full", True): "the full weights (full fine-tuning)",
            ("experts", True): "the base weights with one LoRA adapter per task family under adapters/<family>/",
            ("experts", False): "one LoRA adapter per task family under adapters/<family>/ (peft)"}[(run.kind, full_weights)]
    base_note = "" if is_hub_id(base) else " (a local checkpoint, not on the Hub: e.g. a recipe's SFT stage)"
    parts = [f"# {name}", "",
             f"An LLM agent trained with agentrl by **{method}** on **{env.label}**. "
             f"This repo holds {what}, the tokenizer, and the run's training config (`{CONFIG_FILE}`).", "",
             "## Model", "", f"- Base model (RL started from): `{base}`{base_note}", f"- Uploaded: {what}", ""]
    if full_weights and run.kind != "experts":
        parts += ["```python", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                  f'model = AutoModelForCausalLM.from_pretrained("{repo_id}")',
                  f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")', "```", ""]
    elif run.kind == "lora":
        parts += ["```python", "from peft import AutoPeftModelForCausalLM", "",
                  f'model = AutoPeftModelForCausalLM.from_pretrained("{repo_id}")  # loads the base model it names',
                  "```", ""]
    else:
        parts += ["Each family's requests are served by its own adapter: `agentrl eval` on a download of this "
                  "repo (with the base weights) serves them all.", ""]
    parts += ["## Training", "", f"Method: **{method}** (`{CONFIG_FILE}` holds the whole config).", "",
              _table(["hyperparameter", "value"], [[k, _value(v)] for k, v in hyperparameters(run.config).items()]),
              "", "## Environment", "", f"**{env.label}**, with these settings:", "",
              _table(["field", "value"], [[k, _value(v)] for k, v in _flat(run.config.get("env", {})).items()]), ""]
    ev = run.config.get("eval", {})
    parts += ["## Evaluation", ""]
    if run.results:
        greedy = "greedy" if not ev.get("temperature") else f"temperature {ev.get('temperature')}"
        parts += [f"{ev.get('tasks')} seeded held-out `{ev.get('split')}` tasks (seed {ev.get('seed')}), {greedy}. "
                  "The last column is this model; its numbers are also in the card's `model-index`.", ""]
        stages = sorted((s for s, m in run.results.items() if m), key=lambda s: (s == final_stage(run.results),
                                                                                  STAGE_ORDER.get(s, 1)))
        metrics = list(dict.fromkeys(k for s in stages for k in run.results[s]))
        parts += [_table(["metric", *stages], [[METRIC_NAMES.get(k, k), *[
            _metric(k, run.results[s][k]) if k in run.results[s] else "-" for s in stages]] for k in metrics]), ""]
    else:
        parts += ["No evaluation was recorded for this run.", ""]
    if run.plot is not None:
        parts += ["## Training curves", "", f"![training curves]({PLOT_FILE})", ""]
    parts += ["## Reproduce", ""]
    if reproduce:
        parts += ["The command that trained it:", "", "```bash", reproduce, "```", ""]
    code = reproduce_code(env, algorithm)
    if code:
        parts += [f"The run's config, rebuilt from `{CONFIG_FILE}` and trained again (single process; "
                  f"`model` is `{base}` as in the run):", "", "```python", code, "```", ""]
    model_ref = repo_id if full_weights and run.kind != "experts" else (
        f"\"$(python -c 'from huggingface_hub import snapshot_download; print(snapshot_download(\"{repo_id}\"))')\"")
    command = eval_command(run, env, model_ref)
    if command:
        parts += ["The evaluation:", "", "```bash", command, "```", ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(parts))
