"""Todoist: count my pending high-priority tasks; complete every pending task in a project."""
from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from ..people import Supervisor
from ..task import TaskSpec, Template, all_pages, indent, login_code

PROJECTS = ["Home Renovation", "Work Q2", "Fitness Goals", "Vacation Planning", "Reading List", "Side Project",
            "Wedding Prep", "Garden", "Finances", "Moving House", "Learning Spanish", "Birthday Party"]
SECTIONS = ["Backlog", "This Week", "Waiting", "Ideas"]
TASKS = ["Call the plumber", "Book flights", "Pay electricity bill", "Renew passport", "Buy paint",
         "Email the landlord", "Schedule dentist visit", "Order new running shoes", "Draft the report",
         "Review pull request", "Clean the garage", "Pick up dry cleaning", "Plan the menu", "Update resume",
         "Back up laptop", "Water the plants", "Compare insurance quotes", "Send invitations", "File taxes",
         "Fix the leaking tap", "Cancel gym trial", "Research hotels", "Write thank-you notes", "Sort photos"]


def _add_projects(models: Any, sup: Supervisor, rng: random.Random, n_projects: int) -> list[tuple[Any, list]]:
    """The supervisor's Inbox plus `n_projects` named projects, each with tasks (some in sections)."""
    user = sup.open_account("todoist")
    names = ["Inbox"] + rng.sample(PROJECTS, n_projects)
    projects = []
    for p_index, name in enumerate(names):
        created = datetime(2022, 6, 1) + timedelta(days=rng.randrange(300), minutes=rng.randrange(1440))
        project = models.todoist.Project(user_id=user.id, name=name, is_inbox=p_index == 0, created_at=created,
                                         color=rng.choice(["charcoal", "red", "blue", "green", "orange"]))
        project.save()
        models.todoist.ProjectCollaboratorLink(project_id=project.id, user_id=user.id, created_at=created,
                                               is_favorite=rng.random() < 0.3).save()
        sections = [None]
        for s_index, s_name in enumerate(rng.sample(SECTIONS, rng.randint(0, 2))):
            section = models.todoist.Section(project_id=project.id, name=s_name, order_index=s_index,
                                             created_at=created + timedelta(hours=1))
            section.save()
            sections.append(section.id)
        tasks, order = [], {}
        for title in rng.sample(TASKS, rng.randint(3, 9)):
            section_id = rng.choice(sections)
            order[section_id] = order.get(section_id, -1) + 1
            due = datetime(2023, 4, 1) + timedelta(days=rng.randrange(90)) if rng.random() < 0.7 else None
            task = models.todoist.Task(
                project_id=project.id, section_id=section_id, user_id=user.id, title=title,
                description="", due_date=due, priority=rng.choice(["high", "medium", "low"]),
                is_completed=rng.random() < 0.35, order_index=order[section_id],
                created_at=created + timedelta(days=rng.randrange(1, 30)))
            task.save()
            tasks.append(task)
        projects.append((project, tasks))
    return projects


ALL_PROJECTS = all_pages(
    "projects", "apis.todoist.show_projects(access_token=token, page_index=page, page_limit=5)")

TASKS_OF = """
    def tasks_of(project_id, **filters):
        shown = apis.todoist.show_tasks(access_token=token, project_id=project_id, **filters)
        return shown["no_section_tasks"] + [t for s in shown["sections"] for t in s["tasks"]]

"""

COUNT_EVALUATION = '''
import json


def evaluate(test, public_data, private_data, main_user, models, ground_truth_answer):
    predicted_answer = json.loads(models.end.supervisor.Task.all()[0].answer)
    with test("""
        assert the answer is the number of incomplete high-priority tasks across all projects.
        """):
        test.answer(predicted_answer, ground_truth_answer)
    with test("""
        assert no todoist project, task or anything else was changed.
        """):
        test.case(models.changed_model_names(ignore=["todoist.User"]), "==", set())
'''


def count_high_priority(models: Any, sup: Supervisor, rng: random.Random) -> TaskSpec:
    projects = _add_projects(models, sup, rng, rng.randint(5, 9))
    solution = ("def solution(apis, requester):\n" + indent(login_code("todoist")) + ALL_PROJECTS + TASKS_OF
                + "    count = 0\n"
                  "    for project in projects:\n"
                  "        count += len(tasks_of(project[\"project_id\"], priority=\"high\", is_completed=False))\n"
                  "    apis.supervisor.complete_task(answer=count)\n")
    answer = sum(t.priority == "high" and not t.is_completed for _, tasks in projects for t in tasks)
    return TaskSpec(instruction="How many incomplete high-priority tasks do I have across all my Todoist projects?",
                    solution=solution, evaluation=COUNT_EVALUATION, answer=answer)


COMPLETE_EVALUATION = '''
import json


def evaluate(test, public_data, private_data, main_user, models, ground_truth_answer):
    predicted_answer = json.loads(models.end.supervisor.Task.all()[0].answer)
    added, updated, removed = models.changed_records("todoist.Task")
    with test("""
        assert exactly the pending tasks of the project were updated, and are now completed.
        """):
        test.case(sorted(t.id for t in updated), "==", sorted(private_data.complete_ids))
        test.case(all(t.is_completed for t in updated), "==", True)
    with test("""
        assert no task was added or removed, and nothing but tasks changed.
        """):
        test.case(len(added) + len(removed), "==", 0)
        test.case(models.changed_model_names(ignore=["todoist.User", "todoist.Task"]), "==", set())
    with test("""
        assert the answer is None (the task asks no question).
        """):
        test.answer(predicted_answer, ground_truth_answer)
'''


def complete_project_tasks(models: Any, sup: Supervisor, rng: random.Random) -> TaskSpec:
    projects = _add_projects(models, sup, rng, rng.randint(4, 9))
    project, tasks = rng.choice(projects[1:])
    for task in tasks[:2]:  # at least two pending tasks to complete
        task.is_completed = False
        task.save()
    solution = ("def solution(apis, requester):\n" + indent(login_code("todoist")) + ALL_PROJECTS + TASKS_OF
                + f"    project = next(p for p in projects if p[\"name\"] == \"{project.name}\")\n"
                  "    for task in tasks_of(project[\"project_id\"], is_completed=False):\n"
                  "        apis.todoist.update_task(access_token=token, task_id=task[\"task_id\"], is_completed=True)\n"
                  "    apis.supervisor.complete_task()\n")
    return TaskSpec(instruction=f"Mark all the pending tasks in my Todoist project \"{project.name}\" as completed.",
                    solution=solution, evaluation=COMPLETE_EVALUATION, answer=None,
                    public_data={"project_name": project.name},
                    private_data={"complete_ids": [t.id for t in tasks if not t.is_completed]})


TEMPLATES = [
    Template("todoist.count_high_priority", ("todoist",), count_high_priority),
    Template("todoist.complete_project_tasks", ("todoist",), complete_project_tasks),
]
