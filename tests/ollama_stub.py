"""An Ollama-compatible HTTP server on loopback, for tests (Ollama cannot run here).

It speaks the subset of Ollama's API the bridge uses, with Ollama's request and
response shapes: POST /api/embed, POST /api/generate (non-streamed, including the
empty-prompt load / ``keep_alive: 0`` unload requests), GET /api/tags, GET /api/ps,
GET /api/version; an unknown model is a 404 ``{"error": "model 'x' not found"}``.

Embeddings are deterministic: the sum of one pseudo-random Gaussian vector per word
(seeded by the word's SHA-256), so texts that share words are similar and the same
text always gets the same vector. Unlike real Ollama the stub does NOT normalise them,
so the client's normalisation is exercised.

Modes (set the attributes, or pass them to the constructor):
* ``delay``: seconds every request sleeps before answering ("slow");
* ``fail_first``: the next N requests answer ``fail_status`` (500) ("failing");
* down: no stub at all, see ``closed_port_url()``.

Records: ``requests`` (path, body), ``keep_alives`` (path, model, keep_alive),
``batch_sizes`` (texts per /api/embed), ``max_in_flight`` (peak concurrent requests),
``loaded`` (model -> expiry, what /api/ps reports).

    with OllamaStub() as stub:
        client = OllamaClient(stub.url)
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

#: embedding models the stub knows, with their real dimensions
EMBED_MODELS = {"nomic-embed-text": 768, "all-minilm": 384, "mxbai-embed-large": 1024}
#: completion models the stub knows
GENERATE_MODELS = ("qwen3", "llama3.2")
STUB_VERSION = "0.9.0-stub"

_WORD = re.compile(r"[a-z0-9]+")


@lru_cache(maxsize=65536)
def _word_vector(word: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


def stub_embedding(text: str, dim: int = 768) -> np.ndarray:
    """The (unnormalised) vector the stub returns for ``text``."""
    words = _WORD.findall(text.lower()) or [f"\x00{text}"]
    return np.sum([_word_vector(w, dim) for w in words], axis=0).astype(np.float32)


def closed_port_url() -> str:
    """A loopback URL nothing listens on ("Ollama is down")."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _base_name(model: str) -> str:
    return model.split(":", 1)[0]


def _keep_alive_seconds(value: Any) -> float | None:
    """Ollama's keep_alive: a number of seconds or a duration like "5m"; None = default."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    m = re.fullmatch(r"(-?\d+(?:\.\d+)?)(ms|s|m|h)?", str(value).strip())
    if not m:
        raise ValueError(f"invalid keep_alive {value!r}")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
    return float(m.group(1)) * scale


class OllamaStub:
    def __init__(self, *, delay: float = 0.0, fail_first: int = 0, fail_status: int = 500, port: int = 0):
        self.delay = delay
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.requests: list[tuple[str, Any]] = []
        self.keep_alives: list[tuple[str, str, Any]] = []
        self.batch_sizes: list[int] = []
        self.failures_served = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.loaded: dict[str, datetime] = {}
        self.lock = threading.Lock()
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> "OllamaStub":
        stub = self

        class Handler(_Handler):
            owner = stub

        self._server = _Server(("127.0.0.1", self._port), Handler)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening (the port closes: "Ollama went down"); start() again reuses it."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.close_connections()  # kept-alive connections must not outlive it
            self._server = None

    def __enter__(self) -> "OllamaStub":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def reset_records(self) -> None:
        with self.lock:
            self.requests.clear()
            self.keep_alives.clear()
            self.batch_sizes.clear()
            self.failures_served = 0
            self.max_in_flight = 0

    def unloads(self) -> list[str]:
        """Models that were sent keep_alive=0, in order."""
        return [model for _, model, ka in self.keep_alives if ka is not None and _keep_alive_seconds(ka) == 0]

    # -- behaviour ---------------------------------------------------------------------

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        with self.lock:
            self.requests.append((path, body))
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            if self.fail_first > 0:
                self.fail_first -= 1
                self.failures_served += 1
                return self.fail_status, {"error": "stub: simulated failure"}
        if method == "GET":
            if path == "/api/tags":
                return 200, {"models": [_tag(name) for name in [*EMBED_MODELS, *GENERATE_MODELS]]}
            if path == "/api/ps":
                return 200, {"models": self._ps()}
            if path == "/api/version":
                return 200, {"version": STUB_VERSION}
            return 404, {"error": "404 page not found"}
        if not isinstance(body, dict) or not body.get("model"):
            return 400, {"error": "model is required"}
        model = str(body["model"])
        base = _base_name(model)
        with self.lock:
            self.keep_alives.append((path, model, body.get("keep_alive")))
        try:
            keep = _keep_alive_seconds(body.get("keep_alive"))
        except ValueError as exc:
            return 400, {"error": str(exc)}
        if base not in EMBED_MODELS and base not in GENERATE_MODELS:
            return 404, {"error": f"model '{model}' not found"}
        if path == "/api/embed":
            if base not in EMBED_MODELS:
                return 400, {"error": f'"{model}" does not support embeddings'}
            texts = body.get("input", [])
            texts = [texts] if isinstance(texts, str) else list(texts)
            with self.lock:
                self.batch_sizes.append(len(texts))
            vectors = [stub_embedding(t, EMBED_MODELS[base]).tolist() for t in texts]
            self._touch(model, keep)
            return 200, {"model": model, "embeddings": vectors, "total_duration": 1000, "load_duration": 0,
                         "prompt_eval_count": sum(len(t.split()) for t in texts)}
        if path == "/api/generate":
            now = datetime.now(timezone.utc).isoformat()
            if not body.get("prompt"):
                if keep == 0:
                    with self.lock:
                        self.loaded.pop(model, None)
                    return 200, {"model": model, "created_at": now, "response": "", "done": True, "done_reason": "unload"}
                self._touch(model, keep)
                return 200, {"model": model, "created_at": now, "response": "", "done": True, "done_reason": "load"}
            if base not in GENERATE_MODELS:
                return 400, {"error": f'"{model}" does not support generate'}
            self._touch(model, keep)
            prompt = str(body["prompt"])
            return 200, {"model": model, "created_at": now, "response": f"stub answer to: {prompt[:60]}",
                         "done": True, "done_reason": "stop", "prompt_eval_count": len(prompt.split()), "eval_count": 5}
        return 404, {"error": "404 page not found"}

    def _touch(self, model: str, keep: float | None) -> None:
        with self.lock:
            if keep == 0:
                self.loaded.pop(model, None)  # answered, then unloaded at once
            else:
                self.loaded[model] = datetime.now(timezone.utc) + timedelta(seconds=keep if keep is not None else 300)

    def _ps(self) -> list[dict[str, Any]]:
        with self.lock:
            items = list(self.loaded.items())
        out = []
        for name, expires in items:
            size = EMBED_MODELS.get(_base_name(name), 4096) * 360_000
            out.append({"name": name, "model": name, "size": size, "size_vram": size, "digest": hashlib.sha256(name.encode()).hexdigest(),
                        "details": {"format": "gguf"}, "expires_at": expires.isoformat()})
        return out


def _tag(name: str) -> dict[str, Any]:
    return {"name": f"{name}:latest", "model": f"{name}:latest", "modified_at": "2026-01-01T00:00:00Z",
            "size": 274_302_450, "digest": hashlib.sha256(name.encode()).hexdigest(), "details": {"format": "gguf"}}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any):
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._conn_lock:
            connections, self._connections = list(self._connections), set()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    owner: OllamaStub
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stalls

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _serve(self, method: str) -> None:
        stub = self.owner
        with stub.lock:
            stub.in_flight += 1
            stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
        try:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                status, payload = 400, {"error": "invalid JSON"}
            else:
                status, payload = stub.handle(method, self.path.split("?", 1)[0], body)
        finally:
            with stub.lock:
                stub.in_flight -= 1
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            self.close_connection = True

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")
