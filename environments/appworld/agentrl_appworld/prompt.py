"""What the agent reads (AppWorld's conventions) and how its code is taken from its reply."""
from __future__ import annotations

import re

# how a task's ground-truth `def solution(apis, requester)` is run as agent code (builder and expert alike)
SOLUTION_CALL = "\nsolution(apis, requester)\n"
_CODE_BLOCK = re.compile(r"```[ \t]*(?:python|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def instructions(max_interactions: int) -> str:
    return (
        "You complete your supervisor's task on their phone's apps (spotify, venmo, simple_note, todoist, "
        "phone, file_system, gmail, amazon, splitwise) by writing Python. Each turn, write one ```python "
        "code block; it runs in a persistent Python session and you see what it prints. Call the apps "
        "through `apis.<app>.<api>(...)`:\n"
        "- `print(apis.api_docs.show_app_descriptions())` lists the apps,\n"
        "- `print(apis.api_docs.show_api_descriptions(app_name='venmo'))` lists an app's APIs,\n"
        "- `print(apis.api_docs.show_api_doc(app_name='venmo', api_name='login'))` shows an API's "
        "parameters and response.\n"
        "Your supervisor's account passwords are in `apis.supervisor.show_account_passwords()` and their "
        "profile in `apis.supervisor.show_profile()`. Log in to an app with its `login` API to get an "
        "access token. Many APIs return one page at a time: pass `page_index` until a page comes back empty. "
        "When the task is done, call `apis.supervisor.complete_task()`, or "
        "`apis.supervisor.complete_task(answer=...)` when the task asks a question (answer with the bare "
        f"value, e.g. 12 or \"Lima\"). You have at most {max_interactions} code executions."
    )


def task_text(instruction: str, supervisor: dict) -> str:
    who = f"{supervisor.get('first_name', '')} {supervisor.get('last_name', '')}".strip()
    return (f"My name is {who}, my email is {supervisor.get('email', '')} and my phone number is "
            f"{supervisor.get('phone_number', '')}.\nTask: {instruction}")


def extract_code(reply: str) -> tuple[str, bool]:
    """(code, found_block): the first ```python (or bare ```) block of the reply; a reply
    without one is run as it is (found_block False), stripped of a lone closing fence."""
    match = _CODE_BLOCK.search(reply)
    if match:
        return match.group(1).strip("\n"), True
    return reply.replace("```", "").strip(), False


def truncate(text: str, max_chars: int) -> str:
    """Long outputs keep their head and tail (errors and results tend to sit at the ends)."""
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    head = max_chars * 2 // 3
    tail = max_chars - head
    return f"{text[:head]}\n... [{len(text) - max_chars} characters cut] ...\n{text[-tail:]}"
