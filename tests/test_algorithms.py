"""Advantages and losses against hand-computed values."""
import math

import numpy as np
import pytest
import torch

from agentrl.algorithms import ALGORITHMS, GRPO, LOOP, RLOO, advantage_estimator, make_algorithm
from agentrl.algorithms.losses import aggregate, clipped_surrogate, ratio_bounds
from agentrl.episode import Episode, Turn


def test_leave_one_out_by_hand():
    # A_k = R_k - mean of the others: 1 - (0+0+1)/3 = 2/3 ; 0 - (1+0+1)/3 = -2/3
    np.testing.assert_allclose(advantage_estimator("loo")([1, 0, 0, 1]), [2 / 3, -2 / 3, -2 / 3, 2 / 3])
    np.testing.assert_allclose(advantage_estimator("loo")([3, 1, 2]), [1.5, -1.5, 0.0])
    # equals K/(K-1) * (R - mean R) (LOOP Eq. 3)
    r = np.array([0.2, 0.9, 0.4, 0.4, 0.0, 1.0])
    np.testing.assert_allclose(advantage_estimator("loo")(r), 6 / 5 * (r - r.mean()))
    assert advantage_estimator("loo")([5.0]).tolist() == [0.0]


def test_rloo_baseline_is_leave_one_out():
    np.testing.assert_allclose(advantage_estimator("rloo")([3, 1, 2]), [1.5, -1.5, 0.0])


def test_grpo_by_hand():
    # mean 2, sample std sqrt((1+1+0)/2) = 1
    np.testing.assert_allclose(advantage_estimator("grpo")([3, 1, 2]), [1, -1, 0], atol=1e-5)
    # mean .5, sample std sqrt(4 * .25 / 3) = 0.57735
    np.testing.assert_allclose(advantage_estimator("grpo")([1, 0, 0, 1]), [0.866025, -0.866025, -0.866025, 0.866025], atol=1e-5)
    assert np.all(advantage_estimator("grpo")([1, 1, 1]) == 0)
    np.testing.assert_allclose(advantage_estimator("group_mean")([3, 1, 2]), [1, -1, 0])


def test_unknown_estimator_is_named():
    with pytest.raises(ValueError, match="nope"):
        advantage_estimator("nope")


RATIOS = torch.tensor([[1.2, 0.85, 1.05, 0.5]])
ADV = torch.tensor([[1.0, 1.0, -1.0, -1.0]])


def test_loop_ratio_clip_is_asymmetric():
    low, high = ratio_bounds("loop", 0.1)
    assert low == pytest.approx(1 / 1.1) and high == pytest.approx(1.1)
    assert ratio_bounds("ppo", 0.1) == (pytest.approx(0.9), pytest.approx(1.1))
    assert ratio_bounds("ppo", 0.2, 0.28) == (pytest.approx(0.8), pytest.approx(1.28))


def test_clipped_surrogate_against_direct_formula():
    logp = torch.log(RATIOS).requires_grad_(True)
    loss, clipped = clipped_surrogate(logp, torch.zeros_like(logp), ADV, *ratio_bounds("loop", 0.1))
    # token by token: -min(r A, clip(r) A)
    #  r=1.2 A=+1: min(1.2, 1.1) -> -1.1 (clipped) ; r=0.85 A=+1: min(.85, .909) -> -.85
    #  r=1.05 A=-1: -1.05 both -> 1.05            ; r=0.5 A=-1: min(-.5, -.909) -> .909 (clipped)
    torch.testing.assert_close(loss, torch.tensor([[-1.1, -0.85, 1.05, 1 / 1.1]]))
    assert clipped.tolist() == [[1.0, 0.0, 0.0, 1.0]]
    loss.sum().backward()
    # d/dlogp of -r*A is -r*A where unclipped, 0 where the clip is active
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, -0.85, 1.05, 0.0]]))
    # PPO's symmetric clip differs on the low side: 0.9 instead of 1/1.1
    loss_ppo, _ = clipped_surrogate(torch.log(RATIOS), torch.zeros(1, 4), ADV, *ratio_bounds("ppo", 0.1))
    torch.testing.assert_close(loss_ppo, torch.tensor([[-1.1, -0.85, 1.05, 0.9]]))
    # clip-higher lets the positive-advantage token reach r=1.2
    loss_hi, _ = clipped_surrogate(torch.log(RATIOS), torch.zeros(1, 4), ADV, *ratio_bounds("ppo", 0.1, 0.3))
    assert loss_hi[0, 0].item() == pytest.approx(-1.2)


def test_aggregation_by_hand():
    token_loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 9.0], [6.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0]])
    # episode 0 = rows 0 and 2 (tokens 1,2,3,6 -> mean 3); episode 1 = row 1 (4,5 -> 4.5)
    owner = torch.tensor([0, 1, 0])
    assert aggregate(token_loss, mask, owner, "episode_mean").item() == pytest.approx((3 + 4.5) / 2)
    assert aggregate(token_loss, mask, owner, "token_mean").item() == pytest.approx(21 / 6)


def _episode(group, reward, failed=False):
    turn = Turn(prompt_ids=[1, 2], completion_ids=[3, 4], logprobs=[-0.1, -0.2])
    return Episode(task_id=group, group_id=group, episode_id=f"{group}/{reward}", turns=[turn], reward=reward, failed=failed)


def test_loop_prepare_drops_failed_and_small_advantages():
    eps = [_episode("a", 1.0), _episode("a", 0.0), _episode("a", 0.0, failed=True),
           _episode("b", 0.5), _episode("b", 0.5)]
    batch = LOOP().prepare(eps)
    # group a without the failed episode: [1, 0] -> A = [1, -1]; group b: A = 0 -> dropped
    assert [e.advantage for e in batch.episodes] == [1.0, -1.0]
    assert batch.metrics["batch/failed_episodes"] == 1.0
    assert [s.loss_mask for s in batch.samples] == [[0, 0, 1, 1]] * 2
    assert [s.episode for s in batch.samples] == [0, 1]


def test_registry_presets():
    assert set(ALGORITHMS) >= {"loop", "grpo", "rloo"}
    loop = make_algorithm("loop")
    assert (loop.clip_eps, loop.epochs, loop.minibatch_episodes, loop.min_abs_advantage) == (0.1, 2, 32, 0.01)
    assert isinstance(make_algorithm("grpo"), GRPO) and isinstance(make_algorithm("rloo"), RLOO)
    assert make_algorithm("rloo").epochs == 1 and make_algorithm("rloo").minibatch_episodes == 0
    with pytest.raises(ValueError, match="unknown algorithm"):
        make_algorithm("ppo-with-critic")


def test_loss_with_truncated_importance_weights():
    algo = LOOP(tis_cap=2.0)
    logp = torch.log(torch.tensor([[1.0, 1.0]]))
    old = torch.log(torch.tensor([[1.0, 1.0]]))
    behaviour = torch.log(torch.tensor([[0.25, 0.8]]))  # pi_old/pi_b = 4 -> capped 2 ; 1.25
    loss, _ = algo.loss(logp, old, behaviour, torch.tensor([1.0]), torch.tensor([1.0]), torch.ones(1, 2), torch.tensor([0]))
    assert loss.item() == pytest.approx(-(2.0 + 1.25) / 2)
    assert math.isfinite(loss.item())


def _turn_episode(group: str, states: list[int], rewards: list[float]) -> Episode:
    ep = Episode(task_id="t", group_id=group, episode_id=f"{group}/{len(states)}/{sum(rewards)}")
    ep.turns = [Turn(prompt_ids=[100, s], completion_ids=[7, 2], logprobs=[-0.1, -0.2], reward=r)
                for s, r in zip(states, rewards)]
    ep.reward = float(sum(rewards))
    return ep


def test_returns_to_go_by_hand():
    from agentrl.algorithms.step_credit import returns_to_go

    assert returns_to_go([0.0, 0.0, 1.0], 0.5) == [0.25, 0.5, 1.0]
    assert returns_to_go([1.0, 0.0, 2.0], 1.0) == [3.0, 2.0, 2.0]


def test_anchor_step_advantages_by_hand():
    """States 1 and 2 are shared. gamma 0.5: from state 1, episodes a and c reach the reward in
    3 turns (G = 0.25), b never (G = 0); leave-one-out: a, c: 0.25 - (0 + 0.25)/2 = 0.125,
    b: 0 - 0.25 = -0.25. State 2 (a, c): equal returns, 0. States seen once: 0. Other groups
    never share anchors, even with equal prompt ids."""
    from agentrl.algorithms.step_credit import anchor_step_advantages

    a = _turn_episode("g", [1, 2, 3], [0, 0, 1])
    b = _turn_episode("g", [1, 4, 5], [0, 0, 0])
    c = _turn_episode("g", [1, 2, 3], [0, 0, 1])
    other = _turn_episode("h", [1, 9], [0, 0])
    assert anchor_step_advantages([a, b, c, other], 0.5) == [
        [0.125, 0.0, 0.0], [-0.25, 0.0, 0.0], [0.125, 0.0, 0.0], [0.0, 0.0]]
    # a shorter route from the same state scores higher even when both succeed
    fast, slow = _turn_episode("s", [1, 2], [0, 1]), _turn_episode("s", [1, 5, 2], [0, 0, 1])
    assert anchor_step_advantages([fast, slow], 0.5)[0][0] == pytest.approx(0.5 - 0.25)


def test_step_credit_samples_one_per_turn():
    """LOOP's episode advantage (a, c: 1 - 0.5 = 0.5; b: -1) plus step_credit * step advantage,
    one sample per turn whose ids are that turn's prompt + completion."""
    a, b, c = (_turn_episode("g", [1, 2, 3], [0, 0, 1]), _turn_episode("g", [1, 4, 5], [0, 0, 0]),
               _turn_episode("g", [1, 2, 3], [0, 0, 1]))
    batch = LOOP(step_credit=2.0, step_gamma=0.5).prepare([a, b, c])
    assert [s.advantage for s in batch.samples] == pytest.approx(
        [0.5 + 2 * 0.125, 0.5, 0.5, -1 - 2 * 0.25, -1, -1, 0.5 + 2 * 0.125, 0.5, 0.5])
    assert [s.token_ids for s in batch.samples[:3]] == [[100, 1, 7, 2], [100, 2, 7, 2], [100, 3, 7, 2]]
    assert batch.samples[0].loss_mask == [0, 0, 1, 1] and batch.samples[0].behaviour_logprobs == [0, 0, -0.1, -0.2]
    assert [s.episode for s in batch.samples] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # every rollout succeeded the same way: no episode signal, and no step signal either
    same = [_turn_episode("z", [1, 2], [0, 1]) for _ in range(3)]
    assert LOOP(step_credit=1.0).prepare(same).samples == []
    with pytest.raises(ValueError, match="step_gamma"):
        LOOP(step_credit=1.0, step_gamma=0.0).validate()
