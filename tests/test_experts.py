"""ScaleZero pieces: task-routed LoRA experts, DPS stages, the stage switch rule, serving."""
from __future__ import annotations

import asyncio
import math

import pytest
import torch

from agentrl.algorithms import GRPO
from agentrl.algorithms.base import Batch, Sample
from agentrl.engines.base import SamplingParams
from agentrl.episode import Episode
from agentrl.experts import ExpertsConfig, StageSchedule, gradient_cosines
from agentrl.learner import Learner, LearnerConfig, LoraSettings

FAMILIES = ["short", "long"]


def _learner(model: str, stages: int = 1, shared: bool = False, per_family: bool = True, **kw) -> Learner:
    cfg = LearnerConfig(lr=1e-2, max_grad_norm=1e9, weight_decay=0.1, lora=LoraSettings(r=4, alpha=8),
                        experts=ExpertsConfig(enabled=True, stages=stages, shared=shared, per_family=per_family), **kw)
    return Learner(model, cfg, seed=0, families=FAMILIES)


def _adapter_params(learner: Learner, adapter: str) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in learner.model.named_parameters() if f".{adapter}." in n}


def _batch(family_of: list[str], advantages: list[float], seed: int = 0) -> Batch:
    """One 12-token sequence per episode (6 prompt + 6 trained tokens), its family as given."""
    gen = torch.Generator().manual_seed(seed)
    episodes, samples = [], []
    for i, (family, adv) in enumerate(zip(family_of, advantages)):
        ids = torch.randint(5, 200, (12,), generator=gen).tolist()
        episodes.append(Episode(task_id=f"{family}/{i}", group_id=f"{family}", episode_id=f"{i}", family=family))
        samples.append(Sample(ids, [0] * 6 + [1] * 6, [0.0] * 12, adv, i))
    return Batch(samples, episodes)


def _behaviour_from(learner: Learner, batch: Batch) -> None:
    """On-policy behaviour logprobs (what the engine would have returned)."""
    with torch.no_grad():
        logp = learner.token_logprobs(batch.samples)
    for s, row in zip(batch.samples, logp):
        s.behaviour_logprobs = [float(v) if m else 0.0 for v, m in zip(row[: len(s.token_ids)], s.loss_mask)]


def _outputs(learner: Learner, family: str, ids: list[int]) -> torch.Tensor:
    learner.experts.activate(family)
    with torch.no_grad():
        return learner.model(input_ids=torch.tensor([ids])).logits


def _randomize(learner: Learner, adapters: list[str], seed: int = 1) -> None:
    """Move the given adapters away from zero effect (peft starts lora_B at 0)."""
    gen = torch.Generator().manual_seed(seed)
    for n, p in learner.model.named_parameters():
        if any(f".{a}." in n for a in adapters) and n.endswith("weight"):
            p.data.add_(torch.randn(p.shape, generator=gen) * 0.3)


def test_a_step_on_family_a_leaves_family_b_untouched(tiny_model):
    learner = _learner(tiny_model)
    _randomize(learner, ["short_s0", "long_s0"])
    batch = _batch(["short"] * 4, [1.0, -1.0, 0.5, -0.5])
    _behaviour_from(learner, batch)
    short_before, long_before = _adapter_params(learner, "short_s0"), _adapter_params(learner, "long_s0")
    assert long_before and short_before
    learner.update(batch, GRPO(epochs=1, minibatch_episodes=0))
    short_after, long_after = _adapter_params(learner, "short_s0"), _adapter_params(learner, "long_s0")
    assert all(torch.equal(long_before[n], long_after[n]) for n in long_before)  # not even weight decay
    assert any(not torch.equal(short_before[n], short_after[n]) for n in short_before)


def test_each_family_runs_through_its_own_adapter(tiny_model):
    learner = _learner(tiny_model)
    _randomize(learner, ["short_s0", "long_s0"])
    batch = _batch(["short", "long", "short"], [1.0, 1.0, 1.0])
    with torch.no_grad():
        mixed = learner.token_logprobs(batch.samples)
        for i, s in enumerate(batch.samples):  # each row alone, its family's adapter active
            learner.experts.activate(s.family)
            alone = learner._token_logprobs([s])
            torch.testing.assert_close(mixed[i, : alone.shape[1]], alone[0], rtol=0, atol=1e-6)
    assert not torch.allclose(_outputs(learner, "short", batch.samples[0].token_ids),
                              _outputs(learner, "long", batch.samples[0].token_ids))


def test_dps_stage_switch_freezes_and_adds_a_zero_effect_adapter(tiny_model):
    learner = _learner(tiny_model, stages=2)
    _randomize(learner, ["short_s0", "long_s0"])
    ids = list(range(10, 30))
    before = _outputs(learner, "short", ids)
    learner.next_stage()
    assert learner.experts.adapters_for("short") == ["short_s0", "short_s1"]
    torch.testing.assert_close(_outputs(learner, "short", ids), before, rtol=0, atol=0)  # B = 0, scale 1
    trainable = {n for n, p in learner.model.named_parameters() if p.requires_grad}
    assert trainable and all("_s1." in n for n in trainable)
    assert any(n.endswith("dps_logit") for n in trainable)
    frozen = _adapter_params(learner, "short_s0")
    for step in range(2):
        batch = _batch(["short"] * 4, [1.0, -1.0, 0.5, -0.5], seed=step)
        _behaviour_from(learner, batch)
        learner.update(batch, GRPO(epochs=1, minibatch_episodes=0))
    after = _adapter_params(learner, "short_s0")
    assert all(torch.equal(frozen[n], after[n]) for n in frozen)
    assert not torch.allclose(_outputs(learner, "short", ids), before)  # the new stage learned something
    scales = [learner.experts.scale(m, "short_s1") for _, m in learner.experts._lora_modules]
    assert all(0.8 < float(s) < 1.2 for s in scales)


def test_composite_export_equals_the_active_adapters(tiny_model):
    """The one adapter per family that engines serve (A stacked, B scaled) is the same function."""
    from agentrl.engines.hf import HFEngine

    learner = _learner(tiny_model, stages=2, shared=True)
    _randomize(learner, ["short_s0", "long_s0", "shared_s0"])
    learner.next_stage()
    _randomize(learner, ["short_s1", "long_s1", "shared_s1"], seed=2)
    for _, m in learner.experts._lora_modules:  # DPS scales away from 1
        m.lora_B["short_s1"].dps_logit.data.fill_(0.7)
    updates = {u.route: u for u in learner.export_updates()}
    assert set(updates) == set(FAMILIES) and updates["short"].peft_config.r == 4 * 2 * 2 == learner.served_lora_rank
    engine = HFEngine(tiny_model)
    try:
        for u in updates.values():
            engine.sync(u)
        ids = list(range(10, 30))
        for family in FAMILIES:
            engine.model.set_adapter(engine.adapters[family])
            with torch.no_grad():
                served = engine.model(input_ids=torch.tensor([ids])).logits
            torch.testing.assert_close(served, _outputs(learner, family, ids), rtol=0, atol=1e-4)

        async def both():  # one batch with both families: each request gets its own adapter
            return await asyncio.gather(*(engine.generate(ids, SamplingParams(0.0, 1.0, 6, route=f)) for f in FAMILIES))

        mixed = asyncio.run(both())
        for family, completion in zip(FAMILIES, mixed):
            learner.experts.activate(family)
            expect = learner.accelerator.unwrap_model(learner.model).generate(
                torch.tensor([ids]), max_new_tokens=6, do_sample=False, top_p=None, top_k=None)[0, len(ids):].tolist()
            assert completion.token_ids == expect[: len(completion.token_ids)]
    finally:
        engine.close()


@pytest.mark.parametrize("stages,solved,fires", [
    # 4 families unsolved, 3 stages: needs ceil(4/3) = 2 new solves; then ceil(2/2) = 1; last stage never switches
    (3, [0, 1, 2, 2, 3, 4], [False, False, True, False, True, False]),
    # 1 family solved from the start, 3 unsolved, 2 stages: ceil(3/2) = 2 new solves (2 -> 3 is only one)
    (2, [1, 1, 2, 3, 4], [False, False, False, True, False]),
    # 1 stage: nothing to switch to
    (1, [4], [False]),
])
def test_stage_switch_fires_exactly_when_the_rule_says(stages, solved, fires):
    schedule = StageSchedule(stages)
    assert [schedule.observe(n, 4) for n in solved] == fires


def test_stage_switch_on_an_iteration_budget():
    schedule = StageSchedule(3, budget=3)
    assert [schedule.observe(0, 5) for _ in range(7)] == [False, False, True, False, False, True, False]
    assert schedule.stage == 2


def test_stage_schedule_first_observation_counts_already_solved():
    """Families solved at the first observation are not 'newly solved'."""
    schedule = StageSchedule(2)
    assert schedule.observe(3, 4) is False  # 1 unsolved: needs ceil(1/2) = 1 more
    assert schedule.needed() == 1
    assert schedule.observe(4, 4) is True


def test_gradient_cosines_by_hand():
    g = {"a": torch.tensor([1.0, 0.0]), "b": torch.tensor([1.0, 1.0]), "c": torch.tensor([-1.0, 0.0])}
    out = gradient_cosines(g)
    # cos(a,b) = 1/sqrt2, cos(a,c) = -1, cos(b,c) = -1/sqrt2
    assert out["conflict/cosine_mean"] == pytest.approx(-1 / 3)
    assert out["conflict/cosine_min"] == pytest.approx(-1.0)


def test_measured_conflict_is_zero_with_experts_and_not_with_one_shared_lora(tiny_model):
    """Per-family gradients of task-routed experts live on disjoint parameters (cosine exactly 0);
    through one shared LoRA the same batch's family gradients overlap."""
    results = {}
    for name, kw in {"experts": {}, "shared": {"per_family": False, "shared": True}}.items():
        learner = _learner(tiny_model, measure_gradient_conflict=True, **kw)
        adapters = ["short_s0", "long_s0"] if name == "experts" else ["shared_s0"]
        _randomize(learner, adapters)
        batch = _batch(["short", "long", "short", "long"], [1.0, -1.0, -0.5, 0.5])
        _behaviour_from(learner, batch)
        results[name] = learner.update(batch, GRPO(epochs=1, minibatch_episodes=0))["conflict/cosine_mean"]
    assert results["experts"] == 0.0
    # the shared adapter's family gradients overlap: some cosine, never exactly 0 (its size depends on the batch)
    assert abs(results["shared"]) > 1e-6 and math.isfinite(results["shared"])


def test_experts_need_lora_and_families(tiny_model):
    from agentrl.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match="experts"):
        parse_config(LearnerConfig(lora=LoraSettings(enabled=False), experts=ExpertsConfig(enabled=True)), [])
    with pytest.raises(ValueError, match="per_family needs a multi-task env"):
        Learner(tiny_model, LearnerConfig(experts=ExpertsConfig(enabled=True)), families=[])


@pytest.mark.parametrize("per_family,shared,routes", [(True, False, FAMILIES), (False, True, [""])])
def test_saved_checkpoint_reads_back_each_routes_adapter(tiny_model, tmp_path, per_family, shared, routes):
    """`save_pretrained` of an experts learner writes what `routed_adapters` (used by `agentrl eval`)
    reads back: the same route and tensors per adapter, including the one shared LoRA of route "",
    which serves every family's requests."""
    from agentrl.engines.base import routed_adapters, serving

    learner = _learner(tiny_model, per_family=per_family, shared=shared)
    _randomize(learner, [f"{g}_s0" for g in (FAMILIES if per_family else ["shared"])])
    learner.save_pretrained(tmp_path / "final")
    exported = {u.route: u for u in learner.export_updates()}
    loaded = {u.route: u for u in routed_adapters(tmp_path / "final")}
    assert sorted(loaded) == sorted(exported) == sorted(routes)
    for route, update in loaded.items():
        assert update.kind == "lora" and update.peft_config.r == exported[route].peft_config.r
        assert update.state_dict.keys() == exported[route].state_dict.keys()
        for k, v in update.state_dict.items():
            torch.testing.assert_close(v, exported[route].state_dict[k], rtol=0, atol=0)
    assert all(serving(loaded, f) is not None for f in FAMILIES)
