"""A loopback stand-in for the Hugging Face Hub: the endpoints ``create_repo``/``upload_folder`` use.

Speaks just enough of the Hub's HTTP API for a small upload: ``POST /api/repos/create``, the
model card check (``/api/validate-yaml``),
pre-upload check (every file answered as a "regular" upload, so its bytes travel inside the
commit rather than through LFS) and the NDJSON commit. Tokens: ``hf_write`` may write,
``hf_read`` is refused with 403, anything else with 401. Point huggingface_hub at it with
``HfApi(endpoint=server.url)`` or ``HF_ENDPOINT``.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeHub"]

WRITE_TOKEN = "hf_write"
READ_TOKEN = "hf_read"


class FakeHub:
    """The server, its repositories and the files committed to them."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, Any]] = {}
        self.files: dict[str, dict[str, bytes]] = {}
        self.unhandled: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:
                hub._post(self)

            def do_GET(self) -> None:
                hub.unhandled.append(f"GET {self.path}")
                self._reply(404, {"error": "not here"})

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._handler = Handler
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _post(self, request: Any) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length)
        token = (request.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if token not in {WRITE_TOKEN, READ_TOKEN}:
            request._reply(401, {"error": "Invalid credentials in Authorization header"})
            return
        if token == READ_TOKEN:
            request._reply(403, {"error": "You don't have the rights to create a model"})
            return
        path = request.path.split("?")[0]
        if path == "/api/validate-yaml":  # the model card's metadata
            request._reply(200, {})
        elif path == "/api/repos/create":
            self._create(request, json.loads(body))
        elif "/preupload/" in path:
            files = json.loads(body)["files"]
            request._reply(
                200,
                {
                    "files": [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                        for f in files
                    ],
                    "commitOid": "0" * 40,
                },
            )
        elif "/commit/" in path:
            repo_id = path.removeprefix("/api/models/").split("/commit/")[0]
            self._commit(request, repo_id, body)
        else:
            self.unhandled.append(f"POST {path}")
            request._reply(404, {"error": "not here"})

    def _create(self, request: Any, data: dict[str, Any]) -> None:
        repo_id = f"{data.get('organization') or 'me'}/{data['name']}"
        if repo_id in self.repos:
            request._reply(409, {"error": "You already created this model repo", "url": ""})
            return
        private = bool(data.get("private")) or data.get("visibility") == "private"
        self.repos[repo_id] = {"private": private}
        self.files[repo_id] = {}
        request._reply(200, {"url": f"{self.url}/{repo_id}", "name": repo_id})

    def _commit(self, request: Any, repo_id: str, body: bytes) -> None:
        for line in body.decode().splitlines():
            item = json.loads(line)
            if item.get("key") == "file":
                value = item["value"]
                self.files[repo_id][value["path"]] = base64.b64decode(value["content"])
        request._reply(
            200,
            {"commitUrl": f"{self.url}/{repo_id}/commit/{'a' * 40}", "commitOid": "a" * 40},
        )
