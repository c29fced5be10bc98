"""The supervisor (the person the agent works for) and their app accounts, seeded.

Every task world has one supervisor: `admin.MainUser` and `supervisor.Supervisor` rows with
the same profile, an account in each app the task uses (the app's own `User` row), and
the passwords in both `admin.AccountPassword` and `supervisor.AccountPassword`, so the
agent finds them through `apis.supervisor.show_account_passwords()` as in real AppWorld.
Other people (contacts, friends, payees) come from `person(rng)`.
"""
from __future__ import annotations

import random
import string
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from faker import Faker

# the moment every built task happens at (AppWorld freezes its clock to specs.json's datetime)
TASK_DATETIME = datetime(2023, 5, 18, 12, 0, 0)


@dataclass
class Person:
    first_name: str
    last_name: str
    email: str
    phone_number: str
    birthday: str
    sex: str

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"


def person(rng: random.Random) -> Person:
    """A seeded fake person (Faker seeded from `rng`, so builds are reproducible)."""
    fake = Faker()
    fake.seed_instance(rng.randrange(2**31))
    first, last = fake.first_name(), fake.last_name()
    return Person(
        first_name=first, last_name=last,
        email=f"{first.lower()}.{last.lower()}{rng.randrange(10, 99)}@gmail.com",
        phone_number="".join(rng.choice(string.digits[1:]) for _ in range(10)),
        birthday=f"{rng.randint(1960, 2002)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        sex=rng.choice(["male", "female"]),
    )


def password(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(10)) + "!"


class Supervisor:
    """The supervisor's rows in an in-memory `ModelCollection`, plus `open_account(app)`."""

    def __init__(self, models: Any, rng: random.Random, who: Person | None = None):
        self.models, self.rng = models, rng
        self.person = who or person(rng)
        profile = asdict(self.person)
        self.main_user = models.admin.MainUser(**profile)
        self.main_user.save()
        self.supervisor = models.supervisor.Supervisor(**profile)
        self.supervisor.save()
        self.passwords: dict[str, str] = {}

    def open_account(self, app: str, **fields: Any) -> Any:
        """The supervisor's `User` row in `app` (login by email, or phone number for `phone`),
        with its password stored where the agent can look it up. Extra fields override."""
        user_model = getattr(self.models, app).User
        declared = user_model.__fields__
        secret = password(self.rng)
        row: dict[str, Any] = {"first_name": self.person.first_name, "last_name": self.person.last_name,
                               "password": secret, "created_at": datetime(2022, 1, 3, 9, 30),
                               "last_logged_in": datetime(2023, 5, 1, 8, 0)}
        for key in ("email", "phone_number"):
            if key in declared:
                row[key] = getattr(self.person, key)
        if "verified" in declared:
            row["verified"] = True
        row.update(fields)
        user = user_model(**row)
        user.save()
        self.models.admin.AccountPassword(main_user_id=self.main_user.id, account_name=app, password=secret).save()
        self.models.supervisor.AccountPassword(supervisor_id=self.supervisor.id, account_name=app,
                                               password=secret).save()
        self.passwords[app] = secret
        return user

    def add_task_row(self, instruction: str) -> None:
        """AppWorld keeps the instruction (and later the agent's answer) in supervisor.Task."""
        self.models.supervisor.Task(supervisor_id=self.supervisor.id, instruction=instruction).save()
