"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, run in a thread by tests.

Each request takes the next entry of `script` (then answers normally): "429" (with Retry-After),
"400", "500", "timeout" (answers only after `slow_s`), "garbled" (a 200 whose body is not JSON),
"malformed" (content not JSON), "violating" (JSON that breaks the schema), "empty" (an empty
string), "no_choices" (a completion without choices). `fail_if(body)` true makes a request answer 500
always. `refuse_formats` lists response_format types ("json_schema", "json_object", "none" for
no response_format) answered with a 400 naming them, as servers without structured outputs do.
The normal answer is `answers[schema name]`, the name taken from the json_schema response_format
or else from the schema stated in the system prompt (its title). Every request is recorded with
its arrival time and Authorization header, so tests can check rate limits and that the key was sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = {
    "malformed": (200, '{"objects": [oops'),
    "violating": (200, '{"unexpected": 1}'),
    "empty": (200, ""),
}


def schema_name(body: dict) -> str:
    """The name of the schema a request asks for: from its response_format, else its system prompt."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return fmt["json_schema"]["name"]
    system = body["messages"][0]["content"]
    return json.loads(system[system.rindex("JSON schema:\n") + len("JSON schema:\n"):])["title"]


class FakeOpenAI:
    def __init__(self, answers: dict[str, dict], script: list[str] = (), fail_if: Callable[[dict], bool] = lambda b: False,
                 retry_after: str = "0", slow_s: float = 1.0, refuse_formats: tuple[str, ...] = ()):
        self.answers, self.script, self.fail_if = answers, list(script), fail_if
        self.refuse_formats = refuse_formats
        self.retry_after, self.slow_s = retry_after, slow_s
        self.requests: list[tuple[float, dict, str]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _next(self, body: dict) -> str:
        with self.lock:
            if self.fail_if(body):
                return "500"
            return self.script.pop(0) if self.script else "ok"


    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests.append((time.monotonic(), body, self.headers.get("Authorization", "")))
                fmt = (body.get("response_format") or {}).get("type", "none")
                if fmt in fake.refuse_formats:
                    return self._send(400, {"error": {"message": f"response_format type {fmt} is not supported"}})
                kind = fake._next(body)
                if kind == "429":
                    return self._send(429, {"error": {"message": "slow down"}}, {"Retry-After": fake.retry_after})
                if kind in ("400", "500"):
                    return self._send(int(kind), {"error": {"message": f"boom {kind}"}})
                if kind == "garbled":
                    return self._send(200, None, raw=b"<html>upstream hiccup</html>")
                if kind == "no_choices":
                    return self._send(200, {"id": "c0", "object": "chat.completion", "created": 0, "model": "m", "choices": []})
                if kind == "timeout":
                    time.sleep(fake.slow_s)
                status, text = FAULTS.get(kind, (200, None))
                if text is None:
                    text = json.dumps(fake.answers[schema_name(body)])
                self._send(status, {
                    "id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
                })

            def _send(self, status: int, payload: dict | None, headers: dict | None = None, raw: bytes = b""):
                data = raw or json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

        return Handler
