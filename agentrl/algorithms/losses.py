"""Per-token policy-gradient losses and how they are averaged."""
from __future__ import annotations

import torch


def ratio_bounds(mode: str, eps: float, eps_high: float | None = None) -> tuple[float, float]:
    """Clip range of the importance ratio.

    "loop": [1/(1+eps), 1+eps] (LOOP's symmetric-in-log-space clip);
    "ppo":  [1-eps, 1+eps_high] (eps_high defaults to eps; larger = DAPO's clip-higher).
    """
    if mode == "loop":
        return 1.0 / (1.0 + eps), 1.0 + eps
    if mode == "ppo":
        return 1.0 - eps, 1.0 + (eps if eps_high is None else eps_high)
    raise ValueError(f"unknown ratio_clip {mode!r} (known: loop, ppo)")


def clipped_surrogate(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, low: float, high: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's per-token loss -min(r A, clip(r, low, high) A) and where clipping was active."""
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * advantages
    clipped = ratio.clamp(low, high) * advantages
    return -torch.minimum(unclipped, clipped), (clipped < unclipped).float()


def aggregate(token_loss: torch.Tensor, mask: torch.Tensor, owner: torch.Tensor, mode: str) -> torch.Tensor:
    """Average a [rows, tokens] loss over the masked tokens.

    "episode_mean": mean over each episode's tokens, then over episodes (LOOP's 1/|a(x)|);
                    `owner[row]` is the episode each row (sequence) belongs to.
    "token_mean":   every token in the minibatch weighs the same.
    """
    mask = mask.float()
    if mode == "token_mean":
        return (token_loss * mask).sum() / mask.sum().clamp(min=1)
    if mode == "episode_mean":
        n = int(owner.max()) + 1
        per_row_sum, per_row_count = (token_loss * mask).sum(-1), mask.sum(-1)
        sums = torch.zeros(n, dtype=token_loss.dtype, device=token_loss.device).index_add(0, owner, per_row_sum)
        counts = torch.zeros(n, dtype=mask.dtype, device=mask.device).index_add(0, owner, per_row_count)
        present = counts > 0
        return (sums[present] / counts[present]).mean()
    raise ValueError(f"unknown loss aggregation {mode!r} (known: episode_mean, token_mean)")
