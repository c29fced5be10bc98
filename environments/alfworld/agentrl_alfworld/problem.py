"""Writing a scene as ALFWorld's files: the PDDL problem, `game.tw-pddl` and `traj_data.json`.

The problem follows ALFWorld's own: mangled ALFRED ids for objects, receptacles and
`loc_bar_...` locations, `<Type>Type` constants (otype / rtype), init facts
`receptacleType`, `objectType`, `canContain`, `openable`, `pickupable`, `isReceptacleObject`,
`heatable` / `coolable` / `cleanable` / `toggleable` / `sliceable`, `inReceptacle`,
`wasInReceptacle`, `receptacleAtLocation`, `objectAtLocation`, `atLocation agent1 ...`, and
the goal of `alfworld.gen.goal_library` with its slots filled.
"""
from __future__ import annotations

import json
import random
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import alfworld.gen.constants as C
import alfworld.gen.goal_library as glib

from .scene import MOVABLE, Scene, loc_name, mangle

TASK_TYPES = {1: "pick_and_place_simple", 2: "look_at_obj_in_light", 3: "pick_clean_then_place_in_recep",
              4: "pick_heat_then_place_in_recep", 5: "pick_cool_then_place_in_recep", 6: "pick_two_obj_and_place"}
TASK_TYPE_IDS = {name: i for i, name in TASK_TYPES.items()}

# type constants the domain's actions name (CleanObject, HeatObject, CoolObject, SliceObject)
DOMAIN_RTYPES = ("FridgeType", "MicrowaveType", "SinkBasinType")
DOMAIN_OTYPES = ("ButterKnifeType", "KnifeType")
_PROPERTIES = (("heatable", "Heatable"), ("coolable", "Coolable"), ("cleanable", "Cleanable"),
               ("toggleable", "Toggleable"), ("sliceable", "Sliceable"))


@lru_cache(maxsize=None)
def domain_and_grammar() -> tuple[str, str]:
    """The shipped `alfred.pddl` and `alfred.twl2` (the grammar still says "UNKNOWN GOAL")."""
    data = Path(str(files("alfworld") / "data"))
    return (data / "alfred.pddl").read_text(), (data / "alfred.twl2").read_text()


def task_description(rng: random.Random, task_type: str, params: dict) -> str:
    """One of goal_library's templates, filled the way ALFWorld does (lower-case type names)."""
    template = rng.choice(glib.gdict[task_type]["templates"])
    return template.format(obj=params["object_target"].lower(), recep=params["parent_target"].lower(),
                           toggle=params["toggle_target"].lower(), mrecep=params["mrecep_target"].lower())


def goal(task_type: str, params: dict) -> str:
    text = glib.gdict[task_type]["pddl"].replace("#", "-")
    return text.format(obj=params["object_target"], recep=params["parent_target"],
                       toggle=params["toggle_target"], mrecep=params["mrecep_target"]).strip()


def problem_text(scene: Scene, task_type: str, params: dict, name: str) -> str:
    recs = scene.receptacles
    things = scene.things
    locs = sorted({r.loc for r in recs} | {scene.agent})
    objects = ["agent1 - agent"]
    # only the type constants the facts, the goal and the domain's actions use: every extra
    # one multiplies PutObject's groundings (?ot ?rt) and slows fast-downward's translation
    otypes = {f"{t.type}Type" for t in things} | set(DOMAIN_OTYPES) | {f"{params['object_target']}Type"}
    rtypes = {f"{r.type}Type" for r in recs} | set(DOMAIN_RTYPES)
    if params["toggle_target"]:
        otypes.add(f"{params['toggle_target']}Type")
    if params["parent_target"]:
        rtypes.add(f"{params['parent_target']}Type")
    objects += [f"{t} - otype" for t in sorted(otypes)]
    objects += [f"{t} - rtype" for t in sorted(rtypes)]
    objects += [f"{mangle(t.id)} - object" for t in things]
    objects += [f"{mangle(r.id)} - receptacle" for r in recs]
    objects += [f"{loc_name(loc)} - location" for loc in locs]

    init = [f"(atLocation agent1 {loc_name(scene.agent)})"]
    init += [f"(receptacleType {mangle(r.id)} {r.type}Type)" for r in recs]
    init += [f"(objectType {mangle(t.id)} {t.type}Type)" for t in things]
    obj_types = sorted({t.type for t in things})
    for rtype in sorted({r.type for r in recs}):
        holds = C.VAL_RECEPTACLE_OBJECTS.get(rtype, set())
        init += [f"(canContain {rtype}Type {otype}Type)" for otype in obj_types if otype in holds]
    init += [f"(openable {mangle(r.id)})" for r in recs if r.type in C.OPENABLE_CLASS_SET]
    for t in things:
        mid = mangle(t.id)
        if t.type in C.VAL_ACTION_OBJECTS["Toggleable"]:
            init.append(f"(toggleable {mid})")
            continue
        init.append(f"(pickupable {mid})")
        if t.type in MOVABLE:
            init.append(f"(isReceptacleObject {mid})")
        init += [f"({fact} {mid})" for fact, group in _PROPERTIES[:3] + _PROPERTIES[4:]
                 if t.type in C.VAL_ACTION_OBJECTS[group]]
    init += [f"(inReceptacle {mangle(t.id)} {mangle(t.receptacle.id)})" for t in things]
    init += [f"(wasInReceptacle {mangle(t.id)} {mangle(t.receptacle.id)})" for t in things]
    init += [f"(receptacleAtLocation {mangle(r.id)} {loc_name(r.loc)})" for r in recs]
    init += [f"(objectAtLocation {mangle(t.id)} {loc_name(t.receptacle.loc)})" for t in things]

    indent = "\n        "
    return (f"(define (problem {name})\n(:domain alfred)\n(:objects{indent}{indent.join(objects)}\n        )\n"
            f"(:init{indent}{indent.join(init)}\n        )\n\n        {goal(task_type, params)}\n")


def game_json(problem: str, description: str, solvable: bool, walkthrough: list[str] | None) -> str:
    """`game.tw-pddl`: what TextWorld's PddlEnv loads (`pddl_domain`, `grammar`, `pddl_problem`,
    optional `walkthrough`) plus the `solvable` flag ALFWorld's loader insists on."""
    domain, grammar = domain_and_grammar()
    data = {"pddl_domain": domain, "grammar": grammar.replace("UNKNOWN GOAL", description),
            "pddl_problem": problem, "solvable": solvable}
    if walkthrough is not None:
        data["walkthrough"] = walkthrough
    return json.dumps(data, indent=2) + "\n"


def traj_json(scene: Scene, task_type: str, params: dict, description: str, task_id: str, extra: dict) -> str:
    """`traj_data.json`: what ALFWorld's loader and hand-coded expert read (task_type,
    pddl_params), scene info, and a turk_annotations stub with the templated description."""
    data = {
        "task_id": task_id,
        "task_type": task_type,
        "pddl_params": params,
        "scene": {"floor_plan": scene.plan.name, "scene_num": scene.plan.scene_num,
                  "init_action": {"action": "TeleportFull", "grid": list(scene.agent)},
                  "object_poses": [{"objectName": t.id, "receptacle": t.receptacle.id} for t in scene.things]},
        "turk_annotations": {"anns": [{"assignment_id": "generated", "task_desc": description,
                                       "high_descs": [], "votes": []}]},
        "agentrl": extra,
    }
    return json.dumps(data, indent=2) + "\n"
