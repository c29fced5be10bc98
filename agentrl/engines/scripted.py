"""An engine that plays a fixed list of action texts: demonstrations through the real rollout.

Used to turn an environment's expert actions into episodes with exactly the token layout
the policy's own rollouts have (same chat template, same history handling).
"""
from __future__ import annotations

from agentrl.engines.base import Completion, Engine, SamplingParams, WeightUpdate


class ScriptedEngine(Engine):
    def __init__(self, tokenizer, actions: list[str], max_model_len: int) -> None:
        self.tokenizer, self.max_model_len = tokenizer, max_model_len
        self._actions = list(actions)

    async def generate(self, prompt_ids: list[int], sampling: SamplingParams) -> Completion:
        if not self._actions:
            raise RuntimeError("the script has no actions left")
        ids = self.tokenizer(self._actions.pop(0), add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
        return Completion(ids, [0.0] * len(ids), "stop")

    def sync(self, update: WeightUpdate) -> None:
        raise NotImplementedError("a scripted engine has no weights")
