"""Run configuration: nested dataclasses, YAML files and `--dotted.path value` flags.

A recipe builds its preset as a dataclass instance and calls `parse_config(preset)`:
`--config run.yaml` is applied first, then every `--key value` in order, then the
whole tree is validated, so a bad field fails at start with a message naming it.
Keys are dotted paths (`--learner.lr 1e-5`) or any unique suffix (`--lr 1e-5`);
dashes equal underscores. Field sets come from the *runtime* class of each value,
so an `env: EnvConfig` field holding a `SokobanConfig` accepts `--env.num_boxes`.
`--config` and `--help` are reserved. `__post_init__` methods are re-run after
overrides (so they must be idempotent), then each optional `validate(self)`.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import enum
import functools
import inspect
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

T = TypeVar("T")
_UNIONS = (Union, types.UnionType)
_NONES = {"none", "null", "~"}
_TRUE, _FALSE = {"true", "1", "yes", "y", "on"}, {"false", "0", "no", "n", "off"}
_NAMES = {int: "an int", float: "a float", str: "a string", bool: "a bool (true/false)", type(None): "None"}


class ConfigError(ValueError):
    """A config field could not be set or failed validation; the message names the field."""


def _mismatch(path: str, tp: Any, value: Any) -> ConfigError:
    error = ConfigError(f"{path}: expected {_expected(tp)}, got {value!r}")
    error.mismatch_at = path  # lets a union tell "wrong member" from "wrong deeper element"
    return error


def _is_dc(obj: Any) -> bool:
    return dataclasses.is_dataclass(obj) and not isinstance(obj, type)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _norm(key: str) -> str:
    return key.replace("-", "_")


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    # get_type_hints resolves the string annotations of `from __future__ import annotations`.
    try:
        hints = typing.get_type_hints(cls)
    except NameError as e:
        raise TypeError(f"cannot resolve the annotations of config class {cls.__qualname__}: {e}") from None
    # init=False fields are derived (recomputed by __post_init__), so they are not settable.
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}


def _walk(obj: Any, prefix: str = ""):
    """Yield (path, owner, name, annotation) for every field, sections included."""
    for name, hint in _hints(type(obj)).items():
        path = _join(prefix, name)
        yield path, obj, name, hint
        value = getattr(obj, name)
        if _is_dc(value):
            yield from _walk(value, path)
        elif isinstance(value, dict):  # named sub-configs (a multi-task env's families) by their key
            for key, item in value.items():
                if _is_dc(item):
                    yield from _walk(item, _join(path, str(key)))


def _leaves(obj: Any, prefix: str = "") -> list[str]:
    return [p for p, owner, name, _ in _walk(obj, prefix) if not _is_dc(getattr(owner, name))]


def _type_str(tp: Any) -> str:
    """`int | None`, `list[float]`, `Literal['a', 'b']`: short names, no module paths."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is type(None) or tp is Ellipsis:
        return "None" if tp is type(None) else "..."
    if origin in _UNIONS:
        return " | ".join(map(_type_str, args))
    if origin is Literal:
        return f"Literal[{', '.join(map(repr, args))}]"
    if origin is not None:
        return f"{getattr(origin, '__name__', origin)}[{', '.join(map(_type_str, args))}]"
    return getattr(tp, "__name__", repr(tp))


def _expected(tp: Any) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if origin in _UNIONS:
        return " or ".join(_expected(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin in (list, tuple) or tp in (list, tuple):
        return f"a comma-separated list ({_type_str(tp)})"
    if origin is dict or tp is dict:
        return f"a mapping ({_type_str(tp)})"
    return _NAMES.get(tp) or f"a {_type_str(tp)}"


def _unknown(key: str, paths: list[str]) -> ConfigError:
    # Match against full paths and bare leaf names, but always suggest full paths.
    targets: dict[str, list[str]] = {}
    for p in paths:
        targets.setdefault(p, []).append(p)
        if "." in p:
            targets.setdefault(p.rsplit(".", 1)[-1], []).append(p)
    close = difflib.get_close_matches(_norm(key), list(targets), n=3, cutoff=0.6)
    guesses = list(dict.fromkeys(p for c in close for p in targets[c]))
    hint = f" (did you mean {' or '.join(map(repr, guesses))}?)" if guesses else ""
    return ConfigError(f"unknown config field {key!r}{hint}")


def _yaml(text: str, path: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: cannot parse {text!r} as YAML ({e})") from None


def _convert(value: Any, tp: Any, path: str, cli: bool) -> Any:
    """Check `value` against annotation `tp`; strings are parsed (CLI values are all strings)."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any or tp is object:
        return _yaml(value, path) if cli and isinstance(value, str) else value
    if tp is type(None) or origin in _UNIONS:
        members = args if origin in _UNIONS else (tp,)
        # A YAML string "none" stays a string where str is allowed; on the CLI it always means None.
        if value is None or (isinstance(value, str) and value.lower() in _NONES and (cli or str not in members)):
            if type(None) in members:
                return None
        for member in (m for m in members if m is not type(None)):
            try:
                return _convert(value, member, path, cli)
            except ConfigError as e:
                if getattr(e, "mismatch_at", None) != path:  # a deeper element was wrong: that message is more precise
                    raise
        raise _mismatch(path, tp, value)
    if origin is Literal:
        for choice in args:
            if (value == choice and type(value) is type(choice)) or (isinstance(value, str) and value == str(choice)):
                return choice
        raise _mismatch(path, tp, value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower() if isinstance(value, (str, int)) else None
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise _mismatch(path, tp, value)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("+-").isdecimal():
            return int(value)
        number = _as_float(value)  # integral floats are fine ("1e6", 2.0); 1.5 is not
        return int(number) if number is not None and number.is_integer() else _fail(path, tp, value)
    if tp is float:
        number = _as_float(value)
        return number if number is not None else _fail(path, tp, value)
    if tp is str:
        return value if isinstance(value, str) else _fail(path, tp, value)
    if origin in (list, tuple) or tp in (list, tuple):
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                value, cli = _yaml(text, path), False
            else:
                value = [part.strip() for part in text.split(",")] if text else []
        if not isinstance(value, (list, tuple)):
            raise _mismatch(path, tp, value)
        kind = origin or tp
        if kind is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{path}: expected {len(args)} items ({_type_str(tp)}), got {value!r}")
            return tuple(_convert(v, a, f"{path}[{i}]", cli) for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        return kind(_convert(v, item, f"{path}[{i}]", cli) for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if isinstance(value, str):
            value = _yaml(value, path) if value.strip() else {}
        if not isinstance(value, dict):
            raise _mismatch(path, tp, value)
        kt, vt = args or (Any, Any)
        return {_convert(k, kt, path, False): _convert(v, vt, f"{path}.{k}", False) for k, v in value.items()}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return copy.deepcopy(value)
        if cli and isinstance(value, str):
            value = _yaml(value, path)
        return _build(tp, value, path)
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        try:  # Path, Enum (by value) and other classes built from their text
            return tp(value)
        except Exception:
            raise _mismatch(path, tp, value) from None
    return value  # an annotation we do not understand: take the value as given


def _fail(path: str, tp: Any, value: Any):
    raise _mismatch(path, tp, value)


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _build(cls: type, mapping: Any, path: str) -> Any:
    """A new `cls` from a mapping (used where a section is None or inside containers)."""
    if not isinstance(mapping, dict):
        raise _mismatch(path, cls, mapping)
    hints, kwargs = _hints(cls), {}
    for key, value in mapping.items():
        name = _norm(str(key))
        if name not in hints:
            raise _unknown(_join(path, str(key)), [_join(path, n) for n in hints])
        kwargs[name] = _convert(value, hints[name], _join(path, name), False)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{path}: {e}") from None


def _set(owner: Any, name: str, hint: Any, value: Any, path: str, cli: bool) -> None:
    current = getattr(owner, name)
    if _is_dc(current):  # a mapping merges into the existing section, keeping its runtime class
        parsed = _yaml(value, path) if cli and isinstance(value, str) else value
        if isinstance(parsed, dict):
            return _apply(current, parsed, path)
        shorthand = getattr(type(current), "__shorthand__", None)
        if shorthand and isinstance(parsed, str):  # `engine: vllm` sets the section's main field
            return _apply(current, {shorthand: parsed}, path)
    elif isinstance(current, dict) and current and all(_is_dc(v) for v in current.values()):
        # named sub-configs merge key by key, each keeping its class (a saved config.yaml loads back);
        # their classes are only known in code, so a new key cannot be created from a flag or YAML
        parsed = _yaml(value, path) if cli and isinstance(value, str) else value
        if not isinstance(parsed, dict):
            raise ConfigError(f"{path}: expected a mapping of {', '.join(map(str, current))} to their fields")
        for key, fields in parsed.items():
            if str(key) not in current:
                raise ConfigError(f"{_join(path, str(key))}: not in this config ({', '.join(map(str, current))}); "
                                  "new entries are added in code, e.g. in a recipe's preset")
            _apply(current[str(key)], fields, _join(path, str(key)))
        return None
    # object.__setattr__ so frozen config dataclasses can be overridden too (we own this copy).
    object.__setattr__(owner, name, _convert(value, hint, path, cli))


def _apply(obj: Any, mapping: Any, prefix: str) -> None:
    if not isinstance(mapping, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {mapping!r}")
    hints = _hints(type(obj))
    for key, value in mapping.items():
        name = _norm(str(key))
        if name not in hints:
            raise _unknown(_join(prefix, str(key)), _leaves(obj, prefix))
        _set(obj, name, hints[name], value, _join(prefix, name), cli=False)


def _lookup(cfg: Any, key: str) -> tuple[str, Any, str, Any]:
    """Resolve a flag to (path, owner, name, annotation): exact path, else a unique suffix."""
    entries = {path: (path, owner, name, hint) for path, owner, name, hint in _walk(cfg)}
    norm = _norm(key)
    if norm in entries:
        return entries[norm]
    matches = [p for p in entries if p.endswith("." + norm)]
    if len(matches) == 1:
        return entries[matches[0]]
    if matches:
        raise ConfigError(f"ambiguous config field {key!r}: matches {', '.join(matches)}; use the full path")
    raise _unknown(key, _leaves(cfg))


def _split_argv(argv: list[str]) -> list[tuple[str, str | None]]:
    """`--k v` / `--k=v` / bare `--k` (value None) pairs, in order."""
    pairs, i = [], 0
    while i < len(argv):
        token = argv[i]
        if token in ("-h", "--help"):
            pairs.append(("help", None))
        elif not token.startswith("--") or token == "--":
            raise ConfigError(f"unexpected positional argument {token!r} (config flags look like --key value)")
        else:
            key, eq, value = token[2:].partition("=")
            if not eq:
                nxt = argv[i + 1] if i + 1 < len(argv) else None
                value = None if nxt is None or nxt.startswith("--") or nxt == "-h" else nxt
                i += value is not None
            pairs.append((key, value))
        i += 1
    return pairs


def _help(cfg: Any, prog: str) -> str:
    rows = [(f"--{p}", f"({_type_str(h)})", repr(getattr(o, n))) for p, o, n, h in _walk(cfg) if not _is_dc(getattr(o, n))]
    rows.insert(0, ("--config PATH", "(YAML file)", "applied before the other flags"))
    w1, w2 = (max(len(r[k]) for r in rows) for k in (0, 1))
    lines = [f"usage: {prog} [--config PATH] [--dotted.field VALUE ...]",
             "A field's bare name works as a key when it is unique. Defaults (after --config):", ""]
    return "\n".join(lines + [f"  {a.ljust(w1)}  {b.ljust(w2)}  {c}" for a, b, c in rows])


def parse_config(default: T, argv: list[str] | None = None, *, prog: str | None = None) -> T:
    """A validated copy of the preset `default` with `--config` YAML and `--key value` flags applied."""
    if not _is_dc(default):
        raise TypeError(f"parse_config needs a dataclass instance, got {type(default).__name__}")
    pairs = _split_argv(sys.argv[1:] if argv is None else list(argv))
    cfg = copy.deepcopy(default)
    for key, value in pairs:
        if key == "config":
            if value is None:
                raise ConfigError("--config: expected a path to a YAML file")
            try:
                text = Path(value).read_text()
            except OSError as e:
                raise ConfigError(f"--config: cannot read {value!r} ({e})") from None
            _apply(cfg, _yaml(text, "--config") or {}, "")
    if any(key == "help" for key, _ in pairs):  # after --config, so help shows the merged values
        print(_help(cfg, prog or os.path.basename(sys.argv[0] or "agentrl")))
        raise SystemExit(0)
    for key, value in pairs:
        if key == "config":
            continue
        path, owner, name, hint = _lookup(cfg, key)
        if value is None:  # bare `--flag` means true, and only makes sense for bools
            members = get_args(hint) if get_origin(hint) in _UNIONS else (hint,)
            if bool not in members:
                raise ConfigError(f"{path}: expected a value after --{key} ({_type_str(hint)})")
            value = "true"
        _set(owner, name, hint, value, path, cli=True)
    validate(cfg)
    return cfg


def validate(cfg: Any, _path: str = "") -> None:
    """Re-run `__post_init__` and call `validate()` on every sub-config, bottom-up.

    ValueErrors become ConfigErrors prefixed with the sub-config's dotted path."""
    for name in _hints(type(cfg)):
        value = getattr(cfg, name)
        if _is_dc(value):
            validate(value, _join(_path, name))
    for hook in ("__post_init__", "validate"):
        fn = getattr(cfg, hook, None)
        # A __post_init__ taking InitVars cannot be re-run without them; skip it.
        if callable(fn) and not inspect.signature(fn).parameters:
            try:
                fn()
            except ValueError as e:
                raise ConfigError(f"{_path}: {e}" if _path else str(e)) from e


def config_to_dict(cfg: Any) -> Any:
    """Plain nested data (dicts, lists, scalars) that YAML can dump."""
    if _is_dc(cfg):
        return {name: config_to_dict(getattr(cfg, name)) for name in _hints(type(cfg))}
    if isinstance(cfg, (list, tuple, set, frozenset)):
        return [config_to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {config_to_dict(k): config_to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, enum.Enum):
        return config_to_dict(cfg.value)
    if cfg is None:
        return None
    for kind in (bool, int, float, str):  # plain types, so numpy scalars and str subclasses dump
        if isinstance(cfg, kind):
            return kind(cfg)
    return str(cfg)  # Path and friends: re-parsed by the annotation when loaded


def format_config(cfg: Any) -> str:
    """YAML text of `cfg`, for printing at start and saving with checkpoints."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=False, allow_unicode=True)


def save_config(cfg: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {type(cfg).__qualname__}\n" + format_config(cfg))
    return path


def load_config(default: T, path: str | os.PathLike) -> T:
    """`default` with the YAML file at `path` applied (as written by `save_config`), validated."""
    return parse_config(default, ["--config", str(path)])
