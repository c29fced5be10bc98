"""`agentrl publish`: a run directory's model, tokenizer and model card to a Hugging Face Hub repo.

A run directory is a Trainer's `output_dir` (config.yaml, metrics.jsonl, progress.png,
checkpoints/, final/) or a recipe's (that under rl/, plus results.json). Its final/ model is one
of what `Learner.save_pretrained` writes:

    lora     final/adapter/ (a peft adapter), with the merged weights in final/ unless saved unmerged
             (a bare adapter in final/ itself also counts)
    full     final/config.json + weights (full fine-tuning)
    experts  the base weights in final/ plus adapters/<family>/ (LoRA experts, engines/base.py)

By default the adapter(s) are uploaded, `--merge` uploads full weights. Everything is staged into
one folder first (`--dry-run DIR` stops there), then pushed with huggingface_hub's own
`create_repo` + `upload_folder`, to any endpoint (`--endpoint`, else HF_ENDPOINT).
"""
from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "chat_template.jinja", "chat_template.json", "tokenizer.model", "vocab.json", "merges.txt",
                   "vocab.txt")
WEIGHT_PATTERNS = ("config.json", "generation_config.json", "*.safetensors", "model.safetensors.index.json",
                   "pytorch_model*.bin", "pytorch_model.bin.index.json")
ADAPTER_PATTERNS = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
CONFIG_FILE = "training_config.yaml"  # the run's config.yaml, as uploaded
PLOT_FILE = "progress.png"


class PublishError(Exception):
    """Publishing cannot go on; the message says why. `bad_input`: the user's arguments are at fault."""

    def __init__(self, message: str, bad_input: bool = False) -> None:
        super().__init__(message)
        self.bad_input = bad_input


@dataclass
class RunDir:
    """What `find_run` learned about a run directory."""

    root: Path
    train_dir: Path  # holds config.yaml and final/
    config: dict[str, Any]  # the TrainConfig, as saved
    final: Path
    kind: str  # "lora" | "full" | "experts"
    adapters: dict[str, Path]  # route or "" -> its peft adapter dir
    merged: bool  # final/ itself holds full weights
    results: dict[str, dict[str, float]]  # stage ("before RL", "after RL", ...) -> eval metrics
    plot: Path | None


@dataclass
class PublishResult:
    kind: str
    final: Path
    files: list[str]  # paths in the repo, sorted
    url: str | None = None
    dry_run: Path | None = None
    warnings: list[str] = field(default_factory=list)


def _weights(directory: Path) -> list[Path]:
    found = {p for pattern in WEIGHT_PATTERNS for p in directory.glob(pattern) if p.is_file()}
    return sorted(found)


def _has_weights(directory: Path) -> bool:
    return (directory / "config.json").is_file() and any(p.name != "config.json" and p.name != "generation_config.json"
                                                         for p in _weights(directory))


def find_run(path: str | Path) -> RunDir:
    """The run under `path`, or a PublishError naming what is missing."""
    import yaml

    from agentrl.engines.base import routed_adapter_dirs

    root = Path(path)
    if not root.is_dir():
        raise PublishError(f"RUN_DIR: {root} is not a directory", bad_input=True)
    train_dir = next((d for d in (root, root / "rl") if (d / "config.yaml").is_file()), None)
    if train_dir is None:
        raise PublishError(
            f"{root} is not an agentrl run directory: no config.yaml in it or in rl/ (expected a Trainer's "
            "output_dir, with config.yaml, metrics.jsonl and final/, or a recipe's, with rl/ and results.json)",
            bad_input=True)
    config = yaml.safe_load((train_dir / "config.yaml").read_text())
    if not isinstance(config, dict) or not {"model", "env", "algorithm"} <= set(config):
        raise PublishError(f"{train_dir / 'config.yaml'} is not a training config (no model/env/algorithm)",
                           bad_input=True)
    final = train_dir / "final"
    if not final.is_dir():
        raise PublishError(f"{train_dir} has no final/ model: the run has not finished (the Trainer writes final/ "
                           "when training ends)", bad_input=True)
    experts = routed_adapter_dirs(final)
    if experts:
        kind, adapters = "experts", experts
    elif (final / "adapter" / "adapter_config.json").is_file():
        kind, adapters = "lora", {"": final / "adapter"}
    elif (final / "adapter_config.json").is_file():
        kind, adapters = "lora", {"": final}
    elif _has_weights(final):
        kind, adapters = "full", {}
    else:
        raise PublishError(f"{final} holds no model: expected config.json with weights, a peft adapter "
                           "(adapter/ or adapter_config.json) or adapters/<family>/", bad_input=True)
    plot = next((p for p in (train_dir / PLOT_FILE, root / PLOT_FILE) if p.is_file()), None)
    return RunDir(root, train_dir, config, final, kind, adapters, _has_weights(final), _results(root, train_dir), plot)


def _results(root: Path, train_dir: Path) -> dict[str, dict[str, float]]:
    """A recipe's results.json (stage -> metrics), else the first and last evaluation in metrics.jsonl."""
    # a recipe writes results.json beside rl/, and RUN_DIR may be given as either
    beside = [train_dir.parent / "results.json"] if train_dir.name == "rl" else []
    for path in [root / "results.json", train_dir / "results.json", *beside]:
        if path.is_file():
            data = json.loads(path.read_text())
            return {stage: {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
                    for stage, metrics in data.items() if isinstance(metrics, dict) and metrics}
    rows = []
    if (train_dir / "metrics.jsonl").is_file():
        rows = [json.loads(line) for line in (train_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    evals = [{k.removeprefix("eval/"): float(v) for k, v in r.items() if k.startswith("eval/")} | {"_it": r["iteration"]}
             for r in rows if any(k.startswith("eval/") for k in r)]
    results = {}
    if evals and evals[0]["_it"] == 0:
        results["before RL"] = evals[0]
    if evals and evals[-1]["_it"] > 0:
        results["after RL"] = evals[-1]
    return {stage: {k: v for k, v in m.items() if k != "_it"} for stage, m in results.items()}


def _copy(src: Path, out: Path, name: str, files: list[str]) -> None:
    (out / name).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, out / name)
    files.append(name)


def _merge_adapter(adapter: Path, out: Path) -> None:
    """Full weights from a peft adapter and the base model its adapter_config.json names."""
    from peft import AutoPeftModelForCausalLM

    base = json.loads((adapter / "adapter_config.json").read_text()).get("base_model_name_or_path")
    try:
        model = AutoPeftModelForCausalLM.from_pretrained(str(adapter))
    except (OSError, ValueError) as exc:
        raise PublishError(f"--merge: cannot load the adapter's base model {base!r} to merge into ({exc})") from None
    model.merge_and_unload().save_pretrained(str(out))


def stage(run: RunDir, repo_id: str, out: Path, *, merge: bool = False,
          reproduce: str | None = None) -> tuple[list[str], list[str]]:
    """Write everything the repo gets into `out`; returns (repo paths, warnings)."""
    from agentrl.model_card import build_card

    files: list[str] = []
    warnings: list[str] = []
    full_weights = merge or run.kind == "full"
    if full_weights:
        if run.merged:
            for path in _weights(run.final):
                _copy(path, out, path.name, files)
        else:  # a LoRA run saved unmerged: merge here, as Learner.save_pretrained would have
            _merge_adapter(run.adapters[""], out)
            files += [p.name for p in _weights(out)]
    if run.kind == "experts" or (run.kind == "lora" and not merge):
        for route, directory in run.adapters.items():
            prefix = "" if run.kind == "lora" else f"adapters/{directory.name}/"
            for pattern in ADAPTER_PATTERNS:
                for path in directory.glob(pattern):
                    _copy(path, out, prefix + path.name, files)
        base = str(run.config["model"])
        if not full_weights and Path(base).exists():
            warnings.append(f"the adapter's base model {base} is a local checkpoint, not on the Hub: others need "
                            "it to use the adapter (--merge uploads full weights instead)")
    source = run.final if (run.final / "tokenizer_config.json").is_file() else next(iter(run.adapters.values()), run.final)
    tokenizer = [source / n for n in TOKENIZER_FILES if (source / n).is_file()]
    if not tokenizer:
        warnings.append(f"no tokenizer files in {source}: none uploaded")
    for path in tokenizer:
        _copy(path, out, path.name, files)
    _copy(run.train_dir / "config.yaml", out, CONFIG_FILE, files)
    if run.plot is not None:
        _copy(run.plot, out, PLOT_FILE, files)
    else:
        warnings.append(f"no {PLOT_FILE} in {run.train_dir}: the card has no training curves")
    card = build_card(run, repo_id, full_weights=full_weights, reproduce=reproduce)
    card.save(str(out / "README.md"))
    files.append("README.md")
    return sorted(files), warnings


def publish(run_dir: str | Path, repo_id: str, *, merge: bool = False, private: bool = False,
            dry_run: str | Path | None = None, token: str | None = None, endpoint: str | None = None,
            reproduce: str | None = None, commit_message: str | None = None) -> PublishResult:
    """Stage the run's upload (into `dry_run` if given, and stop) and push it to `repo_id`."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise PublishError(f"--repo-id: {exc}", bad_input=True) from None
    run = find_run(run_dir)
    if dry_run is not None:
        out = Path(dry_run)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise PublishError(f"--dry-run: {out} exists and is not an empty directory", bad_input=True)
        out.mkdir(parents=True, exist_ok=True)
        files, warnings = stage(run, repo_id, out, merge=merge, reproduce=reproduce)
        return PublishResult(run.kind, run.final, files, dry_run=out, warnings=warnings)

    import httpx2  # the HTTP client huggingface_hub 2.x sends with (connection errors come from it)
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if constants.is_offline_mode():  # every request would raise: say so before any work
        raise PublishError("HF_HUB_OFFLINE is set: pushing needs the Hub (unset it, or use --dry-run DIR)",
                           bad_input=True)
    with tempfile.TemporaryDirectory(prefix="agentrl-publish-") as tmp:
        files, warnings = stage(run, repo_id, Path(tmp), merge=merge, reproduce=reproduce)
        api = HfApi(endpoint=endpoint, token=token)
        try:
            repo = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            api.upload_folder(repo_id=repo_id, folder_path=tmp, repo_type="model",
                              commit_message=commit_message or f"agentrl publish {run.root.name}")
        except (HfHubHTTPError, OfflineModeIsEnabled, httpx2.HTTPError, OSError, ValueError) as exc:
            raise PublishError(f"pushing to {repo_id} at {api.endpoint} failed: {exc}") from None
    return PublishResult(run.kind, run.final, files, url=str(repo), warnings=warnings)
