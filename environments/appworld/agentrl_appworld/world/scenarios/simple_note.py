"""Simple Note: count the notes with a tag; delete the notes with a tag."""
from __future__ import annotations

import random
from datetime import datetime, timedelta

from ..people import Supervisor
from ..task import TaskSpec, Template, all_pages, indent, login_code

TAGS = ["recipe", "travel", "work", "finance", "health", "reading", "ideas", "family", "music", "draft"]
TITLES = ["Weekly plan", "Groceries", "Trip notes", "Budget", "Book list", "Workout", "Gift ideas",
          "Meeting notes", "Passwords hint", "Recipes to try", "Movies", "Garden", "Car service", "Birthday"]


def _add_notes(models, sup: Supervisor, rng: random.Random, n: int) -> list:
    user = sup.open_account("simple_note")
    notes = []
    for i in range(n):
        title = f"{rng.choice(TITLES)} {i + 1}"
        created = datetime(2023, 1, 1) + timedelta(days=rng.randrange(120), minutes=rng.randrange(1440))
        note = models.simple_note.Note(
            user_id=user.id, title=title, content=f"Contents of {title.lower()}.",
            tags=rng.sample(TAGS, rng.randint(0, 2)), created_at=created, updated_at=created + timedelta(days=1),
            pinned=rng.random() < 0.2)
        note.save()
        notes.append(note)
    return notes


def _pick_tag(rng: random.Random, notes: list) -> str:
    used = sorted({t for n in notes for t in n.tags})
    return rng.choice(used)


SEARCH_BY_TAG = all_pages(
    "found", "apis.simple_note.search_notes(access_token=token, tags=[\"{tag}\"], page_index=page, page_limit=20)")

COUNT_EVALUATION = '''
import json


def evaluate(test, public_data, private_data, main_user, models, ground_truth_answer):
    predicted_answer = json.loads(models.end.supervisor.Task.all()[0].answer)
    with test("""
        assert the answer is the number of notes with the tag.
        """):
        test.answer(predicted_answer, ground_truth_answer)
    with test("""
        assert no note was added, removed or changed.
        """):
        test.case(models.changed_model_names(ignore=["simple_note.User"]), "==", set())
'''


def count_by_tag(models, sup: Supervisor, rng: random.Random) -> TaskSpec:
    notes = _add_notes(models, sup, rng, rng.randint(6, 30))
    tag = _pick_tag(rng, notes)
    solution = ("def solution(apis, requester):\n" + indent(login_code("simple_note"))
                + SEARCH_BY_TAG.replace("{tag}", tag) + "    apis.supervisor.complete_task(answer=len(found))\n")
    return TaskSpec(instruction=f"How many notes do I have in Simple Note with the tag \"{tag}\"?",
                    solution=solution, evaluation=COUNT_EVALUATION,
                    answer=sum(tag in n.tags for n in notes), public_data={"tag": tag})


DELETE_EVALUATION = '''
import json


def evaluate(test, public_data, private_data, main_user, models, ground_truth_answer):
    predicted_answer = json.loads(models.end.supervisor.Task.all()[0].answer)
    added, updated, removed = models.changed_records("simple_note.Note")
    with test("""
        assert exactly the notes with the tag were removed.
        """):
        test.case(sorted(r.id for r in removed), "==", sorted(private_data.delete_ids))
    with test("""
        assert no note was added or updated.
        """):
        test.case(len(added) + len(updated), "==", 0)
    with test("""
        assert the answer is None (the task asks no question).
        """):
        test.answer(predicted_answer, ground_truth_answer)
'''


def delete_by_tag(models, sup: Supervisor, rng: random.Random) -> TaskSpec:
    notes = _add_notes(models, sup, rng, rng.randint(5, 20))
    tag = _pick_tag(rng, notes)
    solution = ("def solution(apis, requester):\n" + indent(login_code("simple_note"))
                + SEARCH_BY_TAG.replace("{tag}", tag)
                + "    for note in found:\n"
                  "        apis.simple_note.delete_note(access_token=token, note_id=note[\"note_id\"])\n"
                  "    apis.supervisor.complete_task()\n")
    return TaskSpec(instruction=f"Delete all my notes in Simple Note that are tagged \"{tag}\".",
                    solution=solution, evaluation=DELETE_EVALUATION, answer=None, public_data={"tag": tag},
                    private_data={"delete_ids": [n.id for n in notes if tag in n.tags]})


TEMPLATES = [
    Template("simple_note.count_by_tag", ("simple_note",), count_by_tag),
    Template("simple_note.delete_by_tag", ("simple_note",), delete_by_tag),
]
