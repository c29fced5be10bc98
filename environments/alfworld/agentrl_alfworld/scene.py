"""Scenes for generated ALFWorld games, built only from what the `alfworld` package ships.

A floor plan's `gen/layouts/FloorPlanN-objects.json` says which object and receptacle types
the room has, `FloorPlanN-openable.json` gives receptacle ids (ALFRED's `Type|x|y|z`) with the
pose the agent interacts from ([x, z, rotation, horizon]) and `FloorPlanN-layout.npy` the
reachable floor points (0.25 m grid). Receptacles of the openable file keep their ids and
poses; receptacle types the room has but that file lacks (stove burners, toasters, garbage
cans, towel holders...) are put at seeded reachable points. Objects go into receptacles that
`constants.VAL_RECEPTACLE_OBJECTS` says can hold them. Names use ALFWorld's mangling, so the
shipped `AlfredDemangler` turns them into "cabinet 3", "sinkbasin 1", "egg 2".
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import alfworld.gen.constants as C
import numpy as np

Loc = tuple[int, int, int, int]  # grid x, grid z, rotation / 90, camera horizon

MOVABLE = frozenset(C.MOVABLE_RECEPTACLES)  # bowls, mugs...: objects here, never receptacles
STATIC_RECEPTACLES = frozenset(C.VAL_RECEPTACLE_OBJECTS) - MOVABLE
PICKUPABLE = frozenset(o for objs in C.VAL_RECEPTACLE_OBJECTS.values() for o in objs if "Sliced" not in o)
LAMPS = ("DeskLamp", "FloorLamp")
LAMP_SURFACES = ("Desk", "SideTable", "Dresser", "Shelf", "CoffeeTable", "TVStand", "DiningTable", "Ottoman")
OPENABLE = frozenset(C.OPENABLE_CLASS_LIST) & STATIC_RECEPTACLES
# heights (m) for receptacles placed at seeded points; anything else: 0.8
_HEIGHT = {"StoveBurner": 0.92, "Toaster": 0.90, "CoffeeMachine": 0.90, "GarbageCan": 0.0, "Toilet": 0.0,
           "LaundryHamper": 0.0, "TowelHolder": 1.2, "HandTowelHolder": 1.3, "ToiletPaperHanger": 0.8}
_BASIN = {"SinkBasin": "Sink", "BathtubBasin": "Bathtub"}  # ALFRED names basins Sink|x|y|z|SinkBasin
_MANGLE = (("|", "_bar_"), (".", "_dot_"), ("-", "_minus_"), ("+", "_plus_"), (",", "_comma_"))


def mangle(name: str) -> str:
    """ALFWorld's PDDL-safe spelling of an ALFRED id: `Egg|+02.06|...` -> `Egg_bar__plus_02_dot_06...`."""
    for char, word in _MANGLE:
        name = name.replace(char, word)
    return name


def loc_name(loc: Loc) -> str:
    return mangle("loc|" + "|".join(str(v) for v in loc))


def scene_type(scene_num: int) -> str:
    return next(name for name, nums in C.SCENE_TYPE.items() if scene_num in nums)


def split_scenes(split: str) -> list[int]:
    """ALFRED's scene split: train and valid_seen use the train floor plans, valid_unseen the
    held-out ones (so unseen test games never share a room with training games)."""
    return sorted(C.TEST_SCENE_NUMBERS if split == "valid_unseen" else C.TRAIN_SCENE_NUMBERS)


def _layouts() -> Path:
    return Path(str(files("alfworld.gen") / "layouts"))


@dataclass(frozen=True)
class FloorPlan:
    scene_num: int
    types: frozenset[str]  # every type the room has (objects and receptacles)
    poses: dict  # receptacle id -> (x, z, rotation_deg, horizon)
    points: tuple[tuple[float, float], ...]  # reachable floor points

    @property
    def name(self) -> str:
        return f"FloorPlan{self.scene_num}"

    @property
    def receptacle_types(self) -> frozenset[str]:
        return frozenset(receptacle_type(r) for r in self.poses) | (self.types & STATIC_RECEPTACLES)

    @property
    def pickupable_types(self) -> frozenset[str]:
        return self.types & PICKUPABLE


@lru_cache(maxsize=None)
def floor_plan(scene_num: int) -> FloorPlan:
    base = _layouts() / f"FloorPlan{scene_num}"
    types = json.loads(Path(f"{base}-objects.json").read_text())
    poses = json.loads(Path(f"{base}-openable.json").read_text())
    points = np.load(f"{base}-layout.npy")
    return FloorPlan(scene_num, frozenset(types), {k: tuple(v) for k, v in sorted(poses.items())},
                     tuple((float(x), float(z)) for x, z in points))


def receptacle_type(alfred_id: str) -> str:
    parts = alfred_id.split("|")
    return parts[-1] if len(parts) > 4 else parts[0]


def _coords(alfred_id: str) -> tuple[float, float, float]:
    x, y, z = (float(v) for v in alfred_id.split("|")[1:4])
    return x, y, z


def _fmt(v: float) -> str:
    return f"{v:+06.2f}"


def _alfred_id(type_: str, x: float, y: float, z: float) -> str:
    coords = f"{_fmt(x)}|{_fmt(y)}|{_fmt(z)}"
    return f"{_BASIN[type_]}|{coords}|{type_}" if type_ in _BASIN else f"{type_}|{coords}"


def pose_loc(x: float, z: float, rotation: float, horizon: float) -> Loc:
    return (int(round(x / 0.25)), int(round(z / 0.25)), int(round(rotation / 90)) % 4, int(round(horizon)))


@dataclass(frozen=True)
class Receptacle:
    id: str  # ALFRED id, unmangled
    type: str
    loc: Loc


@dataclass(frozen=True)
class Thing:
    """An object (pickupable or a lamp) inside a receptacle."""

    id: str
    type: str
    receptacle: Receptacle


@dataclass
class Scene:
    plan: FloorPlan
    agent: Loc
    receptacles: list[Receptacle]
    things: list[Thing] = field(default_factory=list)

    def of_type(self, type_: str) -> list[Receptacle]:
        return [r for r in self.receptacles if r.type == type_]

    def holders(self, obj_type: str, exclude: frozenset[str] = frozenset()) -> list[Receptacle]:
        return [r for r in self.receptacles
                if r.type not in exclude and obj_type in C.VAL_RECEPTACLE_OBJECTS.get(r.type, ())]

    def count(self, obj_type: str) -> int:
        return sum(t.type == obj_type for t in self.things)

    def add(self, rng: random.Random, obj_type: str, receptacle: Receptacle) -> Thing:
        """Put a new object of `obj_type` into `receptacle` (id from its coordinates plus jitter)."""
        taken = {t.id for t in self.things}
        x, y, z = _coords(receptacle.id)
        while True:
            dx, dz = rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4)
            thing = Thing(_alfred_id(obj_type, x + dx, y + rng.uniform(0.0, 0.1), z + dz), obj_type, receptacle)
            if thing.id not in taken:
                self.things.append(thing)
                return thing


_DIRECTION = {0: (0.0, 1.0), 1: (1.0, 0.0), 2: (0.0, -1.0), 3: (-1.0, 0.0)}  # Unity yaw 0 faces +z


def build_receptacles(rng: random.Random, plan: FloorPlan) -> list[Receptacle]:
    """The openable file's receptacles at their poses, plus the room's other receptacle types
    at seeded reachable points (four stove burners in two pairs, one of anything else)."""
    out = [Receptacle(rid, receptacle_type(rid), pose_loc(*pose)) for rid, pose in plan.poses.items()]
    missing = sorted(plan.receptacle_types - {r.type for r in out})
    ids = {r.id for r in out}
    for type_ in missing:
        for _ in range(2 if type_ == "StoveBurner" else 1):
            x, z = rng.choice(plan.points)
            rot = rng.randrange(4)
            dx, dz = _DIRECTION[rot]
            height = _HEIGHT.get(type_, 0.8)
            loc = pose_loc(x, z, rot * 90, 30 if height < 1.0 else 0)
            for side in ((-0.3, 0.3) if type_ == "StoveBurner" else (0.0,)):
                rx, rz = x + 0.75 * dx + side * dz, z + 0.75 * dz + side * dx
                rid = _alfred_id(type_, rx, height, rz)
                while rid in ids:
                    rx += 0.01
                    rid = _alfred_id(type_, rx, height, rz)
                ids.add(rid)
                out.append(Receptacle(rid, type_, loc))
    return out


def agent_start(rng: random.Random, plan: FloorPlan, receptacles: list[Receptacle]) -> Loc:
    """A reachable pose that no receptacle is seen from: the first `look` is then ALFWorld's
    "You are in the middle of a room ... you see <every receptacle>", which the expert reads."""
    taken = {r.loc for r in receptacles}
    while True:
        x, z = rng.choice(plan.points)
        loc = pose_loc(x, z, rng.randrange(4) * 90, 30)
        if loc not in taken:
            return loc
