"""A small HTTP server speaking OpenAI's chat-completions and Anthropic's messages protocols.

Tests start it on 127.0.0.1 (a free port), script its answers, and point the real SDKs at it.
Each request takes the next scripted :class:`Reply` for its path; with none left, it answers
with a successful completion carrying :attr:`ProtocolServer.default_findings`.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"


@dataclass
class Reply:
    """One scripted answer.

    ``content`` is the model's text for a 200; ``status`` other than 200 sends an error body in
    the provider's format; ``delay_s`` waits before answering (to outlast a deadline).
    """

    status: int = 200
    content: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    error_message: str = "scripted error"
    raw_body: bytes | None = None


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def findings_json(*findings: dict[str, Any]) -> str:
    return json.dumps({"findings": list(findings)})


class ProtocolServer:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.default_findings = findings_json(
            {
                "severity": "warning",
                "message": "Use a context manager to close the file",
                "line": 2,
                "column": 5,
                "rule": "resource-leak",
                "suggestion": "with open(path) as handle:",
            }
        )
        self._scripts: dict[str, deque[Reply]] = {OPENAI_PATH: deque(), ANTHROPIC_PATH: deque()}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def openai_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self._scripts[path].extend(replies)

    def start(self) -> ProtocolServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a scripted delay
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _next(self, path: str) -> Reply:
        with self._lock:
            queue = self._scripts.get(path)
            return queue.popleft() if queue else Reply()

    def _answer(self, path: str, body: dict[str, Any]) -> tuple[int, bytes, dict[str, str]] | None:
        if path not in (OPENAI_PATH, ANTHROPIC_PATH):
            return 404, b'{"error": {"message": "not found"}}', {}
        reply = self._next(path)
        if reply.delay_s and self._stopping.wait(reply.delay_s):
            return None
        if reply.raw_body is not None:
            return reply.status, reply.raw_body, reply.headers
        if reply.status != 200:
            return reply.status, json.dumps(_error_body(path, reply)).encode(), reply.headers
        content = self.default_findings if reply.content is None else reply.content
        return 200, json.dumps(_success_body(path, body, content)).encode(), reply.headers

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                path = self.path.split("?", 1)[0]
                server.requests.append(
                    Recorded(path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                answer = server._answer(path, body)
                if answer is not None:
                    self._send_bytes(*answer)

            def _send_bytes(self, status: int, data: bytes, headers: dict[str, str]) -> None:
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test); nothing to answer

        return Handler


def _success_body(path: str, request: dict[str, Any], content: str) -> dict[str, Any]:
    model = request.get("model", "test-model")
    if path == OPENAI_PATH:
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        }
    return {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": content}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 11, "output_tokens": 7},
    }


def _error_body(path: str, reply: Reply) -> dict[str, Any]:
    kinds = {
        401: "authentication_error",
        429: "rate_limit_error",
        500: "api_error",
        503: "overloaded_error",
    }
    kind = kinds.get(reply.status, "invalid_request_error")
    if path == OPENAI_PATH:
        return {
            "error": {"message": reply.error_message, "type": kind, "param": None, "code": kind}
        }
    return {"type": "error", "error": {"type": kind, "message": reply.error_message}}
