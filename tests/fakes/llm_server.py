"""A local fake LLM server speaking the OpenAI chat-completions and Anthropic messages wire formats.

The real SDK clients talk to it over HTTP on 127.0.0.1, so their timeouts and our error handling run for
real. Each test scripts the answers in order: text, delays, HTTP errors with headers (429 + Retry-After),
malformed or truncated bodies. Every request is recorded (path, headers, JSON body) for assertions.

    with FakeLLMServer() as server:
        server.script(Step(text='{"action": "proceed"}'), Step(status=429, headers={"retry-after": "1"}))
        config = server.openai_provider("deepseek")   # a ProviderConfig pointing at the server
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import SecretStr

from triplegain.llm.models import ProviderConfig

TEST_KEY = "sk-test-SECRET-0123456789abcdef"


@dataclass
class Step:
    """One scripted response."""

    text: str = "{}"
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # a raw body instead of a well-formed one (malformed JSON)
    truncate: bool = False  # promise more bytes than are sent, then close
    tokens_in: int = 100
    tokens_out: int = 20


@dataclass
class Recorded:
    """A request the server received."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def prompt_text(self) -> str:
        """Everything the model was told: system prompt and messages."""
        parts = [str(self.body.get("system", ""))]
        parts += [str(m.get("content", "")) for m in self.body.get("messages", [])]
        return "\n".join(parts)


class FakeLLMServer:
    """The server; use as a context manager. Thread-safe: concurrent requests take steps in order."""

    def __init__(self) -> None:
        self._steps: deque[Step] = deque()
        self._by_model: dict[str, deque[Step]] = {}
        self._lock = threading.Lock()
        self.default: Step | None = None
        self.responder: Callable[[dict[str, Any]], Step | None] | None = None  # answers from the request
        self.requests: list[Recorded] = []
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests the server held at once: parallelism, without a clock
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-llm", daemon=True
        )

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def script(self, *steps: Step) -> None:
        """Queue responses, served in order to whichever requests come next."""
        with self._lock:
            self._steps.extend(steps)

    def script_for(self, model: str, *steps: Step) -> None:
        """Queue responses for requests naming `model` only (concurrent callers stay deterministic)."""
        with self._lock:
            self._by_model.setdefault(model, deque()).extend(steps)

    def answer(self, payload: dict[str, Any] | str, **kw: Any) -> Step:
        """A successful answer whose text is `payload` (JSON-encoded when a dict)."""
        return Step(text=payload if isinstance(payload, str) else json.dumps(payload), **kw)

    def openai_provider(
        self, name: str = "deepseek", model: str = "deepseek-chat", **kw: Any
    ) -> ProviderConfig:
        """A provider config on the OpenAI wire format pointing at this server."""
        return ProviderConfig(
            name=name,
            kind="openai",
            model=model,
            base_url=f"{self.url}/v1",
            api_key=SecretStr(TEST_KEY),
            **kw,
        )

    def anthropic_provider(
        self, name: str = "anthropic", model: str = "claude-test", **kw: Any
    ) -> ProviderConfig:
        """A provider config on the Anthropic wire format pointing at this server."""
        return ProviderConfig(
            name=name, kind="anthropic", model=model, base_url=self.url, api_key=SecretStr(TEST_KEY), **kw
        )

    def _next(self, body: dict[str, Any]) -> Step | None:
        model = body.get("model")
        if self.responder is not None and (step := self.responder(body)) is not None:
            return step
        with self._lock:
            own = self._by_model.get(model or "")
            if own:
                return own.popleft()
            return self._steps.popleft() if self._steps else self.default

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return None

            def do_POST(self) -> None:
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._answer()
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self) -> None:
                length = int(self.headers.get("content-length", 0))
                raw = self.rfile.read(length)
                body = json.loads(raw) if raw else {}
                server.requests.append(
                    Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                step = server._next(body)
                if step is None:
                    self._send(500, {"error": {"message": "fake server: no scripted answer left"}}, {})
                    return
                if step.delay:
                    time.sleep(step.delay)
                anthropic = self.path.endswith("/messages")
                if step.body is not None:
                    self._send_bytes(step.status, step.body, step.headers, step.truncate)
                elif step.status != 200:
                    self._send(step.status, _error_body(step.status, anthropic), step.headers, step.truncate)
                else:
                    payload = _anthropic_answer(step, body) if anthropic else _openai_answer(step, body)
                    self._send(200, payload, step.headers, step.truncate)

            def _send(
                self, status: int, payload: dict[str, Any], headers: dict[str, str], truncate: bool = False
            ) -> None:
                self._send_bytes(status, json.dumps(payload).encode(), headers, truncate)

            def _send_bytes(self, status: int, data: bytes, headers: dict[str, str], truncate: bool) -> None:
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data) + (100 if truncate else 0)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2] if truncate else data)
                    self.wfile.flush()
                    if truncate:
                        self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (its timeout): nothing to do

        return Handler


def _openai_answer(step: Step, request: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "fake"),
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": step.text}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": step.tokens_in,
            "completion_tokens": step.tokens_out,
            "total_tokens": step.tokens_in + step.tokens_out,
        },
    }


def _anthropic_answer(step: Step, request: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": request.get("model", "fake"),
        "content": [{"type": "text", "text": step.text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": step.tokens_in, "output_tokens": step.tokens_out},
    }


def _error_body(status: int, anthropic: bool) -> dict[str, Any]:
    kind = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error"}.get(
        status, "api_error"
    )
    message = f"fake {kind} ({status})"
    if anthropic:
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "code": status}}
