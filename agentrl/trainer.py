"""The training loop: sample tasks, roll out, prepare, update, sync, log, evaluate, checkpoint.

With several processes (`accelerate launch`, DDP or DeepSpeed) the main process owns the
engine: it rolls out and evaluates, every process gets the batch, and the learner trains
each process's shard of it (see agentrl/distributed.py).
"""
from __future__ import annotations

import concurrent.futures
import json
import shutil
import signal
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from agentrl import distributed
from agentrl.algorithms import LOOP, PolicyGradient
from agentrl.engines import EngineConfig, make_engine
from agentrl.env import EnvConfig
from agentrl.evaluation import EvalConfig, evaluate
from agentrl.experts import StageSchedule
from agentrl.learner import Learner, LearnerConfig
from agentrl.multitask import FamilySampler, MultiTaskConfig
from agentrl.rollout import RolloutConfig
from agentrl.run_log import RunLog, episode_metrics
from agentrl.tasks import TaskSampler


@dataclass
class TrainConfig:
    model: str = ""  # any HF model id or local checkpoint directory
    output_dir: str = "runs/agentrl"
    seed: int = 0
    iterations: int = 200
    tasks_per_iteration: int = 40
    rollouts_per_task: int = 6  # K: the group each task's advantages are computed in
    task_pool: int = 0  # 0 = fresh train tasks every iteration; N = draw from N fixed tasks
    solved_threshold: float = 0.9  # multi-task: a family whose train success reaches this stops collecting data
    checkpoint_every: int = 10
    keep_checkpoints: int = 2
    # collect iteration it+1's rollouts (with the weights before update it) while the learner trains
    # on iteration it's: staleness one update, behaviour logprobs kept for the importance ratios
    async_rollouts: bool = False
    resume: bool = False  # continue from the newest checkpoint in output_dir
    save_episodes: int = 16  # sampled episodes written per iteration
    trackers: list[str] = field(default_factory=lambda: ["tensorboard"])
    env: EnvConfig = field(default_factory=EnvConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algorithm: PolicyGradient = field(default_factory=LOOP)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def validate(self) -> None:
        if self.iterations < 0 or self.tasks_per_iteration < 1 or self.rollouts_per_task < 1:
            raise ValueError("iterations must be >= 0, tasks_per_iteration and rollouts_per_task >= 1")
        if type(self.env) is EnvConfig:
            raise ValueError("env: no environment chosen (a recipe sets one, e.g. SokobanConfig())")


class Trainer:
    def __init__(self, cfg: TrainConfig) -> None:
        from accelerate.utils import set_seed

        if not cfg.model:
            from agentrl.config import ConfigError

            raise ConfigError("model: required (an HF model id or a local checkpoint directory)")
        self.cfg = cfg
        set_seed(cfg.seed)
        trackers = [t for t in cfg.trackers if t]
        self.accelerator = distributed.make_accelerator(log_with=trackers or None, project_dir=cfg.output_dir)
        self.log = RunLog(cfg.output_dir, self.accelerator, enabled=self.accelerator.is_main_process)
        if self.accelerator.is_main_process:
            from agentrl.config import save_config

            save_config(cfg, Path(cfg.output_dir) / "config.yaml")
        if trackers:
            from agentrl.config import config_to_dict

            self.accelerator.init_trackers("agentrl", config=_flat(config_to_dict(cfg)))
        families = list(cfg.env.families) if isinstance(cfg.env, MultiTaskConfig) else []
        self.learner = Learner(cfg.model, cfg.learner, self.accelerator, seed=cfg.seed, families=families)
        self.engine = None  # the main process's: it rolls out for every process
        if self.accelerator.is_main_process:
            with distributed.unpartitioned(self.accelerator):  # the engine's model is whole, not a ZeRO-3 shard
                self.engine = make_engine(cfg.model, cfg.engine, cfg.seed, lora_rank=self.learner.served_lora_rank,
                                          routes=len(families))
        self._sync()
        if families:  # ScaleZero: solved families stop collecting data, unsolved ones are re-weighted
            self.sampler = FamilySampler(cfg.env, cfg.tasks_per_iteration, cfg.seed, cfg.solved_threshold)
        else:
            self.sampler = TaskSampler(cfg.env, cfg.tasks_per_iteration, cfg.seed, cfg.task_pool)
        experts = cfg.learner.experts
        self.stages = StageSchedule(experts.stages, experts.stage_iterations) if experts.enabled else None
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rollouts") if cfg.async_rollouts else None

    def fit(self) -> dict[str, float]:
        """Train for `cfg.iterations`; returns the last evaluation's metrics."""
        cfg, last_eval = self.cfg, {}
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # a killed run still shuts down cleanly
        try:
            start, restored = self._resume() if cfg.resume else (0, None)
            if start == 0:
                last_eval = self.evaluate(0)
            progress = _progress(self.accelerator.is_main_process)
            bar = progress.add_task("training", total=cfg.iterations, completed=start)
            progress.start()
            pending = None  # the next iteration's rollouts, in flight (async_rollouts)
            if restored is not None and start < cfg.iterations:  # collected before the stop, never trained on
                pending = concurrent.futures.Future()
                pending.set_result(restored)
            for it in range(start, cfg.iterations):
                t0 = time.perf_counter()
                episodes = distributed.broadcast_object(pending.result() if pending else self._collect(it),
                                                        self.accelerator)
                t1 = time.perf_counter()
                batch = cfg.algorithm.prepare(episodes)
                pending = self._pool.submit(self._collect, it + 1) if self._pool and it + 1 < cfg.iterations else None
                stats = self.learner.update(batch, cfg.algorithm, cfg.rollout.temperature)
                if pending:  # weights change only between collections, so each batch has one behaviour policy
                    concurrent.futures.wait([pending])
                stats.update(self._observe(episodes))
                self._sync()
                t2 = time.perf_counter()
                done = it + 1
                train = episode_metrics(episodes, "train")
                self.log.write(done, {
                    **train, **batch.metrics, **stats,
                    "time/rollout_s": t1 - t0, "time/update_s": t2 - t1,
                })
                self.log.episodes(f"train_{done:05d}", episodes, cfg.save_episodes)
                if self.accelerator.is_main_process:
                    _print_iteration(progress.console, done, cfg.iterations, train, stats, t2 - t0)
                progress.update(bar, completed=done)
                if (cfg.eval.every and done % cfg.eval.every == 0) or done == cfg.iterations:
                    last_eval = self.evaluate(done)
                if (cfg.checkpoint_every and done % cfg.checkpoint_every == 0) or done == cfg.iterations:
                    self.checkpoint(done, pending.result() if pending else None)
            progress.stop()
            if not last_eval:  # resumed at the end (or eval.every=0): still report where the policy stands
                last_eval = self.evaluate(cfg.iterations)
            tokenizer = self.engine.tokenizer if self.engine is not None else None
            self.learner.save_pretrained(Path(cfg.output_dir) / "final", tokenizer)  # every process: ZeRO-3 gathers
            return last_eval
        finally:
            signal.signal(signal.SIGTERM, previous)
            self.close()

    def _sync(self) -> None:
        for update in self.learner.export_updates():  # every process: ZeRO-3 gathers the weights
            if self.engine is not None:
                self.engine.sync(update)

    def _observe(self, episodes) -> dict[str, float]:
        """Multi-task bookkeeping after an update: per-family success, the DPS stage switch."""
        if not isinstance(self.sampler, FamilySampler):
            return {}
        self.sampler.observe(episodes)
        metrics = self.sampler.metrics()
        if self.stages is not None:
            if self.stages.observe(len(self.sampler.solved()), len(self.sampler.success())):
                self.learner.next_stage()
                print(f"[dps] stage {self.stages.stage}: earlier adapters frozen, new ones added", flush=True)
            metrics["dps/stage"] = float(self.stages.stage)
        return metrics

    def _collect(self, it: int):
        """This iteration's episodes (None on processes other than the main one)."""
        cfg = self.cfg
        if self.engine is None:
            return None
        return cfg.algorithm.collect(self.engine, cfg.env, self.sampler.sample(it), cfg.rollouts_per_task, cfg.rollout,
                                     seed=cfg.seed * 7_919 + it, iteration=it)

    def evaluate(self, iteration: int) -> dict[str, float]:
        if not self.cfg.eval.tasks:
            return {}
        if self.engine is None:  # the main process evaluates; the others wait for its numbers
            return distributed.broadcast_object(None, self.accelerator)
        summary, episodes = evaluate(self.engine, self.cfg.env, self.cfg.rollout, self.cfg.eval)
        metrics = {f"eval/{k}": v for k, v in summary.items()}
        self.log.write(iteration, metrics)
        self.log.episodes(f"eval_{iteration:05d}", episodes, self.cfg.save_episodes)
        self.log.plot()
        print(f"[eval] iteration {iteration}: " + "  ".join(f"{k}={v:.3f}" for k, v in summary.items()), flush=True)
        return distributed.broadcast_object(metrics, self.accelerator)

    # -- checkpoints ---------------------------------------------------------
    @property
    def checkpoint_root(self) -> Path:
        return Path(self.cfg.output_dir) / "checkpoints"

    def checkpoint(self, iteration: int, pending: list | None = None) -> Path | None:
        """Learner, optimizer, scheduler, RNG, sampler and stage state, plus `pending`: the episodes
        already collected for the next iteration (async rollouts), so a resume trains on them
        instead of losing them. Written atomically (agentrl/checkpoints.py). A write that fails
        (disk full, quota) is removed and warned about, and the run goes on: the previous
        checkpoint stays the latest. None then."""
        from agentrl import checkpoints

        try:
            return self._write_checkpoint(iteration, pending)
        except Exception as e:
            if self.accelerator.num_processes > 1 or not _storage_error(e):
                raise  # every rank must agree on what was written; a bug is not a full disk
            shutil.rmtree(checkpoints.partial_dir(self.checkpoint_root, iteration), ignore_errors=True)
            message = f"checkpoint {iteration} not written ({e}); the previous one stays the latest"
            warnings.warn(message, RuntimeWarning, stacklevel=2)
            print(f"[checkpoint] warning: {message}", flush=True)
            return None

    def _write_checkpoint(self, iteration: int, pending: list | None) -> Path:
        from agentrl import checkpoints
        from agentrl.config import save_config
        from agentrl.episode import save_episodes

        main = self.accelerator.is_main_process
        if main:
            checkpoints.begin(self.checkpoint_root, iteration)
        self.accelerator.wait_for_everyone()
        partial = checkpoints.partial_dir(self.checkpoint_root, iteration)  # begun by the main process
        self.learner.save_checkpoint(partial)
        self.accelerator.wait_for_everyone()
        if not main:
            return checkpoints.checkpoint_dir(self.checkpoint_root, iteration)
        save_config(self.cfg, partial / "config.yaml")
        if pending is not None:
            save_episodes(pending, str(partial / "pending_episodes.jsonl"))
        state = {"iteration": iteration, "sampler": getattr(self.sampler, "state_dict", dict)(),
                 "stages": self.stages.state_dict() if self.stages else None, "pending": pending is not None}
        (partial / "trainer_state.json").write_text(json.dumps(state))
        return checkpoints.commit(partial, keep=self.cfg.keep_checkpoints)

    def _resume(self) -> tuple[int, list | None]:
        """(iteration, pending episodes or None) from the newest usable checkpoint (a corrupt one
        is skipped with a warning); (0, None) when there is none."""
        from agentrl import checkpoints
        from agentrl.episode import load_episodes

        def load(path: Path) -> dict:
            self.learner.load_checkpoint(path)
            return json.loads((path / "trainer_state.json").read_text())

        found = checkpoints.load_latest(self.checkpoint_root, load)
        if found is None:
            print(f"[resume] no usable checkpoint under {self.checkpoint_root}: starting from scratch", flush=True)
            return 0, None
        latest, state = found
        self._sync()
        iteration = state["iteration"]
        pending = load_episodes(str(latest / "pending_episodes.jsonl")) if state.get("pending") else None
        if state.get("sampler") and hasattr(self.sampler, "load_state_dict"):
            self.sampler.load_state_dict(state["sampler"])
        if state.get("stages") and self.stages is not None:
            self.stages.load_state_dict(state["stages"])
        self.log.truncate(iteration)
        print(f"[resume] continuing from {latest} (iteration {iteration})", flush=True)
        return iteration, pending

    def close(self) -> None:
        if self._pool:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self.engine is not None:
            self.engine.close()
        if self.accelerator.trackers:
            self.accelerator.end_training()


def _storage_error(e: BaseException | None) -> bool:
    """A full disk or quota, however the writer reports it (OSError, safetensors' and torch's own)."""
    while e is not None:
        if isinstance(e, OSError) or any(s in str(e) for s in ("No space left", "os error 28", "quota", "failed writing")):
            return True
        e = e.__cause__ or e.__context__
    return False


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), disable=not enabled)


def _print_iteration(console, done: int, total: int, m: dict, stats: dict, seconds: float) -> None:
    console.print(
        f"[train] iteration {done}/{total}  success={m['train/success_rate']:.3f}  "
        f"reward={m['train/mean_reward']:.3f}  steps={m['train/mean_steps']:.1f}  "
        f"loss={stats.get('loss/policy', 0.0):+.4f}  {seconds:.1f}s",
        highlight=False, markup=False, soft_wrap=True,
    )
