"""Instrumenters: insert print markers at an ML program's milestones before it runs.

The markers that appear in the run's output give partial credit (see `reward.py`). Each run
gets a fresh nonce, so a marker the program prints by itself (not knowing the nonce) counts
for nothing; reading its own instrumented source can reveal it, which is why milestones are
worth less together than any valid submission.

- `StaticInstrumenter` (default): deterministic rules over the program's syntax tree.
- `LMInstrumenter`: a frozen model, through any `Engine`, adds the prints (as in the paper);
  its answer is kept only when it differs from the program by marker prints alone, else the
  static rules are used.
"""
from __future__ import annotations

import ast
import re
import secrets

MILESTONES = ("imports", "data_loaded", "features_built", "model_trained", "predictions_made", "submission_written")
MARKER_PREFIX = "@@agentrl-milestone"
_LOADERS = {"read_csv", "read_parquet", "read_table", "read_json", "loadtxt", "genfromtxt", "load"}
_FITS = {"fit", "fit_transform", "fit_predict", "train", "partial_fit"}
_PREDICTS = {"predict", "predict_proba", "fit_predict", "decision_function"}
_WRITERS = {"to_csv", "savetxt", "writerow", "writerows", "to_parquet"}


def new_nonce() -> str:
    return secrets.token_hex(8)


def marker_statement(nonce: str, milestone: str) -> ast.stmt:
    return ast.parse(f"print({MARKER_PREFIX + ':' + nonce + ':' + milestone!r}, flush=True)").body[0]


def reached_milestones(output: str, nonce: str) -> list[str]:
    """The distinct milestones whose marker (with this run's nonce) the output contains, in stage order."""
    seen = set(re.findall(rf"^{re.escape(MARKER_PREFIX)}:{nonce}:(\w+)$", output, flags=re.M))
    return [m for m in MILESTONES if m in seen]


def strip_markers(output: str) -> str:
    """The output as the agent sees it: without marker lines."""
    return re.sub(rf"^{re.escape(MARKER_PREFIX)}:.*\n?", "", output, flags=re.M)


def _calls(node: ast.AST) -> set[str]:
    names = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            func = sub.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    return names


def _strings(node: ast.AST) -> str:
    return " ".join(s.value for s in ast.walk(node) if isinstance(s, ast.Constant) and isinstance(s.value, str))


def _milestones_of(stmt: ast.stmt) -> tuple[list[str], list[str]]:
    """(milestones reached just before `stmt` runs, milestones reached once it has run)."""
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return [], ["imports"]
    calls, text = _calls(stmt), _strings(stmt)
    before, after = [], []
    if calls & _LOADERS or ("open" in calls and "train" in text):
        after.append("data_loaded")
    if calls & _FITS:
        before.append("features_built")  # the program got its features as far as training
        after.append("model_trained")
    if calls & _PREDICTS:
        after.append("predictions_made")
    if calls & _WRITERS or ("open" in calls and "submission" in text):
        after.append("submission_written")
    return before, after


class StaticInstrumenter:
    """Markers after imports, data loading, fitting, predicting and writing; before fitting."""

    name = "static"

    def __call__(self, source: str, nonce: str) -> str:
        tree = ast.parse(source)
        tree.body = self._body(tree.body, nonce)
        return ast.unparse(ast.fix_missing_locations(tree)) + "\n"

    def _body(self, body: list[ast.stmt], nonce: str) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for stmt in body:
            for field in ("body", "orelse", "finalbody"):  # nested blocks first (functions, loops, with, try)
                inner = getattr(stmt, field, None)
                if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                    setattr(stmt, field, self._body(inner, nonce))
            for handler in getattr(stmt, "handlers", []) or []:
                handler.body = self._body(handler.body, nonce)
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out.append(stmt)
                continue
            header = stmt
            if isinstance(stmt, (ast.With, ast.For, ast.If, ast.While, ast.Try)):
                # only the header's own calls (its block was handled above)
                header = ast.Module(body=[ast.Expr(e) for e in _header_exprs(stmt)], type_ignores=[])
            before, after = _milestones_of(header) if header is not stmt else _milestones_of(stmt)
            out.extend(marker_statement(nonce, m) for m in before)
            out.append(stmt)
            out.extend(marker_statement(nonce, m) for m in after)
        return out


def _header_exprs(stmt: ast.stmt) -> list[ast.expr]:
    if isinstance(stmt, ast.With):
        return [item.context_expr for item in stmt.items]
    if isinstance(stmt, ast.For):
        return [stmt.iter]
    if isinstance(stmt, (ast.If, ast.While)):
        return [stmt.test]
    return []


LM_INSTRUCTION = """Add print statements to this Python program at its milestones, and change nothing else.
After the imports print "@@MILESTONE imports"; after loading the training data "@@MILESTONE data_loaded";
before training the model "@@MILESTONE features_built"; after training "@@MILESTONE model_trained";
after predicting "@@MILESTONE predictions_made"; after writing the submission "@@MILESTONE submission_written".
Each print is a statement of its own: print("@@MILESTONE <name>"). Answer with the whole program in one ```python block.

```python
{source}
```"""
_LM_MARKER = re.compile(r"^@@MILESTONE (\w+)$")


class LMInstrumenter:
    """A frozen LM adds the prints; accepted only if removing them gives back the program exactly
    (same syntax tree) and every print names a known milestone; otherwise the static rules."""

    name = "lm"

    def __init__(self, engine, max_new_tokens: int = 1024, instruction: str = LM_INSTRUCTION) -> None:
        from agentrl.chat import ChatFormat

        self.engine, self.max_new_tokens, self.instruction = engine, max_new_tokens, instruction
        self.chat = ChatFormat(engine.tokenizer)
        self.fallback = StaticInstrumenter()
        self.accepted = self.rejected = 0

    def __call__(self, source: str, nonce: str) -> str:
        from agentrl.engines.base import SamplingParams
        from agentrl.rollout import run_sync

        prompt = self.chat.first_prompt(self.instruction.format(source=source))
        sampling = SamplingParams(temperature=0.0, max_new_tokens=self.max_new_tokens, seed=0)
        try:
            completion = run_sync(self.engine, self.engine.generate(prompt, sampling))
            answer = self.engine.tokenizer.decode(completion.token_ids, skip_special_tokens=True)
        except Exception:  # noqa: BLE001 - a prompt too long or a dead server: the program still runs
            answer = ""
        instrumented = accept_lm_instrumentation(source, answer, nonce)
        if instrumented is None:
            self.rejected += 1
            return self.fallback(source, nonce)
        self.accepted += 1
        return instrumented


def accept_lm_instrumentation(source: str, answer: str, nonce: str) -> str | None:
    """The LM's program with its markers given this run's nonce, or None unless it adds only
    marker prints to `source`."""
    from .actions import code_block

    code = code_block(answer)
    if code is None:
        return None
    try:
        original, tree = ast.parse(source), ast.parse(code)
    except SyntaxError:
        return None
    ok = True

    class Markers(ast.NodeTransformer):
        def generic_visit(self, node):
            nonlocal ok
            super().generic_visit(node)
            for field in ("body", "orelse", "finalbody"):
                block = getattr(node, field, None)
                if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                    kept = []
                    for stmt in block:
                        name = _lm_marker(stmt)
                        if name is None:
                            kept.append(stmt)
                        elif name not in MILESTONES:
                            ok = False
                        else:
                            kept.append(("marker", name))
                    setattr(node, field, kept)
            return node

    Markers().visit(tree)
    if not ok:
        return None

    def without_markers(node: ast.AST) -> str:
        clone = ast.parse(ast.unparse(_replace(node, lambda name: None)))
        return ast.dump(clone)

    if without_markers(tree) != ast.dump(original):
        return None
    return ast.unparse(ast.fix_missing_locations(_replace(tree, lambda name: marker_statement(nonce, name)))) + "\n"


def _lm_marker(stmt: ast.stmt) -> str | None:
    """The milestone a `print("@@MILESTONE name")` statement names (a bad name for other @@ prints)."""
    if (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and getattr(stmt.value.func, "id", "") == "print"
            and len(stmt.value.args) == 1 and isinstance(stmt.value.args[0], ast.Constant)
            and isinstance(stmt.value.args[0].value, str) and stmt.value.args[0].value.startswith("@@")):
        match = _LM_MARKER.match(stmt.value.args[0].value)
        return match.group(1) if match else "?"
    return None


def _replace(tree: ast.AST, make) -> ast.AST:
    """A copy of `tree` whose ("marker", name) placeholders become make(name) (dropped when None)."""
    import copy

    tree = copy.deepcopy(tree)
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if isinstance(block, list) and any(isinstance(s, tuple) for s in block):
                new = []
                for stmt in block:
                    if isinstance(stmt, tuple):
                        made = make(stmt[1])
                        if made is not None:
                            new.append(made)
                    else:
                        new.append(stmt)
                setattr(node, field, new or [ast.Pass()])
    return tree
