"""Seeded ALFWorld games of the six task types, checked by the shipped expert on the real engine.

For a task type, a floor plan of an allowed room type (`constants.GOALS_VALID`) from the split's
scenes (`scene.split_scenes`: valid_unseen uses ALFRED's held-out floor plans) is drawn, then a
target that the room supports:

- every task: the object type is in the room and pickupable, and some receptacle of the room
  other than the target receptacle type can hold it (its start);
- place tasks: the target receptacle type is in the room and can hold the object
  (`VAL_RECEPTACLE_OBJECTS`, which the problem's `canContain` facts also encode);
- clean / heat / cool: the object is Cleanable / Heatable / Coolable and the room has a
  SinkBasin / Microwave / Fridge (the domain's CleanObject / HeatObject / CoolObject need
  exactly those receptacle types); the target receptacle is another type;
- look_at_obj_in_light: the room has a DeskLamp or FloorLamp, put on a lamp surface (Desk,
  SideTable, ...) so ToggleObject's `inReceptacle` precondition holds where the agent stands.

One to three target objects (two to four for pick_two) start in receptacles that can hold them
but are not of the target receptacle type, so no goal holds at the start; 12 to 24 distractor
objects of the room's other pickupable types fill receptacles that can hold them. The agent
starts at a reachable pose no receptacle is seen from. The game is written to a temporary
directory and the expert plays it on the engine; a game it does not win within
`max_expert_steps` is redrawn from the next attempt's seed and the reason counted. Same
(task_type, seed, split) -> byte-identical files.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import threading
from collections import Counter
from pathlib import Path

import alfworld.gen.constants as C

from .engine import shared_local
from .problem import TASK_TYPES, game_json, problem_text, task_description, traj_json
from .scene import LAMP_SURFACES, LAMPS, Scene, agent_start, build_receptacles, floor_plan, scene_type, split_scenes

GENERATOR_VERSION = 1
SPLITS = ("train", "valid_seen", "valid_unseen")
_NEEDS = {"pick_clean_then_place_in_recep": ("Cleanable", "SinkBasin"),
          "pick_heat_then_place_in_recep": ("Heatable", "Microwave"),
          "pick_cool_then_place_in_recep": ("Coolable", "Fridge")}


def _rng(*parts) -> random.Random:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _candidates(task_type: str, scene_num: int) -> list[dict]:
    """Every (object, receptacle / lamp) the task could use in this floor plan."""
    plan = floor_plan(scene_num)
    rtypes = plan.receptacle_types
    val = C.VAL_RECEPTACLE_OBJECTS
    out = []
    for obj in sorted(plan.pickupable_types):
        starts = {r for r in rtypes if obj in val[r]}
        if task_type == "look_at_obj_in_light":
            if not starts or not rtypes & set(LAMP_SURFACES):
                continue
            out += [{"object_target": obj, "parent_target": "", "toggle_target": lamp}
                    for lamp in LAMPS if lamp in plan.types]
            continue
        group, tool = _NEEDS.get(task_type, (None, None))
        if group and (obj not in C.VAL_ACTION_OBJECTS[group] or tool not in rtypes):
            continue
        for recep in sorted(starts - {tool}):
            if starts - {recep}:
                out.append({"object_target": obj, "parent_target": recep, "toggle_target": ""})
    for c in out:
        c.update(mrecep_target="", object_sliced=False)
    return out


def sample_task(rng: random.Random, task_type: str, split: str) -> tuple[int, dict]:
    """(scene_num, pddl_params): a floor plan of an allowed room type, then one of its targets."""
    rooms = C.GOALS_VALID[task_type]
    scenes = [n for n in split_scenes(split) if scene_type(n) in rooms]
    rng.shuffle(scenes)
    for scene_num in scenes:
        options = _candidates(task_type, scene_num)
        if options:
            return scene_num, rng.choice(options)
    raise RuntimeError(f"no floor plan of split {split!r} supports {task_type}")


def build_scene(rng: random.Random, task_type: str, scene_num: int, params: dict) -> Scene:
    plan = floor_plan(scene_num)
    receptacles = build_receptacles(rng, plan)
    scene = Scene(plan, agent_start(rng, plan, receptacles), receptacles)
    obj, recep, lamp = params["object_target"], params["parent_target"], params["toggle_target"]
    if lamp:
        surfaces = [r for r in receptacles if r.type in LAMP_SURFACES]
        scene.add(rng, lamp, rng.choice(surfaces))
    low, high = (2, 4) if task_type == "pick_two_obj_and_place" else (1, 3)
    starts = scene.holders(obj, exclude=frozenset({recep}))
    for _ in range(rng.randint(low, high)):
        scene.add(rng, obj, rng.choice(starts))
    others = sorted(plan.pickupable_types - {obj})
    for _ in range(rng.randint(12, 24)):
        kind = rng.choice(others)
        holders = scene.holders(kind)
        if holders and scene.count(kind) < C.MAX_NUM_OF_OBJ_INSTANCES:
            scene.add(rng, kind, rng.choice(holders))
    return scene


def game_dir(root: str | Path, split: str, task_type: str, seed: int, params: dict, scene_num: int) -> Path:
    """`<root>/json_2.1.1/<split>/<task_type>-<Obj>-<Mrecep|None>-<Recep|Lamp>-<scene>/trial_G<seed>`."""
    target = params["parent_target"] or params["toggle_target"]
    name = f"{task_type}-{params['object_target']}-{params['mrecep_target'] or 'None'}-{target}-{scene_num}"
    return Path(root) / "json_2.1.1" / split / name / f"trial_G{seed:06d}"


def find_game(root: str | Path, task_type: str, seed: int, split: str) -> Path | None:
    """The game file `generate_game(root, task_type, seed, split)` wrote, if it is there."""
    hits = sorted((Path(root) / "json_2.1.1" / split).glob(f"{task_type}-*/trial_G{seed:06d}/game.tw-pddl"))
    return hits[0] if hits else None


def generated_games(root: str | Path, split: str) -> dict[tuple[str, int], Path]:
    """Every generated game of `split` under `root`, by (task_type, seed), from one listing."""
    out = {}
    for path in sorted((Path(root) / "json_2.1.1" / split).glob("*/trial_G*/game.tw-pddl")):
        task_type, trial = path.parent.parent.name.split("-", 1)[0], path.parent.name
        if trial[len("trial_G"):].isdigit():
            out.setdefault((task_type, int(trial[len("trial_G"):])), path)
    return out


def generate_game(root: str | Path, task_type: str, seed: int, split: str = "train", *,
                  engine=None, max_attempts: int = 40, max_expert_steps: int = 50,
                  stats: Counter | None = None, overwrite: bool = False) -> Path:
    """Write one expert-checked game; returns the path of its `game.tw-pddl`. An existing game of
    the same (task_type, seed, split) is returned as is unless `overwrite`. `stats` (a Counter)
    receives "games" and one "rejected: <reason>" count per redrawn attempt."""
    if task_type not in TASK_TYPES.values():
        raise ValueError(f"task_type must be one of {sorted(TASK_TYPES.values())} (got {task_type!r})")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} (got {split!r})")
    if seed < 0:
        raise ValueError(f"seed must be >= 0 (got {seed})")
    existing = find_game(root, task_type, seed, split)
    if existing is not None and not overwrite:
        return existing
    stats = Counter() if stats is None else stats
    engine = shared_local() if engine is None else engine
    rejected: Counter = Counter()
    for attempt in range(max_attempts):
        rng = _rng("agentrl-alfworld", GENERATOR_VERSION, task_type, split, seed, attempt)
        scene_num, params = sample_task(rng, task_type, split)
        scene = build_scene(rng, task_type, scene_num, params)
        description = task_description(rng, task_type, params)
        final = game_dir(root, split, task_type, seed, params, scene_num)
        trial = final.name
        problem = problem_text(scene, task_type, params, f"plan_{trial}")
        extra = {"generator_version": GENERATOR_VERSION, "seed": seed, "split": split, "attempt": attempt,
                 "rejected": dict(sorted(rejected.items())), "expert": "handcoded"}
        traj = traj_json(scene, task_type, params, description, trial, extra)
        tmp = Path(root) / ".tmp" / f"{final.parent.name}-{trial}-{os.getpid()}-{threading.get_ident()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            (tmp / "traj_data.json").write_text(traj)
            (tmp / "game.tw-pddl").write_text(game_json(problem, description, False, None))
            result = engine.call("expert", gamefile=str(tmp / "game.tw-pddl"), max_steps=max_expert_steps)
            if not result["won"]:
                reason = (result["error"] or "not won").split(":")[0]
                rejected[reason] += 1
                stats[f"rejected: {reason}"] += 1
                continue
            if len(result["plan"]) < 2:  # only "look": the goal held at the start
                rejected["trivial"] += 1
                stats["rejected: trivial"] += 1
                continue
            (tmp / "game.tw-pddl").write_text(game_json(problem, description, True, result["plan"]))
            final.parent.mkdir(parents=True, exist_ok=True)
            if overwrite:
                shutil.rmtree(final, ignore_errors=True)
            try:
                os.rename(tmp, final)
            except OSError:  # written meanwhile by another process: identical content
                if not (final / "game.tw-pddl").exists():
                    raise
            stats["games"] += 1
            return final / "game.tw-pddl"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    raise RuntimeError(f"no expert-solvable {task_type} game for seed {seed} in {max_attempts} attempts "
                       f"(rejected: {dict(rejected)})")


def expert_plan_of(gamefile: str | Path) -> list[str] | None:
    """The hand-coded expert's plan a generated game stores (game.tw-pddl `walkthrough`), else None."""
    gamefile = Path(gamefile)
    try:
        traj = json.loads((gamefile.parent / "traj_data.json").read_text())
    except (OSError, ValueError):
        return None
    if traj.get("agentrl", {}).get("expert") != "handcoded":
        return None
    walkthrough = json.loads(gamefile.read_text()).get("walkthrough")
    return list(walkthrough) if walkthrough else None
