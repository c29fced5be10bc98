"""Chat-template token pieces for multi-turn rollouts, without re-tokenizing history.

The first prompt is the template applied to (system, first observation). Every later
observation is appended as the template's *next user turn*: the text the template puts
between the end of an assistant message and the start of the next assistant message,
found once by rendering a placeholder conversation and cutting at the assistant's
end-of-turn token. Only that new piece is tokenized; earlier ids are never touched.
"""
from __future__ import annotations

from typing import Any

_ASSISTANT = "\u2063agentrl-assistant\u2063"
_OBSERVATION = "\u2063agentrl-observation\u2063"


class ChatFormat:
    def __init__(self, tokenizer: Any) -> None:
        if tokenizer.chat_template is None:
            raise ValueError("the tokenizer has no chat template; multi-turn rollouts need one")
        if tokenizer.eos_token is None:
            raise ValueError("the tokenizer has no eos token")
        self.tokenizer = tokenizer
        self.eos_id: int = tokenizer.eos_token_id
        self._before_obs, self._after_obs = self._next_user_turn_template()
        self._first_templates: dict[str | None, tuple[str, str]] = {}
        self._encoded: dict[str, tuple[int, ...]] = {}  # episodes revisit states: tokenize each text once

    def _render(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def _next_user_turn_template(self) -> tuple[str, str]:
        convo = [{"role": "user", "content": "x"}, {"role": "assistant", "content": _ASSISTANT}]
        text = self._render(convo + [{"role": "user", "content": _OBSERVATION}], add_generation_prompt=True)
        end_of_assistant = _ASSISTANT + self.tokenizer.eos_token
        cut = text.find(end_of_assistant)
        if cut < 0:
            raise ValueError(
                "cannot find where the chat template ends an assistant turn "
                f"(expected the eos token {self.tokenizer.eos_token!r} right after the message)"
            )
        between = text[cut + len(end_of_assistant):]
        before, sep, after = between.partition(_OBSERVATION)
        if not sep:
            raise ValueError("the chat template dropped the user message")
        return before, after

    def encode(self, text: str) -> list[int]:
        ids = self._encoded.get(text)
        if ids is None:
            ids = tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            if len(self._encoded) < 100_000:
                self._encoded[text] = ids
        return list(ids)

    def first_prompt(self, observation: str, system_prompt: str | None = None) -> list[int]:
        """Template ids of [system?, user: observation] + the generation prompt."""
        if system_prompt not in self._first_templates:
            messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
            messages.append({"role": "user", "content": _OBSERVATION})
            before, sep, after = self._render(messages, add_generation_prompt=True).partition(_OBSERVATION)
            if not sep:
                raise ValueError("the chat template dropped the user message")
            self._first_templates[system_prompt] = (before, after)
        before, after = self._first_templates[system_prompt]
        return self.encode(before + observation + after)

    def next_turn(self, observation: str, completion_ended: bool) -> list[int]:
        """Ids to append after an assistant completion: closes it if it was cut off,
        then the user turn with `observation`, then the generation prompt."""
        closing = [] if completion_ended else [self.eos_id]
        return closing + self.encode(self._before_obs + observation + self._after_obs)
