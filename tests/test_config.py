from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import pytest
import yaml

from agentrl.config import (
    ConfigError,
    config_to_dict,
    format_config,
    load_config,
    parse_config,
    save_config,
    validate,
)


@dataclass
class OptimConfig:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass
class LearnerConfig:
    lr: float = 1e-6
    steps: int = 100
    optim: OptimConfig = field(default_factory=OptimConfig)
    kind: Literal["lora", "full"] = "lora"

    def validate(self) -> None:
        if self.steps < 1:
            raise ValueError("steps must be >= 1")


@dataclass
class EnvConfig:
    max_turns: int = 10


@dataclass
class SokobanConfig(EnvConfig):
    num_boxes: int = 1
    dim: list[int] = field(default_factory=lambda: [6, 6])


@dataclass
class Extra:
    tag: str = "x"


@dataclass
class RunConfig:
    name: str = "run"
    seed: int = 0
    debug: bool = False
    eval_every: int | None = 10
    note: Optional[str] = None
    tags: list[str] = field(default_factory=list)
    weights: list[float] = field(default_factory=lambda: [1.0])
    extra_kwargs: dict[str, Any] = field(default_factory=dict)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    env: EnvConfig = field(default_factory=SokobanConfig)
    extra: Extra | None = None
    derived: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.derived = self.learner.steps * 2  # idempotent, re-run after overrides
        if self.seed < 0:
            raise ValueError("seed must be >= 0")


@dataclass
class Small:
    learner: OptimConfig = field(default_factory=OptimConfig)


def p(*argv: str) -> RunConfig:
    return parse_config(RunConfig(), list(argv))


def test_defaults_untouched():
    preset = RunConfig()
    cfg = parse_config(preset, ["--learner.lr", "3e-5"])
    assert preset == RunConfig()  # the preset is deep-copied, never mutated
    assert p() == RunConfig()


def test_dotted_override_and_equals_form():
    cfg = p("--learner.lr", "1e-5", "--learner.steps=7", "--env.max_turns", "20")
    assert cfg.learner.lr == 1e-5 and isinstance(cfg.learner.lr, float)
    assert cfg.learner.steps == 7 and cfg.env.max_turns == 20
    assert cfg.derived == 14  # __post_init__ re-ran on the final values


def test_leaf_shortcut_and_dashes():
    cfg = p("--max-turns", "3", "--num_boxes", "4", "--optim.lr", "0.5", "--eval-every=5")
    assert cfg.env.max_turns == 3 and cfg.env.num_boxes == 4
    assert cfg.learner.optim.lr == 0.5 and cfg.eval_every == 5


def test_ambiguous_shortcut_lists_paths():
    with pytest.raises(ConfigError) as e:
        p("--lr", "1e-5")
    assert "learner.lr" in str(e.value) and "learner.optim.lr" in str(e.value)


def test_unknown_key_suggests():
    with pytest.raises(ConfigError, match=r"unknown config field 'learner.lrr' \(did you mean 'learner.lr'"):
        p("--learner.lrr", "1")
    with pytest.raises(ConfigError, match=r"did you mean 'env.num_boxes'"):
        p("--num_boxs", "1")
    with pytest.raises(ConfigError, match="unknown config field 'zzzz'$"):
        p("--zzzz", "1")
    with pytest.raises(ConfigError, match="unknown config field 'derived'"):
        p("--derived", "1")  # init=False fields are derived, not settable
    with pytest.raises(ConfigError) as e:
        parse_config(Small(), ["--lrr", "1"])
    assert str(e.value) == "unknown config field 'lrr' (did you mean 'learner.lr'?)"


def test_bad_float_message():
    with pytest.raises(ConfigError) as e:
        p("--learner.lr", "abc")
    assert str(e.value) == "learner.lr: expected a float, got 'abc'"
    with pytest.raises(ConfigError, match=r"learner\.optim\.lr.*'abc'"):
        p("--optim.lr", "abc")


def test_int_conversion():
    assert p("--seed", "3").seed == 3
    assert p("--learner.steps", "1e3").learner.steps == 1000
    for bad in ("1.5", "abc", ""):
        with pytest.raises(ConfigError, match="seed: expected an int"):
            p("--seed", bad)


def test_bool_forms():
    for text, want in [("true", True), ("False", False), ("1", True), ("0", False), ("YES", True), ("no", False)]:
        assert p("--debug", text).debug is want
    assert p("--debug").debug is True  # bare flag at the end
    cfg = p("--debug", "--seed", "2")  # bare flag followed by another key
    assert cfg.debug is True and cfg.seed == 2
    with pytest.raises(ConfigError, match="debug: expected a bool"):
        p("--debug", "maybe")
    with pytest.raises(ConfigError, match="seed: expected a value"):
        p("--seed")


def test_optional_none():
    assert p("--eval_every", "none").eval_every is None
    assert p("--eval_every", "NULL").eval_every is None
    assert p("--eval_every", "4").eval_every == 4
    assert p("--note", "hello").note == "hello"
    assert p("--note", "none").note is None
    with pytest.raises(ConfigError, match=r"eval_every: expected an int or None, got 'x'"):
        p("--eval_every", "x")


def test_literal_choices():
    assert p("--learner.kind", "full").learner.kind == "full"
    with pytest.raises(ConfigError) as e:
        p("--kind", "half")
    msg = str(e.value)
    assert "learner.kind" in msg and "'lora'" in msg and "'full'" in msg and "'half'" in msg


def test_lists_tuples_dicts():
    cfg = p("--tags", "a, b,c", "--weights", "1,2.5", "--env.dim", "[8, 9]", "--betas", "0.8,0.9")
    assert cfg.tags == ["a", "b", "c"]
    assert cfg.weights == [1.0, 2.5]
    assert cfg.env.dim == [8, 9]
    assert cfg.learner.optim.betas == (0.8, 0.9)
    assert p("--tags", "").tags == []
    with pytest.raises(ConfigError, match=r"env\.dim\[1\]: expected an int, got 'x'"):
        p("--dim", "1,x")
    with pytest.raises(ConfigError, match="betas: expected 2 items"):
        p("--betas", "1,2,3")
    assert p("--extra_kwargs", '{"a": 1, "b": [1, 2]}').extra_kwargs == {"a": 1, "b": [1, 2]}
    assert p("--extra_kwargs", "a: x").extra_kwargs == {"a": "x"}
    with pytest.raises(ConfigError, match="extra_kwargs: expected a mapping"):
        p("--extra_kwargs", "[1]")


def test_positional_is_error():
    with pytest.raises(ConfigError, match="positional argument 'oops'"):
        p("oops")


def test_yaml_load_and_cli_precedence(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        "name: from-yaml\n"
        "learner:\n  lr: 1e-5\n  steps: 50\n  optim: {lr: 2}\n"
        "env:\n  num_boxes: 3\n  dim: [7, 7]\n"
        "extra: {tag: y}\n"
    )
    cfg = p("--config", str(path), "--learner.steps", "60")
    assert cfg.name == "from-yaml"
    assert cfg.learner.lr == 1e-5  # YAML 1.1 reads 1e-5 as a string; the float annotation converts it
    assert cfg.learner.optim.lr == 2.0 and isinstance(cfg.learner.optim.lr, float)  # int is fine for float
    assert cfg.learner.steps == 60  # CLI wins, regardless of order
    assert p("--learner.steps", "60", f"--config={path}").learner.steps == 60
    assert isinstance(cfg.env, SokobanConfig) and cfg.env.num_boxes == 3 and cfg.env.dim == [7, 7]
    assert cfg.extra == Extra(tag="y")  # a None section is built from the mapping


def test_yaml_bad_type_names_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("learner:\n  lr: abc\n")
    with pytest.raises(ConfigError, match=r"learner\.lr: expected a float, got 'abc'"):
        p("--config", str(path))
    path.write_text("learner:\n  steps: 1.5\n")
    with pytest.raises(ConfigError, match=r"learner\.steps: expected an int, got 1\.5"):
        p("--config", str(path))
    path.write_text("learner:\n  lrr: 1\n")
    with pytest.raises(ConfigError, match=r"unknown config field 'learner.lrr' \(did you mean 'learner.lr'"):
        p("--config", str(path))
    path.write_text("name: 5\n")
    with pytest.raises(ConfigError, match="name: expected a string, got 5"):
        p("--config", str(path))
    with pytest.raises(ConfigError, match="cannot read"):
        p("--config", str(tmp_path / "missing.yaml"))


def test_subclass_field_override_is_type_checked():
    cfg = p("--env.num_boxes", "2", "--env.max_turns", "5")
    assert isinstance(cfg.env, SokobanConfig)
    assert cfg.env.num_boxes == 2 and cfg.env.max_turns == 5
    with pytest.raises(ConfigError, match=r"env\.num_boxes: expected an int, got 'two'"):
        p("--env.num_boxes", "two")
    # A base-class instance has no such field.
    with pytest.raises(ConfigError, match="unknown config field 'env.num_boxes'"):
        parse_config(RunConfig(env=EnvConfig()), ["--env.num_boxes", "2"])


def test_section_mapping_override():
    cfg = p("--learner", "{steps: 9, optim: {lr: 0.1}}")
    assert cfg.learner.steps == 9 and cfg.learner.optim.lr == 0.1 and cfg.learner.lr == 1e-6


def test_validate_hook_names_dotted_path():
    with pytest.raises(ConfigError, match=r"^learner: steps must be >= 1$"):
        p("--learner.steps", "0")
    with pytest.raises(ConfigError, match=r"^seed must be >= 0$"):
        p("--seed", "-1")  # root __post_init__ re-run; negative numbers are values, not flags
    bad = RunConfig()
    bad.learner.steps = 0
    with pytest.raises(ConfigError, match="learner: steps"):
        validate(bad)


def test_help_lists_fields(capsys):
    with pytest.raises(SystemExit) as e:
        parse_config(RunConfig(), ["--seed", "3", "--help"], prog="train")
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage: train" in out
    for line in ["--learner.lr", "--learner.optim.betas", "--env.num_boxes", "--eval_every"]:
        assert line in out
    row = next(l for l in out.splitlines() if "--learner.lr" in l)
    assert "(float)" in row and "1e-06" in row
    assert "(Extra | None)" in out and "(str | None)" in out and "--derived" not in out
    assert next(l for l in out.splitlines() if "--seed" in l).split()[-1] == "0"  # defaults, before flags
    with pytest.raises(SystemExit):
        parse_config(RunConfig(), ["-h"])


def test_round_trip(tmp_path):
    cfg = p(
        "--learner.lr", "3e-5", "--kind", "full", "--env.num_boxes", "2", "--tags", "a,none",
        "--note", "text", "--eval_every", "none", "--extra_kwargs", "{k: [1, 2], s: 'null'}",
        "--betas", "0.5,0.6", "--extra", "{tag: z}", "--debug",
    )
    path = save_config(cfg, tmp_path / "ckpt" / "config.yaml")
    loaded = load_config(RunConfig(), path)
    assert loaded == cfg
    assert isinstance(loaded.learner.optim.betas, tuple)
    data = yaml.safe_load(path.read_text())
    assert data == config_to_dict(cfg) and data["env"]["num_boxes"] == 2
    assert format_config(cfg).startswith("name: run\n")


@dataclass(frozen=True)
class FrozenSub:
    a: int = 1


@dataclass
class Holder:
    frozen: FrozenSub = field(default_factory=FrozenSub)


def test_frozen_sub_config_can_be_overridden():
    cfg = parse_config(Holder(), ["--frozen.a", "5"])
    assert cfg.frozen == FrozenSub(a=5)


def _sokoban_train_config():
    from agentrl.trainer import TrainConfig
    from agentrl_sokoban import SokobanConfig

    return TrainConfig(env=SokobanConfig())


def test_engine_section_takes_its_backend_as_a_shorthand(tmp_path):
    assert parse_config(_sokoban_train_config(), ["--engine", "hf"]).engine.backend == "hf"
    cfg = parse_config(_sokoban_train_config(), ["--engine", "vllm_server", "--engine.urls", "http://127.0.0.1:8000,http://127.0.0.1:8001"])
    assert cfg.engine.backend == "vllm_server" and cfg.engine.urls == ["http://127.0.0.1:8000", "http://127.0.0.1:8001"]
    path = tmp_path / "c.yaml"
    path.write_text("engine: hf\n")
    assert parse_config(_sokoban_train_config(), ["--config", str(path)]).engine.backend == "hf"


@pytest.mark.parametrize("args, message", [
    (["--engine", "sglang"], "engine: backend must be one of: auto, vllm, vllm_server, hf (got 'sglang')"),
    (["--engine", "vllm_server"], "engine: urls: backend vllm_server needs at least one server URL"),
    (["--engine.urls", "127.0.0.1:8000"], "engine: urls: expected http(s):// URLs"),
])
def test_bad_engine_config_names_the_field(args, message):
    with pytest.raises(ConfigError) as err:
        parse_config(_sokoban_train_config(), args)
    assert message in str(err.value)
