"""Learner pieces against direct computations."""
from __future__ import annotations

import pytest
import torch

from agentrl.algorithms import LOOP
from agentrl.algorithms.base import Batch, Sample
from agentrl.learner import Learner, LearnerConfig, LoraSettings


@pytest.fixture(scope="module")
def learner(tiny_model):
    return Learner(tiny_model, LearnerConfig(lr=1e-3, lora=LoraSettings(r=4, alpha=8)), seed=0)


def _direct_logprobs(model, ids):
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, :-1].float(), -1)
    return [0.0] + [logp[i, t].item() for i, t in enumerate(ids[1:])]


def test_token_logprobs_of_padded_rows_equal_unpadded_forward(learner):
    rows = [[5, 6, 7, 8, 9, 10], [11, 12, 13]]
    samples = [Sample(r, [1] * len(r), [0.0] * len(r), 0.0, i) for i, r in enumerate(rows)]
    with torch.no_grad():
        got = learner.token_logprobs(samples)
    for i, r in enumerate(rows):
        torch.testing.assert_close(got[i, : len(r)], torch.tensor(_direct_logprobs(learner.model, r)), rtol=0, atol=1e-5)


def test_mismatch_metric_sees_a_perturbed_behaviour_logprob(learner):
    ids = [5, 6, 7, 8]
    truth = _direct_logprobs(learner.model, ids)
    perturbed = list(truth)
    perturbed[2] -= 0.5
    sample = Sample(ids, [0, 0, 1, 1], perturbed, 1.0, 0)
    stats = learner._check_behaviour([sample], [torch.tensor(truth)])
    assert stats["logprob_mismatch/max_abs"] == pytest.approx(0.5, abs=1e-6)
    assert stats["logprob_mismatch/mean_abs"] == pytest.approx(0.25, abs=1e-6)


def test_update_moves_logprobs_in_the_advantage_direction(tiny_model):
    learner = Learner(tiny_model, LearnerConfig(lr=1e-2, max_grad_norm=10.0, lora=LoraSettings(enabled=False)), seed=0)
    good, bad = [5, 6, 7, 8], [5, 6, 9, 10]
    samples = [Sample(ids, [0, 0, 1, 1], _direct_logprobs(learner.model, ids), adv, i)
               for i, (ids, adv) in enumerate([(good, 1.0), (bad, -1.0)])]
    before = [sum(_direct_logprobs(learner.model, s.token_ids)[2:]) for s in samples]
    stats = learner.update(Batch(samples, [None, None]), LOOP(epochs=1, minibatch_episodes=0))
    after = [sum(_direct_logprobs(learner.model, s.token_ids)[2:]) for s in samples]
    assert stats["update/optimizer_steps"] == 1.0
    assert after[0] > before[0] and after[1] < before[1]
    assert stats["logprob_mismatch/max_abs"] < 1e-5


@pytest.mark.parametrize("algorithm, reused", [
    (LOOP(epochs=1, minibatch_episodes=0, min_abs_advantage=0.0), True),  # one step: no recompute pass
    (LOOP(epochs=2, minibatch_episodes=0, min_abs_advantage=0.0), False),  # step 2 needs the pre-update policy
])
def test_one_step_update_reuses_its_forward_and_matches_the_two_pass_update(tiny_model, algorithm, reused):
    """With a single optimizer step the old logprobs are the step's own forward: same weights and
    same mismatch metrics as recomputing them in a separate pass (within float noise)."""
    results = []
    for reuse in (True, False):
        learner = Learner(tiny_model, LearnerConfig(lr=1e-2, max_grad_norm=10.0, lora=LoraSettings(enabled=False)), seed=0)
        learner.reuse_step_forward = reuse
        samples = []
        for i, (ids, adv) in enumerate([([5, 6, 7, 8], 1.0), ([5, 6, 9, 10, 11], -1.0), ([5, 7], 0.5)]):
            behaviour = _direct_logprobs(learner.model, ids)
            behaviour[-1] -= 0.25 * i  # a stale behaviour policy: the mismatch metric must see it
            samples.append(Sample(ids, [0] + [1] * (len(ids) - 1), behaviour, adv, i))
        batch = Batch(samples, [None] * 3)
        assert learner._one_step_from_current_policy(batch, algorithm, len(batch.episodes)) == (reuse and reused)
        stats = learner.update(batch, algorithm)
        results.append((stats, {k: v.detach().clone() for k, v in learner.model.named_parameters()}))
    (fused, params_fused), (two_pass, params_two_pass) = results
    for k in params_fused:
        torch.testing.assert_close(params_fused[k], params_two_pass[k], rtol=1e-5, atol=1e-6)
    assert fused["logprob_mismatch/max_abs"] == pytest.approx(0.5, abs=1e-5)
    for key in ("logprob_mismatch/mean_abs", "loss/policy", "update/optimizer_steps"):
        assert fused[key] == pytest.approx(two_pass[key], abs=1e-5)


def test_export_weights_reach_the_engine(tiny_model):
    from agentrl.engines.hf import HFEngine

    learner = Learner(tiny_model, LearnerConfig(lr=1e-2, lora=LoraSettings(r=4, alpha=8)), seed=0)
    ids = [5, 6, 7, 8]
    learner.update(Batch([Sample(ids, [0, 0, 1, 1], [0.0] * 4, 1.0, 0)], [None]), LOOP(epochs=1, minibatch_episodes=0))
    engine = HFEngine(tiny_model)
    try:
        stale = _direct_logprobs(engine.model, ids)
        update = learner.export_weights()
        assert update.kind == "lora" and update.version == 1
        engine.sync(update)
        torch.testing.assert_close(torch.tensor(_direct_logprobs(engine.model, ids)),
                                   torch.tensor(_direct_logprobs(learner.model, ids)), rtol=0, atol=1e-5)
        assert max(abs(a - b) for a, b in zip(stale, _direct_logprobs(engine.model, ids))) > 1e-4
    finally:
        engine.close()


def test_group_minibatches_keep_each_group_whole_and_cover_every_episode():
    from agentrl.episode import Episode
    from agentrl.learner import _shuffled_minibatches

    groups = ["a"] * 3 + ["b"] * 2 + ["c"] * 4 + ["d"] * 1
    batch = Batch([], [Episode(g, g, f"{g}/{i}") for i, g in enumerate(groups)])
    gen = torch.Generator().manual_seed(0)
    chunks = _shuffled_minibatches(batch, 4, gen, by_group=True)
    assert sorted(i for c in chunks for i in c) == list(range(10))
    for chunk in chunks:
        for g in {groups[i] for i in chunk}:  # a group in a chunk is there whole
            assert sum(groups[i] == g for i in chunk) == groups.count(g)
        assert len(chunk) <= 4 or len({groups[i] for i in chunk}) == 1
    plain = _shuffled_minibatches(batch, 4, torch.Generator().manual_seed(0), by_group=False)
    assert [len(c) for c in plain] == [4, 4, 2] and sorted(sum(plain, [])) == list(range(10))


def test_duration_weighted_gradient_equals_the_hand_computed_one(tiny_model):
    """sum_k (dt_k / mean dt) * A_k * grad log pi(a_k | s_k), token-mean, on-policy (ratio 1)."""
    from agentrl.algorithms import GRPO
    from agentrl.episode import Episode, Turn

    learner = Learner(tiny_model, LearnerConfig(lr=1e-3, max_grad_norm=1e9, lora=LoraSettings(enabled=False)), seed=0)
    model = learner.model

    def turn(prompt, completion, duration):
        logps = _direct_logprobs(model, prompt + completion)[len(prompt):]
        return Turn(prompt, completion, logps, duration=duration)

    # two groups of two episodes; 2 + 1 + 1 + 1 turns with durations 1, 3, 2, 0.5, 3.5 (mean 2)
    episodes = [
        Episode("a", "a", "a0", [turn([5, 6], [7, 8], 1.0), turn([5, 6, 7, 8, 9], [10], 3.0)], reward=1.0),
        Episode("a", "a", "a1", [turn([5, 6], [9, 11], 2.0)], reward=0.0),
        Episode("b", "b", "b0", [turn([12, 13], [14], 0.5)], reward=1.0),
        Episode("b", "b", "b1", [turn([12, 13], [15, 16, 17], 3.5)], reward=0.5),
    ]
    algorithm = GRPO(duration_weighting=True, aggregation="token_mean", epochs=1, minibatch_episodes=0,
                     min_abs_advantage=0.0)
    batch = algorithm.prepare(episodes)
    assert [s.weight for s in batch.samples] == pytest.approx([0.5, 1.5, 1.0, 0.25, 1.75])
    assert batch.metrics["batch/duration_weight_max"] == pytest.approx(1.75)
    assert batch.metrics["batch/duration_weight_min"] == pytest.approx(0.25)

    # by hand: advantages per GRPO (mean/std per group), then -1/N sum_k w_k A_k sum_t grad log p
    group_adv = {}
    for g in ("a", "b"):
        r = torch.tensor([e.reward for e in episodes if e.group_id == g])
        adv = (r - r.mean()) / (r.std(unbiased=True) + 1e-6)  # Bessel, as GRPO does
        group_adv.update({e.episode_id: float(a) for e, a in zip([e for e in episodes if e.group_id == g], adv)})
    params = [p for p in model.parameters() if p.requires_grad]
    n_tokens = sum(len(t.completion_ids) for e in episodes for t in e.turns)
    weights = iter([0.5, 1.5, 1.0, 0.25, 1.75])
    model.zero_grad()
    for e in episodes:
        for t in e.turns:
            ids = t.prompt_ids + t.completion_ids
            logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, :-1].float(), -1)
            completion = sum(logp[i - 1, ids[i]] for i in range(len(t.prompt_ids), len(ids)))
            (-next(weights) * group_adv[e.episode_id] * completion / n_tokens).backward()
    expected = [p.grad.clone() for p in params]
    model.zero_grad()

    captured = []
    step = learner._optimizer_step
    learner._optimizer_step = lambda: (captured.append([p.grad.clone() for p in params]), step())[1]
    learner.update(batch, algorithm)
    assert len(captured) == 1
    for got, want in zip(captured[0], expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
