"""The interactive CLI through a pseudo-terminal, as a person uses it: `agentrl watch` (step,
continue/pause, take over and hand back, quit), `agentrl play` (a seeded Sokoban level solved by
typing the solver's moves) and `agentrl eval`'s table. What the screen shows is checked against
independent references: the env stepped directly, the episodes `agentrl eval` wrote, and the
model's greedy answer computed with transformers' own `generate`."""
from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

import numpy as np
import pytest

from agentrl.cli import SUBCOMMANDS, main

SOKOBAN = ["--env", "sokoban", "--env.width", "5", "--env.height", "5", "--env.num_boxes", "1",
           "--env.max_solution_length", "6", "--env.instructions", "false"]  # conftest's sokoban_env
AGENT = SOKOBAN + ["--engine", "hf", "--rollout.max_new_tokens", "4", "--rollout.history", "0",
                   "--rollout.max_turns", "20"]
EVAL_TASKS = 6
KEYS_PROMPT = "[t] take over  [q] quit > "  # the prompt itself, not the start-up note
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()=>][0-9A-Za-z]?")
HEADER = re.compile(r"^(observation \(turn (\d+)\)|action \((agent|you)\)|episode over|system prompt"
                    r"|prompt \(as the model sees it\)) ─+\s*$")
UI_LINES = ("[Enter/space/n]", "you> ", "action> ", "continuing:", "you play:", "the agent plays again", "keys:",
            "type an action", "turn ")


def clean(raw: bytes) -> str:
    return ANSI.sub("", raw.decode(errors="replace")).replace("\r\n", "\n").replace("\r", "")


class Terminal:
    """`agentrl ARGS` on a pseudo-terminal (stdin, stdout and stderr), read like a screen."""

    def __init__(self, args: list[str], cols: int = 160) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, cols, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(cols)}
        env.pop("NO_COLOR", None)
        # its own session with the pty as controlling terminal, as in a real one (so Ctrl-C is SIGINT)
        self.proc = subprocess.Popen([sys.executable, "-m", "agentrl.cli", *args], stdin=slave, stdout=slave,
                                     stderr=slave, env=env, close_fds=True, start_new_session=True,
                                     preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)
        self.fd, self.raw, self.pos, self.closed = master, b"", 0, False

    def _read(self, timeout: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if ready:
            try:
                data = os.read(self.fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                data = b""
            self.raw += data
            self.closed = self.closed or not data

    @property
    def text(self) -> str:
        return clean(self.raw)

    def expect(self, needle: str, timeout: float = 90) -> str:
        """Wait until `needle` is shown after everything expected so far; returns the text before it."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.text
            found = text.find(needle, self.pos)
            if found >= 0:
                before, self.pos = text[self.pos:found], found + len(needle)
                return before
            if self.closed or time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} was not shown; the screen ends with:\n{text[-4000:]}")
            self._read(min(0.5, max(deadline - time.monotonic(), 0.01)))

    def send(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def finish(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self._read(0.5)
        try:
            return self.proc.wait(timeout=max(deadline - time.monotonic(), 1))
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        try:
            os.close(self.fd)
        except OSError:
            pass


@pytest.fixture
def terminals():
    started: list[Terminal] = []

    def start(args: list[str]) -> Terminal:
        started.append(Terminal(args))
        return started[-1]

    yield start
    for term in started:  # a failed test leaves no process behind
        term.close()


def events(text: str) -> list[tuple[str, str]]:
    """The screen as (kind, content): ("observation", grid text), ("action agent"/"action you", text),
    ("step", the reward line), ("over", the summary line)."""
    out: list[list] = []
    current = None
    lines = text.split("\n")
    for i, line in enumerate(lines):
        head = HEADER.match(line)
        if head:
            kind = {"o": "observation", "a": f"action {head.group(3)}", "e": "over", "s": "system",
                    "p": "prompt"}[head.group(1)[0]]
            current = [kind, []]
            out.append(current)
            if kind == "over":
                current[1].append(lines[i + 1] if i + 1 < len(lines) else "")
                current = None
            continue
        if line.startswith("turn ") and re.match(r"turn \d+: reward", line):
            out.append(["step", [line]])
            current = None
        elif current is not None and line.startswith(UI_LINES):
            current = None
        elif current is not None:
            current[1].append(line)
    return [(kind, "\n".join(l.rstrip() for l in body).strip("\n")) for kind, body in out]


def shown(text: str) -> str:
    """An observation or action as the screen shows it: line ends and trailing blanks aside."""
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def step_line(turn: int, reward: float, total: float, done: bool, info: dict) -> str:
    flags = [k for k in ("success", "invalid_action") if info.get(k)]
    return (f"turn {turn}: reward {reward:+.3f}  total {total:+.3f}  done {'yes' if done else 'no'}"
            + (f"  ({', '.join(flags)})" if flags else ""))


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, sft_model):
    """`agentrl eval` run on a terminal: its screen, the episodes it wrote, its plot."""
    from agentrl.episode import load_episodes

    out = tmp_path_factory.mktemp("eval")
    term = Terminal(["eval", "--model", sft_model, *AGENT, "--eval.tasks", str(EVAL_TASKS),
                     "--out", str(out / "episodes.jsonl"), "--plot", str(out / "episodes.png")])
    assert term.finish(timeout=180) == 0, term.text[-3000:]
    return term.text, load_episodes(str(out / "episodes.jsonl")), out / "episodes.png"


def test_eval_table_equals_the_jsonl_it_writes(evaluated):
    screen, episodes, plot = evaluated
    assert len(episodes) == EVAL_TASKS
    turns = [t for e in episodes for t in e.turns]
    expected = {  # computed here from the JSONL, not with agentrl's summarize
        "success_rate": 100 * np.mean([e.success for e in episodes]),
        "mean_reward": np.mean([sum(t.reward for t in e.turns) for e in episodes]),
        "mean_steps": len(turns) / len(episodes),
        "invalid_action_rate": 100 * np.mean([bool(t.info.get("invalid_action")) for t in turns]),
        "failed": float(sum(e.failed for e in episodes)),
        "loop_rate": 100 * np.mean([len({e.initial_observation, *(t.observation for t in e.turns)}) < 1 + len(e.turns)
                                    for e in episodes]),
    }
    table = {m.group(1): float(m.group(2)) for m in re.finditer(r"│ (\w+)\s+│\s+(-?[\d.]+)%? │", screen)}
    assert set(table) == set(expected)
    for key, value in expected.items():
        assert table[key] == pytest.approx(value, abs=0.05 if key.endswith("rate") else 5e-4), key
    assert 0 < expected["success_rate"] < 100 or expected["mean_steps"] > 1  # a table with something in it
    assert f"{EVAL_TASKS}/{EVAL_TASKS}" in screen  # the progress bar, shown on a terminal
    import matplotlib.image

    assert matplotlib.image.imread(str(plot)).shape[:2] == (360, 900)  # the --plot PNG (9x3.6 in at 100 dpi)


def _watched_task(episodes) -> int:
    """An eval episode long enough to step, take over and hand back in (the agent does not win it)."""
    return max(i for i, e in enumerate(episodes) if not e.success and e.num_turns >= 4)


def test_watch_no_pause_replays_the_eval_episode(evaluated, sft_model, terminals):
    _, episodes, _ = evaluated
    index = _watched_task(episodes)
    reference = episodes[index]
    term = terminals(["watch", "--model", sft_model, *AGENT, "--task", str(index), "--no-pause", "--delay", "0"])
    assert term.finish(timeout=120) == 0, term.text[-3000:]
    seen = events(term.text)
    expected = [("observation", shown(reference.initial_observation))]
    total = 0.0
    for n, turn in enumerate(reference.turns, 1):
        total += turn.reward
        done = n == reference.num_turns and reference.finish_reason == "done"
        expected += [("action agent", shown(turn.action)), ("step", step_line(n, turn.reward, total, done, turn.info)),
                     ("observation", shown(turn.observation))]
    assert seen[:-1] == expected
    assert seen[-1] == ("over", f"{reference.finish_reason}: {reference.num_turns} turns, total reward "
                                f"{reference.reward:+.3f}, success no")


def test_watch_step_take_over_hand_back_quit(evaluated, sft_model, sokoban_env, terminals):
    """n: the agent's first move; t + a typed move: the person's; a: the agent again, from the
    state the person left (its greedy answer there, from transformers' own generate); q: quit."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, episodes, _ = evaluated
    index = _watched_task(episodes)
    reference = episodes[index]
    env = sokoban_env.make()
    task = sokoban_env.tasks("test", index + 1, 12345)[index]
    assert shown(env.reset(task)) == shown(reference.initial_observation)
    first = env.step(reference.turns[0].action)
    snapshot = env.snapshot()

    def ends(move: str) -> bool:
        env.restore(snapshot)
        return env.step(move).done

    move = next(m for m in ("up", "down", "left", "right") if not ends(m))  # the person's move keeps it going
    env.restore(snapshot)
    mine = env.step(move)

    tokenizer = AutoTokenizer.from_pretrained(sft_model)
    model = AutoModelForCausalLM.from_pretrained(sft_model)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": mine.observation}], tokenize=False,
                                           add_generation_prompt=True)
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    greedy = model.generate(ids, max_new_tokens=4, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.eos_token_id)
    agent_again = tokenizer.decode(greedy[0, ids.shape[1]:], skip_special_tokens=True)
    third = env.step(agent_again)

    term = terminals(["watch", "--model", sft_model, *AGENT, "--task", str(index)])
    term.expect(KEYS_PROMPT)
    term.send("n")
    term.expect(KEYS_PROMPT)
    term.send("t")
    term.expect("you> ")
    term.send(move + "\n")
    term.expect("you> ")
    term.send("a\n")
    term.expect("the agent plays again")
    ending = "done yes" if third.done else KEYS_PROMPT
    term.expect("turn 3: reward")
    if not third.done:
        term.expect(KEYS_PROMPT)
        term.send("q")
    assert term.finish() == 0, term.text[-3000:]

    seen = events(term.text)
    t1, t2, t3 = first.reward, first.reward + mine.reward, first.reward + mine.reward + third.reward
    assert seen == [
        ("observation", shown(reference.initial_observation)),
        ("action agent", shown(reference.turns[0].action)), ("step", step_line(1, first.reward, t1, False, first.info)),
        ("observation", shown(first.observation)),
        ("action you", move), ("step", step_line(2, mine.reward, t2, False, mine.info)),
        ("observation", shown(mine.observation)),
        ("action agent", shown(agent_again)), ("step", step_line(3, third.reward, t3, third.done, third.info)),
        ("observation", shown(third.observation)),
        ("over", f"{'done' if third.done else 'quit'}: 3 turns, 1 played by you, total reward {t3:+.3f}, "
                 f"success {'yes' if third.info.get('success') else 'no'}"),
    ], ending


def test_watch_continue_then_pause_then_ctrl_c(evaluated, sft_model, terminals):
    """c runs on by itself; p (pressed while it runs) stops it before the next turn; Ctrl-C at the
    prompt ends the program at once (exit 130) with the terminal's mode restored. --show-prompt
    shows the model's prompt: the chat template around the observation."""
    from transformers import AutoTokenizer

    _, episodes, _ = evaluated
    index = _watched_task(episodes)
    tokenizer = AutoTokenizer.from_pretrained(sft_model)
    expected_prompt = tokenizer.apply_chat_template([{"role": "user", "content": episodes[index].initial_observation}],
                                                    tokenize=False, add_generation_prompt=True)
    term = terminals(["watch", "--model", sft_model, *AGENT, "--task", str(index), "--delay", "3", "--show-prompt"])
    term.expect(KEYS_PROMPT)
    modes = termios.tcgetattr(term.fd)
    assert not modes[3] & termios.ICANON and not modes[3] & termios.ECHO  # cbreak while watching
    term.send("c")
    term.expect("turn 1: reward")
    term.send("p")
    before_prompt = term.expect(KEYS_PROMPT)
    assert "turn 2: reward" not in before_prompt  # paused before the agent's second move
    term.send("\x03")
    started = time.monotonic()
    modes_after = None
    while term.proc.poll() is None and time.monotonic() - started < 30:
        term._read(0.2)
    modes_after = termios.tcgetattr(term.fd)
    assert term.finish() == 130 and time.monotonic() - started < 30
    assert modes_after[3] & termios.ICANON and modes_after[3] & termios.ECHO  # line mode again
    seen = events(term.text)
    assert [k for k, _ in seen] == ["observation", "prompt", "action agent", "step", "observation"]
    assert seen[1][1] == shown(expected_prompt) and seen[1][1].startswith("<|im_start|>user")


def test_watch_from_a_pipe(evaluated, sft_model):
    """Keys as lines from a pipe: Enter, then q; the end of the input would quit as well."""
    _, episodes, _ = evaluated
    index = _watched_task(episodes)
    done = subprocess.run([sys.executable, "-m", "agentrl.cli", "watch", "--model", sft_model, *AGENT,
                           "--task", str(index)], input="\nq\n", capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    seen = events(done.stdout)
    assert seen[1] == ("action agent", shown(episodes[index].turns[0].action))
    assert [k for k, _ in seen] == ["observation", "action agent", "step", "observation", "over"]
    assert seen[-1][1].startswith("quit: 1 turns") and "\x1b" not in done.stdout


def test_play_sokoban_with_the_solver_moves(terminals):
    """A person plays a seeded level: an invalid action, then the optimal solution. After every
    action the screen shows exactly the env's own observation and reward."""
    from agentrl_sokoban import SokobanConfig

    cfg = SokobanConfig(width=5, height=5, num_boxes=1, max_solution_length=6, instructions=False,
                        floor_symbol="_", step_penalty=0.1)
    seed, index = 7, 2
    task = cfg.tasks("test", index + 1, seed)[index]
    moves = ["jump"] + cfg.expert_actions(task)
    env = cfg.make()
    expected = [("observation", shown(env.reset(task)))]
    total = 0.0
    for n, move in enumerate(moves, 1):
        step = env.step(move)
        total += step.reward
        expected += [("action you", move), ("step", step_line(n, step.reward, total, step.done, step.info)),
                     ("observation", shown(step.observation))]
    assert step.done and step.info["success"]
    expected.append(("over", f"done: {len(moves)} turns, total reward {total:+.3f}, success yes"))

    term = terminals(["play", *SOKOBAN, "--env.floor_symbol", "_", "--env.step_penalty", "0.1",
                      "--eval.seed", str(seed), "--task", str(index)])
    for move in moves:
        term.expect("action> ")
        term.send(move + "\n")
    assert term.finish() == 0, term.text[-3000:]
    assert events(term.text) == expected
    assert "\x1b[" in term.raw.decode(errors="replace")  # styled on a terminal


def test_play_from_a_pipe_quits_and_has_no_colour():
    done = subprocess.run([sys.executable, "-m", "agentrl.cli", "play", *SOKOBAN, "--task", "1"],
                          input="left\nquit\n", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "\x1b" not in done.stdout  # not a terminal: plain text
    assert "action (you)" in done.stdout and "turn 1: reward" in done.stdout
    assert "quit: 1 turns" in done.stdout


def test_bad_task_index_is_named(capsys):
    assert main(["play", *SOKOBAN, "--task", "-1"]) == 2
    assert "--task" in capsys.readouterr().out


def test_help_lists_every_command_and_stays_light(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    listing = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in listing
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0 and f"usage: agentrl {name}" in capsys.readouterr().out
    probe = ("import sys; from agentrl.cli import build_parser; build_parser().format_help(); "
             "print(json.dumps(sorted(m for m in ('torch', 'transformers', 'huggingface_hub', 'rich') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", "import json; " + probe], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
