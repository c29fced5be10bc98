"""agentrl vs TRL's GRPOTrainer on the same model, levels and settings, in one run.

Two workloads, each trained by both frameworks from the same initial weights, on the same
levels in the same order (rendered by agentrl's chat template, one tokenizer for both), the
same group size, prompts per step, max new tokens, lr, full fine-tuning, fp32, temperature 1.0,
one optimizer step per batch, GRPO advantages (group mean/std), per-sequence token-mean loss:

  single  one-move Sokoban: every level is solved by one push; the completion is the one
          action, reward 1 if it solves the level. TRL: its standard path (dataset prompts,
          transformers `generate`, a reward function). agentrl: `Trainer.fit()`, HF engine.
  multi   Sokoban episodes of up to `--turns` moves, the whole conversation in context.
          TRL: its experimental `rollout_func` (one sequence per rollout: prompt_ids,
          completion_ids with the env's replies masked by env_mask), each turn batched through
          TRL's own transformers generation. agentrl: the same `Trainer.fit()`, history=all.
          An extra row, `agentrl h=0`, keeps only the current grid in context (the demo's
          setting; each turn trains as its own sequence): what TRL's one-sequence-per-rollout
          format cannot express, so it is shown beside the like-for-like rows, not as the ratio.

The two sides take turns one optimizer step at a time (TRL in a thread, agentrl in the main
thread, never both computing at once), so load from other processes on a shared machine falls
on both alike; each side's time is the wall time of its own turns. Each runs `--warmup` steps
untimed, then `--steps` timed. Prints samples/s (completions generated and trained on),
generated tokens/s, the ratio agentrl/TRL, and each side's time share per phase: generate,
env/reward, learner (forward/backward + optimizer step), weight sync, other (the framework's
bookkeeping between them). The `agentrl h=0` row takes turns with a second TRL run (`TRL again`).

    OMP_WAIT_POLICY=PASSIVE python bench/vs_trl.py [--workloads single,multi] [--prompts 16 --group 8]

(~3.5 min on the 2-core CPU machine with the defaults; `--no-history0` skips the h=0 pair.)
"""
from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from dataclasses import dataclass, replace

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from _trl_side import (Baton, Clock, StepTimer, TimedGRPOTrainer, environment_factory_blocker,  # noqa: E402
                       rollout_reward, sokoban_reward, sokoban_rollout, trl_phases)
from datasets import Dataset  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402
from trl import GRPOConfig  # noqa: E402

from agentrl.algorithms import GRPO  # noqa: E402
from agentrl.chat import ChatFormat  # noqa: E402
from agentrl.engines import EngineConfig  # noqa: E402
from agentrl.env import Task  # noqa: E402
from agentrl.evaluation import EvalConfig  # noqa: E402
from agentrl.learner import LearnerConfig, LoraSettings  # noqa: E402
from agentrl.rollout import RolloutConfig  # noqa: E402
from agentrl.trainer import Trainer, TrainConfig  # noqa: E402
from agentrl_sokoban import SokobanConfig  # noqa: E402

PHASES = ("generate", "env/reward", "learner", "weight sync")


@dataclass
class Workload:
    name: str
    env: SokobanConfig
    turns: int  # actions per episode at most (the env ends the episode there)
    prompts: int  # levels per step
    history: int | None  # agentrl's context: None = whole conversation


@dataclass
class Result:
    samples: int
    tokens: int
    seconds: float
    phases: dict[str, float]


class FixedTasks:
    """Iteration i trains on levels [i*n, (i+1)*n): TRL's unshuffled dataset order."""

    def __init__(self, tasks: list[Task], n: int) -> None:
        self.tasks, self.n = tasks, n

    def sample(self, iteration: int) -> list[Task]:
        return self.tasks[iteration * self.n: (iteration + 1) * self.n]


def messages(env_config: SokobanConfig, task: Task) -> list[dict[str, str]]:
    env = env_config.make()
    observation = env.reset(task)
    system = [{"role": "system", "content": env.system_prompt}] if env.system_prompt else []
    return system + [{"role": "user", "content": observation}]


def build_trl(model: str, w: Workload, tasks: list[Task], args, out: str, baton: Baton, me: int) -> TimedGRPOTrainer:
    tokenizer = AutoTokenizer.from_pretrained(model)
    chat = ChatFormat(tokenizer)
    rows = [{"prompt": messages(w.env, t), **t.data} for t in tasks]
    first = tokenizer.apply_chat_template(rows[0]["prompt"], add_generation_prompt=True, tokenize=True,
                                          return_dict=True)["input_ids"]
    assert list(first) == chat.first_prompt(rows[0]["prompt"][-1]["content"]), "prompt ids differ between sides"
    config = GRPOConfig(
        output_dir=out, per_device_train_batch_size=w.prompts * args.group, gradient_accumulation_steps=1,
        num_generations=args.group, max_completion_length=args.max_new_tokens, temperature=1.0, top_p=1.0,
        learning_rate=args.lr, lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=1.0,
        optim="adamw_torch", beta=0.0, num_iterations=1, epsilon=0.2, loss_type="grpo", scale_rewards="group",
        max_steps=args.warmup + args.steps, shuffle_dataset=False, use_cpu=True, bf16=False, use_vllm=False,
        report_to="none", save_strategy="no", logging_steps=10**6, disable_tqdm=True, seed=0,
    )
    clock = Clock()
    multi = w.turns > 1
    trainer = TimedGRPOTrainer(
        model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
        reward_funcs=rollout_reward if multi else sokoban_reward(w.env),
        rollout_func=sokoban_rollout(w.env, {r["prompt"][-1]["content"]: t for r, t in zip(rows, tasks)},
                                     chat, clock, w.turns) if multi else None,
    )
    trainer.clock = clock
    trainer.add_callback(StepTimer(trainer, args.warmup, baton, me))
    return trainer


def build_agentrl(model: str, w: Workload, tasks: list[Task], args, out: str, baton: Baton,
                  me: int) -> tuple[Trainer, Clock]:
    cfg = TrainConfig(
        model=model, output_dir=out, seed=0, iterations=args.warmup + args.steps, tasks_per_iteration=w.prompts,
        rollouts_per_task=args.group, checkpoint_every=0, save_episodes=0, trackers=[], env=w.env,
        rollout=RolloutConfig(max_turns=w.turns, max_new_tokens=args.max_new_tokens, temperature=1.0,
                              history=w.history),
        algorithm=GRPO(),  # group mean/std advantages, PPO clip 0.2, one epoch, one minibatch
        learner=LearnerConfig(lr=args.lr, weight_decay=0.0, max_grad_norm=1.0, lora=LoraSettings(enabled=False)),
        engine=EngineConfig(backend="hf"), eval=EvalConfig(tasks=0),
    )
    trainer = Trainer(cfg)
    trainer.sampler = FixedTasks(tasks, w.prompts)
    clock, stats = Clock(), trainer.engine.stats
    collect, prepare, update, sync, write = (trainer._collect, cfg.algorithm.prepare, trainer.learner.update,
                                             trainer._sync, trainer.log.write)

    def timed_collect(it: int):
        g0, t0 = stats["generate_seconds"], time.perf_counter()
        episodes = collect(it)
        generate = stats["generate_seconds"] - g0
        clock.phases["generate"] += generate
        clock.phases["env/reward"] += time.perf_counter() - t0 - generate  # env calls + the rollout loop
        return episodes

    def counted_prepare(episodes):
        failed = [e.failure_reason for e in episodes if e.failed]
        if failed:
            raise RuntimeError(f"{len(failed)} agentrl episodes failed, e.g. {failed[0]}")
        batch = prepare(episodes)
        clock.samples += len(batch.episodes)
        clock.tokens += sum(e.num_policy_tokens for e in batch.episodes)
        return batch

    def timed(name: str, fn):
        def inner(*a, **k):
            with clock.phase(name):
                return fn(*a, **k)
        return inner

    def step_end(iteration: int, metrics: dict) -> None:  # the trainer logs once per iteration
        write(iteration, metrics)
        clock.stop_turn()
        if iteration == args.warmup:
            clock.reset()
        if iteration < cfg.iterations:
            baton.pass_turn(me)
        clock.start_turn()

    trainer._collect, cfg.algorithm.prepare = timed_collect, counted_prepare
    trainer.learner.update, trainer._sync = timed("learner", update), timed("weight sync", sync)
    trainer.log.write = step_end
    return trainer, clock


def run_pair(model: str, w: Workload, ours: Workload, tasks: list[Task], args, out: str) -> tuple[Result, Result]:
    """TRL (in a thread) and agentrl (here: its trainer handles signals) take turns step by step."""
    baton = Baton(2)
    trl = build_trl(model, w, tasks, args, f"{out}-trl", baton, 0)
    trainer, clock = build_agentrl(model, ours, tasks, args, f"{out}-agentrl", baton, 1)
    failure: list[BaseException] = []

    def train_trl() -> None:
        baton.wait(0)
        trl.clock.start_turn()
        try:
            trl.train()
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
            failure.append(e)
        finally:
            baton.finish(0)

    thread = threading.Thread(target=train_trl, name="trl", daemon=True)
    thread.start()
    baton.give(0)  # TRL steps first
    baton.wait(1)
    clock.start_turn()
    try:
        trainer.fit()
    finally:
        baton.finish(1)
    thread.join()
    if failure:
        raise failure[0]
    trl_result = Result(trl.clock.samples, trl.clock.tokens, trl.clock.active, trl_phases(trl.clock))
    return trl_result, Result(clock.samples, clock.tokens, clock.active, dict(clock.phases))


def print_table(w: Workload, args, results: dict[str, Result]) -> None:
    print(f"\n{w.name}: {w.prompts} levels x {args.group} per step, {args.max_new_tokens} new tokens per turn, "
          f"up to {w.turns} turn(s), {args.steps} timed steps after {args.warmup} warm-up")
    head = f"{'framework':<12}{'samples/s':>10}{'tokens/s':>10}{'s/step':>8}" + "".join(f"{p:>13}" for p in PHASES)
    print(head + f"{'other':>8}")
    for name, r in results.items():
        shares = [r.phases.get(p, 0.0) / r.seconds for p in PHASES]
        print(f"{name:<12}{r.samples / r.seconds:>10.1f}{r.tokens / r.seconds:>10.1f}{r.seconds / args.steps:>8.3f}"
              + "".join(f"{s:>13.1%}" for s in shares) + f"{1 - sum(shares):>8.1%}")
    for name, r in results.items():  # each agentrl row against the TRL row it took turns with
        line = f"{name}: {r.samples} samples, {r.tokens} generated tokens in {r.seconds:.1f}s"
        if name.startswith("TRL"):
            trl = r
        else:
            line += (f"; ratio {name}/TRL: samples/s {(r.samples / r.seconds) / (trl.samples / trl.seconds):.2f}x, "
                     f"tokens/s {(r.tokens / r.seconds) / (trl.tokens / trl.seconds):.2f}x")
        print(line)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="an HF checkpoint; default: build the demo's local model")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--workloads", default="single,multi")
    p.add_argument("--prompts", type=int, default=16, help="levels per step (single turn)")
    p.add_argument("--multi-prompts", type=int, default=8, help="levels per step (multi-turn)")
    p.add_argument("--group", type=int, default=8, help="rollouts per level (G)")
    p.add_argument("--max-new-tokens", type=int, default=4)
    p.add_argument("--turns", type=int, default=4, help="multi-turn: moves per episode at most")
    p.add_argument("--history0", action=argparse.BooleanOptionalAction, default=True,
                   help="multi-turn: also run agentrl with only the current grid in context (row 'agentrl h=0')")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args()

    base = SokobanConfig(width=6, height=6, num_boxes=1, max_inner_walls=3, crop_border=True, instructions=False)
    workloads = {
        "single": Workload("single-turn one-move Sokoban", replace(base, min_solution_length=1,
                           max_solution_length=1, max_steps=1), 1, args.prompts, 0),
        "multi": Workload(f"multi-turn Sokoban (whole conversation, up to {args.turns} moves)",
                          replace(base, max_solution_length=3, max_steps=args.turns), args.turns,
                          args.multi_prompts, None),
    }
    root = tempfile.mkdtemp(prefix="bench-vs-trl-")
    model = args.model
    if model is None:
        from agentrl.model_builder import build_local_model

        model = os.path.join(root, "model")
        build_local_model(model, env_configs=[base], hidden_size=args.hidden, num_layers=args.layers,
                          num_heads=max(2, args.hidden // 32), intermediate_size=3 * args.hidden)
    t_start, tables = time.perf_counter(), []
    for key in args.workloads.split(","):
        w = workloads[key]
        tasks = w.env.tasks("train", w.prompts * (args.warmup + args.steps), seed=0)
        results = dict(zip(("TRL", "agentrl"), run_pair(model, w, w, tasks, args, os.path.join(root, key))))
        if w.history is None and args.history0:  # not like-for-like: each turn trains as its own sequence
            pair = run_pair(model, w, replace(w, history=0), tasks, args, os.path.join(root, f"{key}-h0"))
            results.update(zip(("TRL again", "agentrl h=0"), pair))
        tables.append((w, results))
    probe = Dataset.from_list([{"prompt": [{"role": "user", "content": "x"}]}])
    blocker = environment_factory_blocker(model, AutoTokenizer.from_pretrained(model), probe,
                                          os.path.join(root, "trl-env-factory"))
    for w, results in tables:  # at the end, after both frameworks' own progress output
        print_table(w, args, results)
    print(f"\nTRL environment_factory (tool-call episodes) on this model: {blocker or 'accepted'}")
    print(f"model {model}; total {time.perf_counter() - t_start:.0f}s")


if __name__ == "__main__":
    main()
