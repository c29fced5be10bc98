"""The world every task starts from: API docs and empty real-schema databases.

AppWorld's released data ships these; here they are built from the installed package:
`ApiDocCollection.build()` reads the apps' FastAPI routes, and `ModelCollection` creates
every app's SQLite schema. The `api_docs` app answers `apis.api_docs.*` from its own
`ApiDoc` table, so that table is filled from the built docs (else every docs call is 422).
"""
from __future__ import annotations

import os

from appworld.apps import get_all_apps
from appworld.collections.api_docs import ApiDocCollection
from appworld.collections.models import ModelCollection


def build_base(data_dir: str) -> None:
    """API docs under data/api_docs and empty base DBs under data/base_dbs (skipped when present)."""
    if not os.path.exists(os.path.join(data_dir, "api_docs", "standard", "simple_note.json")):
        ApiDocCollection.build().save()  # to $APPWORLD_ROOT/data/api_docs
    base = os.path.join(data_dir, "base_dbs")
    if os.path.exists(os.path.join(base, "api_docs.db")):
        return
    os.makedirs(base, exist_ok=True)
    models = ModelCollection.load(to_db_home_path=base, load_apps=get_all_apps(), create_db=True)
    docs = ApiDocCollection.load()
    rows = [
        models.api_docs.ApiDoc(app_name_=app, api_name=name, path=doc["path"], method=doc["method"],
                               description=doc["description"], parameters=doc["parameters"],
                               response_schemas=doc["response_schemas"])
        for app, api_name_to_doc in docs.items() for name, doc in api_name_to_doc.items()
    ]
    models.api_docs.ApiDoc.save_all(rows)
    models.close()
