"""ReSim: "simulate, then act" reasoning traces from search trees grown in the real environment.

At a real state, `expand_tree` tries candidate actions by actually executing them (breadth b,
depth d) from a snapshot of the env, restoring the snapshot after each branch, so the env is
left exactly as it was. Leaves are valued by the env (success, or `state_value()` such as a
solver's distance), discounted by depth, and values back up by max. `compose_trace` turns a
tree into the text the policy learns to write: for each candidate, the next state it leads to
(taken from the real tree) and its value, then the chosen action; `parse_trace` reads such a
text back. `resim_episode` follows the tree's choice from a task's start, giving one trace per
visited state; `resim_dataset` writes them as a chat `datasets.Dataset` (TRL format).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from agentrl.env import Env, EnvConfig, Task, last_tagged


@dataclass
class Node:
    """A real state in the tree: reached by `action` from its parent (the root has action "")."""

    action: str
    observation: str
    reward: float = 0.0  # the env's reward for the step into this node
    done: bool = False
    success: bool = False
    value: float = 0.0  # backed-up value of this node, in [0, 1] for envs with state_value
    children: list[Node] = field(default_factory=list)

    def best(self) -> Node:
        """The child with the highest value (the first such, in candidate order)."""
        if not self.children:
            raise ValueError("a leaf has no best child")
        return max(self.children, key=lambda c: c.value)


def expand_tree(env: Env, observation: str, breadth: int, depth: int, gamma: float = 0.9) -> Node:
    """The tree of real outcomes of up to `breadth` candidate actions per state, `depth` levels deep,
    from the env's current state (`observation` is what the agent sees there). The env is restored
    to that state before returning."""
    if breadth < 1 or depth < 1:
        raise ValueError(f"breadth and depth must be >= 1 (got {breadth}, {depth})")
    root = Node("", observation)
    start = env.snapshot()
    try:
        _expand(env, root, start, breadth, depth, gamma)
    finally:
        env.restore(start)
    root.value = root.best().value
    return root


def _expand(env: Env, node: Node, state: Any, breadth: int, depth: int, gamma: float) -> None:
    for action in env.candidate_actions()[:breadth]:
        env.restore(state)
        step = env.step(action)
        child = Node(action, step.observation, step.reward, step.done, bool(step.info.get("success", False)))
        node.children.append(child)
        if child.done:
            child.value = 1.0 if child.success else 0.0
        elif depth > 1:
            _expand(env, child, env.snapshot(), breadth, depth - 1, gamma)
            child.value = gamma * child.best().value
        else:
            child.value = env.state_value() or 0.0


SIMULATION_OPEN, SIMULATION_CLOSE = '<simulate action="', "\n</simulate>\nvalue: "
VALUE = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass
class Simulation:
    action: str
    next_state: str
    value: float


def simulation_block(action: str, state: str) -> str:
    """One simulation as traces write it (a trace adds `value: v` after it; SimRollout's outcomes do not)."""
    return f'<simulate action="{action}">\n{state}\n</simulate>'


def _valued_simulations(tree: Node) -> list[str]:
    return [f"{simulation_block(c.action, c.observation)}\nvalue: {c.value:.2f}" for c in tree.children]


def compose_trace(tree: Node, reasoning: str | None = None) -> str:
    """The template composer: every candidate's real next state and value, then the best action
    (after `reasoning`, default "The best move is X.")."""
    choice = tree.best()
    reasoning = reasoning or f"The best move is {choice.action}."
    return "\n".join(["<think>", *_valued_simulations(tree), f"{reasoning}\n</think>\n<action>{choice.action}</action>"])


COMPOSE_INSTRUCTION = (
    "You are shown the real outcome of each candidate action from the current state, with its value "
    "(higher is better). In a few sentences, compare the candidates and say which action to take; end "
    "with it as <action>...</action>.\n\nCurrent state:\n{observation}\n\n{tree}"
)


class LMComposer:
    """The optional LM composer: an `Engine` (any model) writes the comparison of the candidates
    in place of the template's one line; the simulations stay the tree's real states, so traces
    still parse. An answer that does not pick the tree's best action is replaced by the template's."""

    def __init__(self, engine, max_new_tokens: int = 256, instruction: str = COMPOSE_INSTRUCTION) -> None:
        from agentrl.chat import ChatFormat

        self.engine, self.max_new_tokens, self.instruction = engine, max_new_tokens, instruction
        self.chat = ChatFormat(engine.tokenizer)
        self.composed = self.fallbacks = 0

    def __call__(self, tree: Node) -> str:
        from agentrl.engines.base import SamplingParams
        from agentrl.rollout import run_sync

        blocks = "\n".join(_valued_simulations(tree))
        prompt = self.chat.first_prompt(self.instruction.format(observation=tree.observation, tree=blocks))
        sampling = SamplingParams(temperature=0.0, max_new_tokens=self.max_new_tokens, seed=0)
        completion = run_sync(self.engine, self.engine.generate(prompt, sampling))
        text = self.engine.tokenizer.decode(completion.token_ids, skip_special_tokens=True)
        _, action = parse_trace(text)
        reasoning = text.rsplit("<action>", 1)[0].strip()
        if action != tree.best().action or not reasoning:
            self.fallbacks += 1
            return compose_trace(tree)
        self.composed += 1
        return compose_trace(tree, reasoning)


def parse_trace(text: str) -> tuple[list[Simulation], str | None]:
    """(simulations, action) out of a trace; the action is the last <action> tag (None if absent)."""
    sims = list(_simulations(text))
    action = last_tagged(text)
    return sims, (action.strip() if action is not None else None)


def _simulations(text: str):
    """Each `<simulate action="A">\nSTATE\n</simulate>\nvalue: V` block, scanning the text once (a
    lazy regex rescans the rest from every opening tag: seconds on a 100k-character model output)."""
    pos = 0
    while (start := text.find(SIMULATION_OPEN, pos)) >= 0:
        head = start + len(SIMULATION_OPEN)
        quote = text.find('"', head)
        if quote < 0 or not text.startswith('">\n', quote):
            pos = head
            continue
        close = text.find(SIMULATION_CLOSE, quote + 3)
        if close < 0:
            return
        value = VALUE.match(text, close + len(SIMULATION_CLOSE))
        if value is not None:
            yield Simulation(text[head:quote], text[quote + 3:close], float(value.group()))
        # every opening before `close` would end at the same close, so go on after it
        pos = value.end() if value is not None else close + 1


def simulation_accuracy(episodes: list) -> float | None:
    """How often the state a trace predicted for the action it took is the real next observation
    (over turns whose action is a trace that simulates its own choice); None without such turns."""
    hits = total = 0
    for episode in episodes:
        for turn in episode.turns:
            if "<simulate" not in turn.action:
                continue
            sims, action = parse_trace(turn.action)
            predicted = next((s.next_state for s in sims if s.action == action), None)
            if predicted is None:
                continue
            total += 1
            hits += predicted.strip("\n") == turn.observation.strip("\n")
    return hits / total if total else None


def resim_actions(env_config: EnvConfig, breadth: int, depth: int, max_steps: int = 50, composer=compose_trace):
    """A demonstrations source for SFT: the traces of `resim_episode` (None when it fails the task)."""
    def actions(task: Task) -> list[str] | None:
        episode = resim_episode(env_config, task, breadth, depth, max_steps, composer=composer)
        if not episode["success"]:
            return None
        return [m["content"] for m in episode["messages"] if m["role"] == "assistant"]

    return actions


def resim_episode(env_config: EnvConfig, task: Task, breadth: int, depth: int, max_steps: int = 50,
                  gamma: float = 0.9, composer=compose_trace) -> dict[str, Any]:
    """Play `task` by the tree's choice at every state; returns a row with one trace per state:
    `messages` (system, then observation -> trace turns), `examples` (one single-turn chat per
    state, for policies that see only the current observation) and whether it was solved."""
    env = env_config.make()
    try:
        observation = env.reset(task)
        system = [{"role": "system", "content": env.system_prompt}] if env.system_prompt else []
        messages, examples, success = list(system), [], False
        for _ in range(max_steps):
            trace = composer(expand_tree(env, observation, breadth, depth, gamma))
            messages += [{"role": "user", "content": observation}, {"role": "assistant", "content": trace}]
            examples.append([*system, {"role": "user", "content": observation}, {"role": "assistant", "content": trace}])
            step = env.step(trace)
            observation = step.observation
            if step.done:
                success = bool(step.info.get("success", False))
                break
        return {"task_id": task.id, "messages": messages, "examples": examples, "success": success}
    finally:
        env.close()


def resim_dataset(env_config: EnvConfig, tasks: list[Task], breadth: int, depth: int, *, max_steps: int = 50,
                  successful_only: bool = True, per_state: bool = True, composer=compose_trace):
    """A `datasets.Dataset` of ReSim chats: one row per visited state (`per_state`) or per episode."""
    import datasets

    rows = []
    for task in tasks:
        episode = resim_episode(env_config, task, breadth, depth, max_steps, composer=composer)
        if successful_only and not episode["success"]:
            continue
        if per_state:
            rows += [{"task_id": task.id, "messages": chat} for chat in episode["examples"]]
        else:
            rows.append({"task_id": task.id, "messages": episode["messages"]})
    if not rows:
        raise ValueError("no ReSim traces: the tree search solved none of the tasks")
    return datasets.Dataset.from_list(rows)
