"""The `agentrl` command line.

Each subcommand is a pair of small functions registered in `SUBCOMMANDS`:
`add_arguments(parser)` declares its options and `run(args) -> int` does the work.
Heavy libraries (torch, transformers) are imported inside `run` so that
`agentrl --help` stays fast. To add a subcommand, write the two functions and
add one entry to `SUBCOMMANDS`.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

AddArguments = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]


# ---------------------------------------------------------------- build-model


def _build_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="checkpoint directory to write")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME",
        help="installed environment whose text trains the tokenizer (repeatable)",
    )
    parser.add_argument(
        "--extra-text-file", action="append", default=[], type=Path, metavar="FILE",
        help="a UTF-8 text file added to the tokenizer corpus as one text (repeatable)",
    )
    parser.add_argument("--n-tasks", type=int, default=200, help="train tasks played per environment")
    parser.add_argument("--vocab-size", type=int, default=512)
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=None, help="default: same as --heads")
    parser.add_argument("--intermediate-size", type=int, default=384)
    parser.add_argument("--max-position-embeddings", type=int, default=2048)
    parser.add_argument("--arch", choices=["qwen2", "llama"], default="qwen2")
    parser.add_argument("--seed", type=int, default=0)


def _build_model_run(args: argparse.Namespace) -> int:
    import json

    from agentrl.env import env_config_class
    from agentrl.model_builder import build_local_model

    env_configs = [env_config_class(name)() for name in args.env]
    extra_texts = [path.read_text(encoding="utf-8") for path in args.extra_text_file]
    out = build_local_model(
        args.out,
        env_configs=env_configs,
        extra_texts=extra_texts,
        vocab_size=args.vocab_size,
        n_tasks=args.n_tasks,
        seed=args.seed,
        arch=args.arch,
        hidden_size=args.hidden_size,
        num_layers=args.layers,
        num_heads=args.heads,
        num_kv_heads=args.kv_heads,
        intermediate_size=args.intermediate_size,
        max_position_embeddings=args.max_position_embeddings,
    )
    info = json.loads((out / "agentrl_model.json").read_text())
    print(f"built {info['arch']} model at {out}")
    print(f"  parameters: {info['num_parameters']:,}")
    print(f"  vocab size: {info['vocab_size']} (requested {info['requested_vocab_size']})")
    print(
        f"  layers={info['num_layers']} hidden={info['hidden_size']} heads={info['num_heads']}"
        f" kv_heads={info['num_kv_heads']} intermediate={info['intermediate_size']}"
    )
    print(f"  envs: {', '.join(args.env) or 'none'}; corpus texts: {info['corpus_texts']}")
    return 0



# ----------------------------------------------------------------------- eval


_EVAL_EPILOG = (
    "Any other option is a config field: --eval.tasks 200, --eval.seed 7, --eval.temperature 0.1, "
    "--rollout.max_turns 20, --rollout.history 0, --env.<field> (the environment's own settings), "
    "--engine hf|vllm|vllm_server, --engine.urls URL,... Use --fields to list them."
)


def _eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="HF model id or checkpoint directory")
    parser.add_argument("--env", required=True, metavar="NAME", help="an installed environment (e.g. sokoban)")
    parser.add_argument("--out", type=Path, default=None, help="write the episodes here as JSONL")
    parser.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                        help="write histograms of episode reward and length here")
    parser.epilog = _EVAL_EPILOG


def _parse_command(args: argparse.Namespace, command: str, default):
    """`default` (a command's config dataclass) with the config-field overrides applied;
    `--fields` lists them."""
    from agentrl.config import parse_config

    overrides = ["--help" if a == "--fields" else a for a in args.config_overrides]
    return parse_config(default, overrides, prog=f"agentrl {command} --env {args.env}")


def _eval_command(args: argparse.Namespace, command: str):
    """The `EvalCommand` of `--model`/`--env` plus the overrides (eval, watch): one parse, so
    both commands take the same fields and build the same engine and env."""
    from agentrl.env import env_config_class
    from agentrl.evaluation import EvalCommand

    return _parse_command(args, command, EvalCommand(model=args.model, env=env_config_class(args.env)()))


def _eval_run(args: argparse.Namespace) -> int:
    from agentrl.config import ConfigError, format_config
    from agentrl.evaluation import run_eval_command

    try:
        cfg = _eval_command(args, "eval")
    except (ConfigError, ValueError) as exc:
        print(f"config error: {exc}")
        return 2
    print(format_config(cfg))
    return run_eval_command(cfg, args.out, args.plot)


# ---------------------------------------------------------------- watch, play


def _task_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", type=int, default=0, metavar="N",
                        help="which task: episode N of `agentrl eval` with the same --eval.seed/--eval.split")


def _watch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="HF model id or checkpoint directory")
    parser.add_argument("--env", required=True, metavar="NAME", help="an installed environment (e.g. sokoban)")
    _task_argument(parser)
    parser.add_argument("--no-pause", action="store_true", help="run the episode to the end without waiting")
    parser.add_argument("--delay", type=float, default=0.5, metavar="SECONDS",
                        help="pause between turns while continuing (time to press p)")
    parser.add_argument("--show-prompt", action="store_true",
                        help="also show each prompt exactly as the model gets it (decoded from its token ids)")
    parser.epilog = ("Keys: Enter/space/n next turn, c continue to the end, p pause (while continuing), "
                     "t take over (type the actions yourself; a line 'a' hands back to the agent), q quit. "
                     "Any other option is a config field, as for `agentrl eval`: --eval.seed and --eval.split (which "
                     "task), --eval.temperature, --rollout.history 0, --env.<field>, --engine hf|vllm|vllm_server, "
                     "--engine.urls URL,... Use --fields to list them.")


def _watch_run(args: argparse.Namespace) -> int:
    from agentrl.config import ConfigError
    from agentrl.watch import pick_task, watch

    try:
        cfg = _eval_command(args, "watch")
        if args.delay < 0:
            raise ValueError(f"--delay: expected seconds >= 0, got {args.delay}")
        pick_task(cfg.env, cfg.eval.split, cfg.eval.seed, args.task)  # a bad --task fails before the model loads
    except (ConfigError, ValueError) as exc:
        print(f"config error: {exc}")
        return 2
    try:
        watch(cfg, args.task, pausing=not args.no_pause, delay=args.delay, show_prompt=args.show_prompt)
    except KeyboardInterrupt:
        return 130
    return 0


def _play_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, metavar="NAME", help="an installed environment (e.g. sokoban)")
    _task_argument(parser)
    parser.epilog = ("Type an action per turn and press Enter; `quit` stops. Any other option is a config "
                     "field: --env.<field>, --eval.seed, --eval.split (which task), --rollout.max_turns. "
                     "Use --fields to list them.")


def _play_run(args: argparse.Namespace) -> int:
    from agentrl.config import ConfigError
    from agentrl.env import env_config_class
    from agentrl.watch import PlayCommand, pick_task, play

    try:
        cfg = _parse_command(args, "play", PlayCommand(env=env_config_class(args.env)()))
        pick_task(cfg.env, cfg.eval.split, cfg.eval.seed, args.task)
    except (ConfigError, ValueError) as exc:
        print(f"config error: {exc}")
        return 2
    try:
        play(cfg, args.task)
    except KeyboardInterrupt:
        return 130
    return 0


# -------------------------------------------------------------------- publish


def _publish_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                        help="a run directory: a recipe's output_dir (with rl/) or a Trainer's output_dir")
    parser.add_argument("--repo-id", required=True, metavar="ORG/NAME", help="the Hub model repo to push to")
    parser.add_argument("--merge", action="store_true",
                        help="push full weights (LoRA merged in) instead of the LoRA adapter; for an experts "
                             "checkpoint: the base weights with every family's adapter")
    parser.add_argument("--private", action="store_true", help="create the repo private (an existing repo keeps its visibility)")
    parser.add_argument("--dry-run", type=Path, default=None, metavar="DIR",
                        help="write exactly what would be uploaded into DIR (new or empty) and contact no server")
    parser.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the saved login)")
    parser.add_argument("--endpoint", default=None, metavar="URL", help="Hub endpoint (default: HF_ENDPOINT or huggingface.co)")
    parser.add_argument("--reproduce", default=None, metavar="COMMAND",
                        help="the command that trained the run, for the card (e.g. 'python recipes/loop_sokoban.py "
                             "--preset cpu'); the card always has the Python that rebuilds it from its config")
    parser.add_argument("--commit-message", default=None)


def _publish_run(args: argparse.Namespace) -> int:
    from agentrl.publish import PublishError, publish

    try:
        result = publish(args.run_dir, args.repo_id, merge=args.merge, private=args.private, dry_run=args.dry_run,
                         token=args.token, endpoint=args.endpoint, reproduce=args.reproduce,
                         commit_message=args.commit_message)
    except PublishError as exc:
        print(f"publish error: {exc}")
        return 2 if exc.bad_input else 1
    for warning in result.warnings:
        print(f"note: {warning}")
    print(f"{result.kind} model from {result.final}: {len(result.files)} files")
    for name in result.files:
        print(f"  {name}")
    print(f"written to {result.dry_run} (dry run: nothing uploaded)" if result.dry_run else f"pushed to {result.url}")
    return 0


# --------------------------------------------------------------- export-demos


def _export_demos_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, metavar="NAME", help="an installed environment with an expert")
    parser.add_argument("--out", required=True, type=Path,
                        help="FILE.jsonl, FILE.parquet, or a directory (datasets.save_to_disk)")
    parser.add_argument("--tasks", type=int, default=100, help="tasks the expert plays")
    parser.add_argument("--split", default="train", choices=["train", "test"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-failures", action="store_true", help="also keep episodes the expert lost")
    parser.epilog = "Any other option is an environment field: --env.<field> (e.g. --env.task_types 1 2)."


def _env_config(args: argparse.Namespace, command: str):
    """The `--env NAME` config with the `--env.<field>` overrides applied (raises on a bad field)."""
    from agentrl.config import parse_config
    from agentrl.demos import EnvFields
    from agentrl.env import env_config_class

    default = EnvFields(env=env_config_class(args.env)())
    return parse_config(default, args.config_overrides, prog=f"agentrl {command} --env {args.env}").env


def _export_demos_run(args: argparse.Namespace) -> int:
    from agentrl.config import ConfigError
    from agentrl.demos import export_demonstrations

    try:
        env_config = _env_config(args, "export-demos")
    except (ConfigError, ValueError) as exc:
        print(f"config error: {exc}")
        return 2
    path, n = export_demonstrations(env_config, args.tasks, args.out, split=args.split, seed=args.seed,
                                    successful_only=not args.keep_failures)
    print(f"wrote {n} expert episodes to {path}")
    return 0


# ------------------------------------------------------------------ resim-data


def _resim_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, metavar="NAME", help="an installed environment with snapshots")
    parser.add_argument("--out", required=True, type=Path,
                        help="FILE.jsonl, FILE.parquet, or a directory (datasets.save_to_disk)")
    parser.add_argument("--tasks", type=int, default=100, help="tasks played by tree search")
    parser.add_argument("--breadth", type=int, default=4, help="candidate actions tried per state")
    parser.add_argument("--depth", type=int, default=2, help="levels of the search tree")
    parser.add_argument("--max-steps", type=int, default=50, help="moves per task")
    parser.add_argument("--split", default="train", choices=["train", "test"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-episode", action="store_true", help="one multi-turn chat per task, not per state")
    parser.add_argument("--composer-model", default=None, metavar="MODEL",
                        help="an HF model id or path that writes each trace's comparison (default: the template)")
    parser.add_argument("--composer-engine", default="auto", help="engine serving --composer-model (auto, vllm, hf)")
    parser.epilog = "Any other option is an environment field: --env.<field> (e.g. --env.num_boxes 2)."


def _resim_data_run(args: argparse.Namespace) -> int:
    from agentrl.config import ConfigError
    from agentrl.demos import save_dataset
    from agentrl.resim import resim_dataset

    try:
        env_config = _env_config(args, "resim-data")
        if args.breadth < 1 or args.depth < 1:
            raise ValueError(f"--breadth and --depth must be >= 1 (got {args.breadth}, {args.depth})")
        from agentrl.engines import EngineConfig, make_engine

        engine_config = EngineConfig(backend=args.composer_engine)
        try:
            engine_config.validate()
        except ValueError as exc:
            raise ValueError(f"--composer-engine: {exc}") from None
    except (ConfigError, ValueError) as exc:
        print(f"config error: {exc}")
        return 2
    tasks = env_config.tasks(args.split, args.tasks, args.seed)
    engine = composer = None
    if args.composer_model:
        from agentrl.resim import LMComposer

        engine = make_engine(args.composer_model, engine_config, args.seed)
        composer = LMComposer(engine)
    try:
        data = resim_dataset(env_config, tasks, args.breadth, args.depth, max_steps=args.max_steps,
                             per_state=not args.per_episode, **({"composer": composer} if composer else {}))
    finally:
        if engine is not None:
            engine.close()
    path = save_dataset(data, args.out)
    print(f"wrote {len(data)} ReSim traces from {len(set(data['task_id']))} solved tasks to {path}")
    if composer is not None:
        print(f"LM composer: {composer.composed} traces composed, {composer.fallbacks} fell back to the template")
    return 0


# ------------------------------------------------------------------- registry

SUBCOMMANDS: dict[str, tuple[str, AddArguments, Run]] = {
    "build-model": (
        "build a tiny local tokenizer + model checkpoint from environment text",
        _build_model_arguments,
        _build_model_run,
    ),
    "eval": (
        "evaluate a checkpoint on N seeded tasks of an environment",
        _eval_arguments,
        _eval_run,
    ),
    "export-demos": (
        "export an environment's expert trajectories as a chat SFT dataset",
        _export_demos_arguments,
        _export_demos_run,
    ),
    "resim-data": (
        "write ReSim 'simulate, then act' traces from search trees grown in the real environment",
        _resim_data_arguments,
        _resim_data_run,
    ),
    "watch": (
        "step through one agent episode turn by turn (observation, action, reward); take over with t",
        _watch_arguments,
        _watch_run,
    ),
    "play": (
        "play one task of an environment yourself, seeing what the agent sees",
        _play_arguments,
        _play_run,
    ),
    "publish": (
        "push a run's model (LoRA adapter or merged), tokenizer and a generated model card to the Hub",
        _publish_arguments,
        _publish_run,
    ),
}

# subcommands whose unknown options are config-field overrides
PASSTHROUGH = {"eval", "export-demos", "resim-data", "watch", "play"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentrl", description="RL for multi-turn LLM agents.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, run) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(sub_parser)
        sub_parser.set_defaults(_run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command not in PASSTHROUGH:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.config_overrides = rest
    return args._run(args)


if __name__ == "__main__":
    raise SystemExit(main())
