"""A scriptable loopback HTTP server: routes, a queue of replies or faults per endpoint, a log.

Each route maps (method, regex) to an endpoint name. A request takes the next scripted item of
its endpoint's queue; when the queue is empty the endpoint's ``default`` handler answers. Every
request is recorded (headers, body, which fault it got), unrouted ones and proxy CONNECTs too, so
tests can assert on what the SDK sent, and that nothing was sent. Faults are HTTP errors, a hang
(longer than the client's timeout) and a dropped connection.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One HTTP answer. ``fault`` labels it in the request log (None for an honest answer)."""

    status: int = 200
    body: Any = None  # dict/list -> JSON, bytes -> as is, str -> text
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (a hang, when above the client timeout)
    drop: bool = False  # close the connection without answering
    fault: str | None = None


def error(status: int, message: str = "injected", *, retry_after: float | None = None, fault: str | None = None) -> Reply:
    """A Google/OpenAI-shaped JSON error."""
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
    body = {"error": {"code": status, "message": message, "status": _STATUS.get(status, "ERROR"), "type": "error"}}
    return Reply(status, body, headers, fault=fault or f"http_{status}")


def hang(seconds: float) -> Reply:
    return Reply(200, {}, delay=seconds, drop=True, fault="timeout")


_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


@dataclass
class Request:
    """One recorded request."""

    method: str
    path: str
    endpoint: str
    headers: dict[str, str]
    body: bytes
    match: dict[str, str]
    fault: str | None = None
    reply: Reply | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


Handler = Callable[[Request], Reply]
UNROUTED = "unrouted"  # the endpoint name of a request no route matched (answered 404)


class _Quiet(ThreadingHTTPServer):
    """A client that gave up (timeout) resets the connection: expected here, not worth a traceback."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeServer:
    """ThreadingHTTPServer on 127.0.0.1, port 0, in a daemon thread; use as a context manager."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], str]] = []
        self.defaults: dict[str, Handler] = {}
        self.queues: dict[str, deque[Reply | Handler]] = defaultdict(deque)
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    # ----- scripting
    def route(self, method: str, pattern: str, endpoint: str, default: Handler) -> None:
        self.routes.append((method, re.compile(pattern), endpoint))
        self.defaults[endpoint] = default

    def script(self, endpoint: str, *items: Reply | Handler) -> None:
        """Queue replies (or handlers) for the next requests to ``endpoint``."""
        with self.lock:
            self.queues[endpoint].extend(items)

    def calls(self, endpoint: str) -> list[Request]:
        return [r for r in self.requests if r.endpoint == endpoint]

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # ----- serving
    def find(self, method: str, path: str) -> tuple[str | None, dict[str, str]]:
        for verb, pattern, endpoint in self.routes:
            found = pattern.fullmatch(path)
            if verb == method and found:
                return endpoint, found.groupdict()
        return None, {}

    def answer(self, request: Request) -> Reply:
        with self.lock:
            queue = self.queues[request.endpoint]
            item = queue.popleft() if queue else self.defaults[request.endpoint]
        return item(request) if callable(item) else item

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> FakeServer:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                endpoint, match = server.find(self.command, path)
                request = Request(self.command, self.path, endpoint or UNROUTED, dict(self.headers.items()), body, match)
                with server.lock:
                    server.requests.append(request)  # every request that reached us, routed or not
                if endpoint is None:
                    request.fault = "unrouted"
                    self._write(Reply(404, {"error": {"code": 404, "message": f"no route {self.command} {path}"}}))
                    return
                try:
                    reply = server.answer(request)
                except Exception as exc:  # noqa: BLE001 - a broken fake must show up as a 500, not a hang
                    reply = Reply(500, {"error": {"code": 500, "message": f"fake crashed: {exc!r}"}}, fault="fake_bug")
                request.reply, request.fault = reply, reply.fault
                self._write(reply)

            def _write(self, reply: Reply) -> None:
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    return
                if isinstance(reply.body, bytes):
                    data, kind = reply.body, "application/octet-stream"
                elif isinstance(reply.body, str):
                    data, kind = reply.body.encode(), "text/plain"
                else:
                    data, kind = json.dumps(reply.body if reply.body is not None else {}).encode(), "application/json"
                self.send_response(reply.status)
                headers = {"Content-Type": kind, **reply.headers, "Content-Length": str(len(data))}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            # CONNECT: a client that uses this server as its HTTPS proxy (to catch traffic meant for a real API)
            do_GET = do_POST = do_DELETE = do_CONNECT = _serve  # noqa: N815 - http.server's naming

        self._httpd = _Quiet(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
