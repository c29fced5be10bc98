"""File System: file_system.count_by_extension (files of a type under a folder); file_system.move_by_extension."""
from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from ..people import Supervisor
from ..task import Template, TaskSpec, indent, login_code

# home-relative directories (each ends with "/") and the file types each tends to hold
TREE = {
    "Documents/": ["pdf", "docx", "txt", "xlsx"], "Documents/Work/": ["pdf", "docx", "xlsx", "pptx"],
    "Documents/Taxes/": ["pdf", "xlsx", "csv"], "Downloads/": ["pdf", "jpg", "png", "epub", "csv", "mp3"],
    "Downloads/Installers/": ["dmg", "pdf", "jpg"], "Pictures/": ["jpg", "png"], "Pictures/2022/": ["jpg", "png"],
    "Music/": ["mp3", "wav"], "Projects/": ["py", "md", "txt", "json"], "Projects/website/": ["html", "css", "md"],
}
DOCS = ["report", "invoice", "notes", "summary", "budget", "draft", "receipt", "plan", "agenda", "letter", "resume"]
STEMS = {"jpg": ["IMG", "photo", "beach", "birthday", "hike"], "png": ["screenshot", "diagram", "logo", "scan"],
         "mp3": ["track", "podcast", "song"], "wav": ["recording", "voice_memo"], "dmg": ["setup", "installer"],
         "py": ["script", "utils", "main"], "md": ["readme", "notes", "todo"], "json": ["config", "data"],
         "html": ["index", "about", "contact"], "css": ["style", "theme"], "csv": ["data", "expenses", "export"],
         "epub": ["novel", "guide"], "pptx": ["slides", "pitch", "review"]}



def _add_files(models: Any, sup: Supervisor, rng: random.Random, n: int) -> tuple[str, list[Any]]:
    """The supervisor's account, home tree (/, /home/, /home/<first>/, TREE) and `n` files with unique names."""
    user = sup.open_account("file_system")
    home = f"/home/{sup.person.first_name.lower()}/"
    start = datetime(2022, 2, 1)
    for path in ["/", "/home/", home] + [home + d for d in TREE]:
        models.file_system.Directory(path=path, user_id=user.id, created_at=start,
                                     updated_at=start + timedelta(days=rng.randrange(400))).save()
    files = []
    for i in range(n):
        folder = rng.choice(list(TREE))
        ext = rng.choice(TREE[folder])
        name = f"{rng.choice(STEMS.get(ext, DOCS))}_{i + 1:03d}.{ext}"
        created = datetime(2022, 3, 1) + timedelta(days=rng.randrange(420), minutes=rng.randrange(1440))
        file = models.file_system.File(path=home + folder + name, user_id=user.id, content=f"Contents of {name}.",
                                       created_at=created, updated_at=created + timedelta(days=rng.randrange(20)))
        file.save()
        files.append(file)
    return home, files


COUNT_EVALUATION = '''
import json


def evaluate(test, public_data, private_data, main_user, models, ground_truth_answer):
    predicted_answer = json.loads(models.end.supervisor.Task.all()[0].answer)
    with test("""
        assert the answer is the number of files with the extension under the directory (recursively).
        """):
        test.answer(predicted_answer, ground_truth_answer)
    with test("""
        assert no file or directory was added, removed or changed.
        """):
        test.case(models.changed_model_names(ignore=["file_system.User"]), "==", set())
'''


def count_by_extension(models: Any, sup: Supervisor, rng: random.Random) -> TaskSpec:
    home, files = _add_files(models, sup, rng, rng.randint(25, 60))
    folder = rng.choice(["Documents/", "Downloads/", "Pictures/", "Projects/"])
    inside = [f for f in files if f.path.startswith(home + folder)]
    ext = rng.choice(sorted({f.path.rsplit(".", 1)[1] for f in inside}))
    answer = sum(f.path.endswith("." + ext) for f in inside)
    solution = ("def solution(apis, requester):\n" + indent(login_code("file_system")) + indent(f"""\
        paths = apis.file_system.show_directory(access_token=token, directory_path="~/{folder}", entry_type="files",
                                                recursive=True)
        apis.supervisor.complete_task(answer=sum(path.endswith(".{ext}") for path in paths))
    """))
    return TaskSpec(
        instruction=f"How many .{ext} files are there in my ~/{folder} directory in the file system, "
                    f"counting its subdirectories too?",
        solution=solution, evaluation=COUNT_EVALUATION, answer=answer, public_data={"directory": folder, "ext": ext})


MOVE_EVALUATION = '''
import json


def evaluate(test, public_data, private_data, main_user, models, ground_truth_answer):
    added, updated, removed = models.changed_records("file_system.File")
    with test("""
        assert exactly the files with the extension directly in the source directory were removed from there.
        """):
        test.case(sorted(r.id for r in removed), "==", sorted(private_data.moved_ids))
    with test("""
        assert the same files (names and contents) were added to the destination directory, and no file was updated.
        """):
        test.case(sorted(a.path for a in added), "==", sorted(private_data.destination_paths))
        test.case(sorted(a.content for a in added), "==", sorted(private_data.contents))
        test.case(len(updated), "==", 0)
    with test("""
        assert no directory was added or removed, and nothing else changed.
        """):
        added, updated, removed = models.changed_records("file_system.Directory")
        test.case(len(added) + len(removed), "==", 0)
        test.case(models.changed_model_names(ignore=["file_system.User", "file_system.File",
                                                     "file_system.Directory"]), "==", set())
'''


def move_by_extension(models: Any, sup: Supervisor, rng: random.Random) -> TaskSpec:
    home, files = _add_files(models, sup, rng, rng.randint(20, 50))
    ext, destination = rng.choice([("jpg", "Pictures/"), ("png", "Pictures/"), ("pdf", "Documents/"),
                                   ("csv", "Documents/Taxes/"), ("mp3", "Music/")])
    for _ in range(rng.randint(1, 4)):  # at least one file to move
        created = datetime(2023, 4, 1) + timedelta(days=rng.randrange(45), minutes=rng.randrange(1440))
        name = f"{rng.choice(STEMS.get(ext, DOCS))}_{len(files) + 1:03d}.{ext}"
        file = models.file_system.File(path=home + "Downloads/" + name, user_id=files[0].user_id,
                                       content=f"Contents of {name}.", created_at=created, updated_at=created)
        file.save()
        files.append(file)
    moved = [f for f in files if f.path.startswith(home + "Downloads/") and f.path.count("/") == 4
             and f.path.endswith("." + ext)]
    solution = ("def solution(apis, requester):\n" + indent(login_code("file_system")) + indent(f"""\
        paths = apis.file_system.show_directory(access_token=token, directory_path="~/Downloads/", entry_type="files",
                                                recursive=False)
        for path in paths:
            if path.endswith(".{ext}"):
                apis.file_system.move_file(access_token=token, source_file_path=path,
                                           destination_file_path="~/{destination}" + path.rsplit("/", 1)[1])
        apis.supervisor.complete_task()
    """))
    return TaskSpec(
        instruction=f"Move all the .{ext} files that are directly in my ~/Downloads/ directory (not in its "
                    f"subdirectories) to ~/{destination}, keeping their file names.",
        solution=solution, evaluation=MOVE_EVALUATION, answer=None,
        public_data={"ext": ext, "destination": destination},
        private_data={"moved_ids": [f.id for f in moved], "contents": [f.content for f in moved],
                      "destination_paths": [home + destination + f.path.rsplit("/", 1)[1] for f in moved]})


TEMPLATES = [
    Template("file_system.count_by_extension", ("file_system",), count_by_extension),
    Template("file_system.move_by_extension", ("file_system",), move_by_extension),
]
