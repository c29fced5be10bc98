"""Where the project's shared external data lives: `<repo>/../shared/data` (CI lays a copy of
shared/ beside the clone), or AGENTRL_SHARED_DIR. Missing data fails tests, it does not skip them."""
import os
from pathlib import Path

_candidates = [os.environ.get("AGENTRL_SHARED_DIR"), Path(__file__).resolve().parents[2] / "shared", "/work/shared"]
SHARED_DATA = next((Path(c) / "data" for c in _candidates if c and (Path(c) / "data").is_dir()),
                   Path(__file__).resolve().parents[2] / "shared" / "data")
