"""Terminal I/O for `agentrl watch` and `agentrl play`: keystrokes in (`Keys`), the episode out
(`Screen`). Nothing else in agentrl reads the keyboard, so the episode drivers
(agentrl/watch.py) stay plain code that tests can feed through a pipe or a pseudo-terminal.

Input is read from the stdin file descriptor a byte at a time, never through Python's
buffered `sys.stdin`: no typed-ahead input hides in a userspace buffer, so `select()` (used to
notice a key while an episode runs on) sees exactly what is pending, whether stdin is a
terminal or a pipe. On a terminal a key is one keystroke in cbreak mode (no Enter, no echo),
and a line is read in the terminal's own mode (edited, echoed); `Keys.session()` holds cbreak
for a whole episode so keys pressed while the agent plays are not echoed into its output.
From a pipe a key is the first character of the next line (an empty line is Enter).
"""
from __future__ import annotations

import contextlib
import os
import select
import sys
from typing import Any

try:  # POSIX terminals; elsewhere every stdin is read as lines
    import termios
    import tty
except ImportError:  # pragma: no cover - Windows
    termios = tty = None

ENTER = "\n"
QUIT = "q"
_CTRL_D = "\x04"


class Keys:
    """Single keys and whole lines from one file descriptor (stdin by default)."""

    def __init__(self, fd: int | None = None, out: Any = None) -> None:
        self.fd = sys.stdin.fileno() if fd is None else fd
        self.out = out or sys.stdout  # where prompts go
        self.is_tty = termios is not None and os.isatty(self.fd)
        self.eof = False
        self._saved: list | None = None  # the terminal's own mode while a session holds it in cbreak

    def _prompt(self, text: str) -> None:
        if text:
            self.out.write(text)
            self.out.flush()

    def _byte(self) -> bytes:
        data = os.read(self.fd, 1)
        if not data:
            self.eof = True
        return data

    def _line(self) -> str | None:
        raw = bytearray()
        while True:
            byte = self._byte()
            if not byte:
                return raw.decode(errors="replace") if raw else None
            if byte == b"\n":
                return raw.decode(errors="replace").rstrip("\r")
            raw += byte

    @contextlib.contextmanager
    def _mode(self, cbreak: bool):
        """The terminal in cbreak mode (keystrokes one by one, no Enter, no echo) or in its own
        mode (edited lines, echoed), put back afterwards, also on Ctrl-C (ISIG stays on)."""
        in_session = self._saved is not None
        if cbreak == in_session:  # already in that mode (a session holds cbreak; no session: lines)
            yield
            return
        saved = termios.tcgetattr(self.fd)
        try:
            if cbreak:
                tty.setcbreak(self.fd)
            else:
                termios.tcsetattr(self.fd, termios.TCSANOW, self._saved)
            yield
        finally:
            termios.tcsetattr(self.fd, termios.TCSANOW, saved)

    @contextlib.contextmanager
    def session(self):
        """Cbreak mode for a whole watched episode, so keys typed while the agent plays are
        neither echoed into the output nor stuck in an unfinished line (p is seen at once)."""
        if not self.is_tty or self._saved is not None:
            yield self
            return
        self._saved = termios.tcgetattr(self.fd)
        try:
            tty.setcbreak(self.fd)
            yield self
        finally:
            termios.tcsetattr(self.fd, termios.TCSANOW, self._saved)
            self._saved = None

    def _tty_key(self) -> str:
        byte = self._byte()
        key = byte.decode(errors="replace")
        if not byte or key == _CTRL_D:
            return QUIT
        return ENTER if key in ("\r", "\n") else key.lower()

    def _line_key(self) -> str:
        line = self._line()
        if line is None:
            return QUIT  # end of a piped input: nobody is left to press keys
        stripped = line.strip()
        return stripped[0].lower() if stripped else ENTER

    def read_key(self, prompt: str = "") -> str:
        """One key, lowercased: Enter is "\\n"; end of input (or Ctrl-D) is "q"."""
        if self.is_tty:
            with self._mode(cbreak=True):
                self._prompt(prompt)
                key = QUIT if self.eof else self._tty_key()
            self._prompt("\n")  # cbreak does not echo: end the prompt's line
            return key
        self._prompt(prompt)
        if self.eof:
            return QUIT
        key = self._line_key()
        self._prompt("\n")  # piped input is not echoed either
        return key

    def poll_key(self, timeout: float) -> str | None:
        """A key pressed within `timeout` seconds, else None (an episode running on checks
        for "p" between turns)."""
        if self.eof:
            return None
        with self._mode(cbreak=True) if self.is_tty else contextlib.nullcontext():
            ready, _, _ = select.select([self.fd], [], [], max(timeout, 0.0))
            if not ready:
                return None
            key = self._tty_key() if self.is_tty else self._line_key()
        return None if self.eof and key == QUIT else key

    def read_line(self, prompt: str = "") -> str | None:
        """A typed line without its newline; None at end of input (Ctrl-D)."""
        # the mode first: what is typed once the prompt shows is echoed (and edited) as a line
        with self._mode(cbreak=False) if self.is_tty else contextlib.nullcontext():
            self._prompt(prompt)
            line = None if self.eof else self._line()
        if not self.is_tty:  # a terminal echoes the typed line and its Enter; a pipe does not
            self._prompt("\n")
        return line


class Screen:
    """What a watched or played episode shows: observations verbatim, each action with who
    chose it, rewards. Colour only on a terminal (rich's Console decides; NO_COLOR is honoured)."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console

        self.console = console or Console(highlight=False)

    def _block(self, title: str, text: str, style: str) -> None:
        from rich.text import Text

        self.console.rule(Text(title, style=style), align="left", style=style)
        self.console.print(Text(text), soft_wrap=True)  # verbatim: no markup, no re-wrapping of grids

    def task(self, task_id: str, system_prompt: str | None) -> None:
        self.console.print(f"task {task_id}", style="bold", markup=False)
        if system_prompt:
            self._block("system prompt", system_prompt, "magenta")

    def observation(self, text: str, turn: int) -> None:
        self._block(f"observation (turn {turn})", text, "cyan")

    def prompt_ids(self, text: str) -> None:
        """The model's whole prompt, decoded from the exact ids it is given."""
        self._block("prompt (as the model sees it)", text, "bright_black")

    def action(self, actor: str, text: str) -> None:
        self._block(f"action ({actor})", text, "green" if actor == "agent" else "yellow")

    def step(self, turn: int, reward: float, total: float, done: bool, info: dict) -> None:
        flags = [k for k in ("success", "invalid_action") if info.get(k)]
        line = f"turn {turn}: reward {reward:+.3f}  total {total:+.3f}  done {'yes' if done else 'no'}"
        self.console.print(line + (f"  ({', '.join(flags)})" if flags else ""), style="bold", markup=False)

    def note(self, text: str) -> None:
        self.console.print(text, style="dim", markup=False)

    def summary(self, turns: int, total: float, success: bool, ending: str, person_turns: int = 0) -> None:
        played = f", {person_turns} played by you" if person_turns else ""
        self.console.rule("episode over", align="left")
        self.console.print(f"{ending}: {turns} turns{played}, total reward {total:+.3f}, "
                           f"success {'yes' if success else 'no'}", style="bold", markup=False)
