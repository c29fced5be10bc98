"""A fake Hugging Face Hub on 127.0.0.1: just the endpoints huggingface_hub's `create_repo` and
`upload_folder` call (read from its source: hf_api.create_repo, HfApi._validate_yaml,
_commit_api._fetch_upload_modes and _send_commit), keeping the committed files in memory.

The real Hub decides per file whether content travels inline ("regular") or through LFS/Xet
storage; this one answers "regular" for every file, so the whole upload goes through the commit
endpoint as base64 (what the Hub does for small text files) and no storage protocol is needed.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

_REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"


class FakeHub:
    def __init__(self, token: str) -> None:
        self.token = token
        self.repos: dict[str, dict] = {}  # repo id -> {"private": bool, "files": {path: bytes}, "commits": [...]}
        self.requests: list[tuple[str, str]] = []  # (method, path) in order
        self.unexpected: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                hub.requests.append(("POST", self.path))
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Authorization") != f"Bearer {hub.token}":
                    return self._reply(401, {"error": "Invalid credentials in Authorization header"})
                path = self.path.split("?", 1)[0]
                if path == "/api/repos/create":
                    return self._reply(*hub.create(json.loads(body)))
                if path == "/api/validate-yaml":
                    return self._reply(*hub.validate_yaml(json.loads(body)))
                m = re.fullmatch(rf"/api/models/{_REPO}/(?P<op>preupload|commit)/(?P<rev>[^/]+)", path)
                if m and m["repo"] not in hub.repos:
                    return self._reply(404, {"error": "Repository not found"})
                if m and m["op"] == "preupload":
                    return self._reply(*hub.preupload(json.loads(body)))
                if m and m["op"] == "commit":
                    return self._reply(*hub.commit(m["repo"], body))
                hub.unexpected.append(("POST", self.path))
                return self._reply(404, {"error": f"fake hub: no route for POST {self.path}"})

            def do_GET(self) -> None:
                hub.requests.append(("GET", self.path))
                if self.path == "/api/agent-harnesses":  # the client's best-effort user-agent registry
                    return self._reply(200, {"standardEnvVars": [], "harnesses": {}})
                hub.unexpected.append(("GET", self.path))
                self._reply(404, {"error": f"fake hub: no route for GET {self.path}"})

            do_HEAD = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    # -- endpoints -------------------------------------------------------------
    def create(self, payload: dict) -> tuple[int, dict]:
        repo = f"{payload['organization']}/{payload['name']}"
        if payload.get("type", "model") != "model":
            return 400, {"error": "fake hub: models only"}
        if repo in self.repos:
            return 409, {"error": "You already created this model repo", "url": f"{self.url}/{repo}"}
        self.repos[repo] = {"private": payload.get("visibility") == "private", "files": {}, "commits": []}
        return 200, {"url": f"{self.url}/{repo}"}

    def validate_yaml(self, payload: dict) -> tuple[int, dict]:
        content = payload["content"]
        match = re.match(r"---\n(.*?)\n---\n", content, re.S)
        try:
            meta = yaml.safe_load(match.group(1)) if match else None
        except yaml.YAMLError as exc:
            return 400, {"errors": [{"message": f"invalid YAML: {exc}"}]}
        if not isinstance(meta, dict):
            return 400, {"errors": [{"message": "no YAML metadata block"}]}
        return 200, {"errors": [], "warnings": []}

    def preupload(self, payload: dict) -> tuple[int, dict]:
        return 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                               for f in payload["files"]]}

    def commit(self, repo: str, body: bytes) -> tuple[int, dict]:
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not lines or lines[0]["key"] != "header":
            return 400, {"error": "the commit payload must start with a header"}
        files = {}
        for item in lines[1:]:
            if item["key"] != "file" or item["value"].get("encoding") != "base64":
                return 400, {"error": f"fake hub: unexpected commit item {item['key']}"}
            files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
        self.repos[repo]["files"].update(files)
        oid = hashlib.sha1(body).hexdigest()
        self.repos[repo]["commits"].append({"summary": lines[0]["value"]["summary"], "files": sorted(files), "oid": oid})
        return 200, {"commitUrl": f"{self.url}/{repo}/commit/{oid}", "commitOid": oid, "pullRequestUrl": None}
