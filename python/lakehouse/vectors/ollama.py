"""The Ollama bridge: embeddings, generation and rerank through Ollama's HTTP API.

One client serves both deployments, only the base URL differs:

* directly: ``OllamaClient("http://127.0.0.1:11434")`` (Ollama itself), or
* through the sidecar (``sidecar/app.py``), which serves the same ``/api/*`` routes and
  funnels every process's calls through one bounded queue to the GPU.

What the client guarantees:

* texts are sent in batches of ``batch_size`` (64), at most ``max_concurrency`` requests
  in flight per client (a semaphore shared by every caller of the client);
* 5xx answers and connection failures are retried with exponential backoff
  (``retry_attempts`` tries in all); connection failures only within
  ``connect_budget_seconds``, so a stopped Ollama (closed port) is reported in well
  under a second as ``OllamaUnavailable`` — a ``SourceUnavailable``, which the gateway
  maps to 502. After such a failure the client fails at once for
  ``down_cooldown_seconds`` instead of knocking again (``health()`` always probes);
* vectors come back as float32, L2-normalised, one row per text, in input order;
* one model is resident at a time (``unload_on_swap``): asking for another model first
  unloads the previous one with ``keep_alive=0``, the way ``ollama stop`` does.

``OllamaEmbedder`` is the vector layer's embedder over this client (``[vectors] embedder
= "ollama"``), with the same on-disk (model, content hash) cache format as the core's
local embedder, so a text is never sent to Ollama twice.

This module does not need the native core: when ``lakehouse._core`` is not built, the
errors derive from a local stand-in of ``SourceUnavailable``.
"""

from __future__ import annotations

import dataclasses
import os
import random
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import httpx
import numpy as np

try:  # the gateway maps SourceUnavailable to 502
    from lakehouse.errors import SourceUnavailable
except ImportError:  # native core not built: keep the bridge (and the sidecar) usable

    class SourceUnavailable(Exception):  # type: ignore[no-redef]
        """Stand-in for ``lakehouse.errors.SourceUnavailable`` (HTTP 502)."""


__all__ = [
    "OllamaClient",
    "OllamaConfig",
    "OllamaEmbedder",
    "OllamaError",
    "OllamaRequestError",
    "OllamaUnavailable",
    "SourceUnavailable",
    "l2_normalize",
]

#: the embedding dimension of well-known Ollama embedding models (used only to shape the
#: result of an empty call before the model has answered once)
from lakehouse.config import OllamaConfig  # noqa: E402  (one place for configuration)

KNOWN_DIMS = {"nomic-embed-text": 768, "all-minilm": 384, "mxbai-embed-large": 1024, "snowflake-arctic-embed": 1024}


class OllamaError(SourceUnavailable):
    """Ollama (or the sidecar in front of it) could not serve the call.

    ``args`` = (message, details) with details ``{"ollama_url", "reason", "status"}``, so
    the gateway's error body names the upstream and the cause."""

    def __init__(self, message: str, *, url: str, reason: str, status: int | None = None):
        super().__init__(message, {"ollama_url": url, "reason": reason, "status": status})
        self.url = url
        self.reason = reason
        self.status = status

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self):  # picklable across processes despite the keyword-only init
        return (_rebuild_error, (type(self), self.args[0], self.url, self.reason, self.status))


def _rebuild_error(cls, message, url, reason, status):
    return cls(message, url=url, reason=reason, status=status)


class OllamaUnavailable(OllamaError):
    """Ollama is down, unreachable, timing out or failing (5xx) after the retries."""


class OllamaRequestError(OllamaError):
    """Ollama refused the request (4xx), e.g. a model that is not pulled. Not retried;
    ``status`` holds Ollama's HTTP status."""


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, float32 (an all-zero row stays zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0).astype(np.float32)


class _Aborted(Exception):
    """Another batch of the same call failed; this one stops retrying."""


class OllamaClient:
    """Thread-safe client of Ollama's HTTP API (or of the sidecar: same routes).

    ``OllamaClient()`` uses ``OllamaConfig.from_env()``; ``OllamaClient(url)`` overrides
    the URL; ``OllamaClient(config)`` or ``OllamaClient(config=...)`` takes a full config.
    Close it (or use ``with``)."""

    def __init__(
        self,
        base_url: str | OllamaConfig | None = None,
        *,
        config: OllamaConfig | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        if isinstance(base_url, OllamaConfig):
            base_url, config = None, base_url
        cfg = dataclasses.replace(config) if config is not None else OllamaConfig.from_env()
        if base_url is not None:
            cfg.url = base_url
        if cfg.batch_size < 1 or cfg.max_concurrency < 1 or cfg.retry_attempts < 1:
            raise ValueError("batch_size, max_concurrency and retry_attempts must be at least 1")
        self.config = cfg
        self.base_url = cfg.url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(cfg.request_timeout_seconds, connect=cfg.connect_timeout_seconds),
            limits=httpx.Limits(max_connections=max(cfg.max_concurrency, 4) + 4),
            transport=transport,
        )
        self._slots = threading.BoundedSemaphore(cfg.max_concurrency)
        self._pool = ThreadPoolExecutor(max_workers=cfg.max_concurrency, thread_name_prefix="ollama")
        self._swap_lock = threading.Lock()
        self._resident: str | None = None
        self._dims: dict[str, int] = {}
        self._state_lock = threading.Lock()
        self._down_until = 0.0
        self._down_error: OllamaUnavailable | None = None

    # -- lifecycle -----------------------------------------------------------------

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._http.close()

    def __enter__(self) -> "OllamaClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OllamaClient({self.base_url!r}, resident={self._resident!r})"

    @property
    def resident_model(self) -> str | None:
        """The model this client last used (and did not unload), if any."""
        return self._resident

    # -- embeddings ------------------------------------------------------------------

    def embed_texts(self, texts: Sequence[str], model: str | None = None) -> np.ndarray:
        """Embeddings of ``texts`` as a float32 array (len(texts), dim), L2-normalised, in
        input order. Sent in batches of ``batch_size``, ``max_concurrency`` at a time.
        Raises ``OllamaUnavailable`` (down, 5xx after retries, timeout) or
        ``OllamaRequestError`` (4xx, e.g. model not pulled)."""
        model = model or self.config.embed_model
        if isinstance(texts, str):
            raise TypeError("embed_texts takes a sequence of texts, not one string")
        texts = [t if isinstance(t, str) else str(t) for t in texts]
        if not texts:
            return np.zeros((0, self._dims.get(model, KNOWN_DIMS.get(model, 0))), dtype=np.float32)
        self._fail_fast_if_down()
        self._swap_to(model)
        size = self.config.batch_size
        batches = [texts[i : i + size] for i in range(0, len(texts), size)]
        abort = threading.Event()
        if len(batches) == 1:
            parts = [self._embed_batch(batches[0], model, abort)]
        else:
            futures = [self._pool.submit(self._embed_batch, b, model, abort) for b in batches]
            wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in futures if f.done() and not f.cancelled() and f.exception()), None)
            if failed is not None:
                abort.set()
                for f in futures:
                    f.cancel()
                wait(futures)
                raise failed.exception()  # type: ignore[misc]
            parts = [f.result() for f in futures]
        dims = {p.shape[1] for p in parts}
        if len(dims) != 1:
            raise self._error(OllamaUnavailable, f"model {model!r} returned vectors of mixed dimensions {sorted(dims)}", "bad response")
        out = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
        self._dims[model] = out.shape[1]
        return out

    def embed_one(self, text: str, model: str | None = None) -> np.ndarray:
        """The embedding of one text (float32, shape (dim,), unit length)."""
        return self.embed_texts([text], model)[0]

    def _embed_batch(self, batch: list[str], model: str, abort: threading.Event) -> np.ndarray:
        body = {"model": model, "input": batch, "keep_alive": self.config.keep_alive}
        data = self._request("POST", "/api/embed", body, abort=abort)
        vectors = data.get("embeddings") if isinstance(data, dict) else None
        if not isinstance(vectors, list) or len(vectors) != len(batch):
            got = len(vectors) if isinstance(vectors, list) else type(vectors).__name__
            raise self._error(OllamaUnavailable, f"/api/embed answered {got} embeddings for {len(batch)} texts", "bad response")
        try:
            arr = np.asarray(vectors, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise self._error(OllamaUnavailable, f"/api/embed answered malformed vectors: {exc}", "bad response") from None
        if arr.ndim != 2 or arr.shape[1] == 0 or not np.isfinite(arr).all():
            raise self._error(OllamaUnavailable, f"/api/embed answered unusable vectors (shape {arr.shape})", "bad response")
        return l2_normalize(arr)

    # -- generation and rerank --------------------------------------------------------

    def generate(
        self,
        prompt: str,
        model: str | None = None,
        *,
        system: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One non-streamed completion: Ollama's /api/generate answer (``["response"]``
        holds the text; ``done_reason``, token counts and timings come along)."""
        model = model or self.config.generate_model
        if not prompt:
            raise ValueError("prompt must not be empty (an empty prompt loads or unloads a model)")
        self._fail_fast_if_down()
        self._swap_to(model)
        body: dict[str, Any] = {"model": model, "prompt": prompt, "stream": False, "keep_alive": self.config.keep_alive}
        if system is not None:
            body["system"] = system
        if options:
            body["options"] = dict(options)
        return self._request("POST", "/api/generate", body)

    def rerank(
        self, query: str, documents: Sequence[str], model: str | None = None, top_n: int | None = None
    ) -> list[dict[str, Any]]:
        """``documents`` ordered by cosine similarity of their embedding to the query's:
        ``[{"index", "document", "score"}, ...]`` best first (ties keep input order);
        at most ``top_n`` entries when given. Query and documents go in one embed call."""
        documents = list(documents)
        if not documents:
            return []
        vectors = self.embed_texts([query, *documents], model)
        scores = vectors[1:] @ vectors[0]
        order = np.argsort(-scores, kind="stable")
        if top_n is not None:
            order = order[: max(top_n, 0)]
        return [{"index": int(i), "document": documents[i], "score": float(scores[i])} for i in order]

    # -- models ---------------------------------------------------------------------

    def unload(self, model: str) -> None:
        """Ask Ollama to drop ``model`` from memory now (empty generate with keep_alive=0,
        as ``ollama stop`` does)."""
        self._request("POST", "/api/generate", {"model": model, "keep_alive": 0, "stream": False})
        with self._swap_lock:
            if self._resident == model:
                self._resident = None

    def _swap_to(self, model: str) -> None:
        if not self.config.unload_on_swap:
            self._resident = model
            return
        with self._swap_lock:
            previous = self._resident
            if previous == model:
                return
            if previous is not None:
                try:
                    self._request("POST", "/api/generate", {"model": previous, "keep_alive": 0, "stream": False})
                except OllamaRequestError:
                    pass  # the old model was deleted meanwhile: nothing to unload
            self._resident = model

    def tags(self) -> list[dict[str, Any]]:
        """Models pulled into Ollama (/api/tags)."""
        return list(self._request("GET", "/api/tags").get("models") or [])

    def loaded_models(self) -> list[dict[str, Any]]:
        """Models currently in memory (/api/ps), with size_vram and expires_at."""
        return list(self._request("GET", "/api/ps").get("models") or [])

    def health(self) -> dict[str, Any]:
        """Probe Ollama now (ignoring the cool-down); never raises.

        ``{"ollama": "up"|"down", "url", "latency_ms", "version", "models_loaded",
        "models_available", "reason"}``."""
        timeout = httpx.Timeout(self.config.health_timeout_seconds, connect=self.config.connect_timeout_seconds)
        started = time.perf_counter()
        out: dict[str, Any] = {"ollama": "down", "url": self.base_url, "latency_ms": None, "version": None,
                               "models_loaded": [], "models_available": [], "reason": None}
        try:
            ps = self._http.get("/api/ps", timeout=timeout)
            ps.raise_for_status()
            out["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
            out["models_loaded"] = [_loaded_summary(m) for m in ps.json().get("models") or []]
            tags = self._http.get("/api/tags", timeout=timeout)
            if tags.is_success:
                out["models_available"] = [m.get("name") for m in tags.json().get("models") or []]
            version = self._http.get("/api/version", timeout=timeout)
            if version.is_success:
                out["version"] = version.json().get("version")
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            out["reason"] = _describe(exc, self.config)
            return out
        out["ollama"] = "up"
        with self._state_lock:
            self._down_until, self._down_error = 0.0, None
        return out

    # -- transport ------------------------------------------------------------------

    def _fail_fast_if_down(self) -> None:
        with self._state_lock:
            if self._down_error is not None and time.monotonic() < self._down_until:
                err = self._down_error
            else:
                return
        raise self._error(
            OllamaUnavailable,
            f"Ollama at {self.base_url} is unavailable ({err.reason}); not retried for {self.config.down_cooldown_seconds:g} s",
            err.reason,
        )

    def _mark_down(self, err: OllamaUnavailable) -> None:
        if err.status is None or err.status >= 500:
            with self._state_lock:
                self._down_until = time.monotonic() + self.config.down_cooldown_seconds
                self._down_error = err

    def _error(self, cls: Callable[..., OllamaError], message: str, reason: str, status: int | None = None) -> OllamaError:
        return cls(message, url=self.base_url, reason=reason, status=status)

    def _request(self, method: str, path: str, body: Any = None, *, abort: threading.Event | None = None) -> Any:
        cfg = self.config
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            if abort is not None and abort.is_set():
                raise _Aborted()
            retryable_connect = False
            try:
                with self._slots:
                    response = self._http.request(method, path, json=body)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                retryable_connect = True
                failure = self._error(OllamaUnavailable, f"Ollama at {self.base_url} is unreachable: {_describe(exc, cfg)}", _describe(exc, cfg))
            except httpx.TimeoutException as exc:  # read/write/pool timeout: busy or hung; not retried
                err = self._error(OllamaUnavailable, f"Ollama at {self.base_url} did not answer {method} {path}: {_describe(exc, cfg)}", _describe(exc, cfg))
                self._mark_down(err)  # type: ignore[arg-type]
                raise err from None
            except httpx.TransportError as exc:  # connection dropped mid-request
                failure = self._error(OllamaUnavailable, f"Ollama at {self.base_url} dropped the connection: {exc!r}", f"connection error: {type(exc).__name__}")
            else:
                if response.is_success:
                    try:
                        return response.json()
                    except ValueError:
                        raise self._error(OllamaUnavailable, f"{method} {path} answered non-JSON", "bad response", response.status_code) from None
                reason, upstream_down = _error_reason(response)
                if upstream_down:  # a sidecar reporting Ollama down: it has retried already
                    err = self._error(OllamaUnavailable, f"Ollama behind {self.base_url} is unavailable: {reason}", reason, response.status_code)
                    self._mark_down(err)  # type: ignore[arg-type]
                    raise err
                if response.status_code < 500:
                    raise self._error(OllamaRequestError, f"Ollama refused {method} {path} ({response.status_code}): {reason}", reason, response.status_code)
                failure = self._error(OllamaUnavailable, f"Ollama failed {method} {path} ({response.status_code}) after {attempt} attempt(s): {reason}", reason, response.status_code)
            # a retryable failure: back off unless out of attempts or of the connect budget
            delay = min(cfg.retry_backoff_max_seconds, cfg.retry_backoff_seconds * 2 ** (attempt - 1))
            delay *= 1 + 0.25 * random.random()
            # a connection retry must be able to finish connecting within the budget
            out_of_time = retryable_connect and (
                time.monotonic() - started + delay + cfg.connect_timeout_seconds > cfg.connect_budget_seconds
            )
            if attempt >= cfg.retry_attempts or out_of_time:
                self._mark_down(failure)  # type: ignore[arg-type]
                raise failure
            if abort is not None and abort.wait(delay):
                raise _Aborted()
            if abort is None:
                time.sleep(delay)


def _error_reason(response: httpx.Response) -> tuple[str, bool]:
    """(Ollama's error message, whether this is a sidecar saying Ollama is down)."""
    try:
        body = response.json()
    except ValueError:
        return (response.text.strip()[:300] or response.reason_phrase), False
    if not isinstance(body, dict):
        return str(body)[:300], False
    if body.get("error") == "OllamaUnavailable":
        return str(body.get("reason") or body.get("message")), True
    return str(body.get("message") or body.get("error") or body)[:300], False


def _describe(exc: BaseException, cfg: OllamaConfig) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return f"connect timed out after {cfg.connect_timeout_seconds:g} s"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, httpx.ConnectError):
        text = str(exc)
        if "refused" in text.lower():
            return "connection refused"
        return f"connect failed: {text}" if text else "connect failed"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return f"{type(exc).__name__}: {exc}"


def _loaded_summary(m: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": m.get("name") or m.get("model"), "size_vram": m.get("size_vram"), "expires_at": m.get("expires_at")}


# -- the embedder the vector layer uses ------------------------------------------------------


class OllamaEmbedder:
    """The vector layer's ``TextEmbedder`` backed by Ollama: ``model_id``, ``dim`` and
    ``embed(texts)`` (float32 unit rows, input order), like ``LocalEmbedder``.

    With ``cache_dir`` (``from_config`` uses ``<data_dir>/_vectors/cache``, next to the
    local model's cache) texts already embedded by this model are read from disk and only
    the others go to Ollama; ``last_stats`` = ``{"texts", "cache_hits", "embedded"}``.
    Ollama down raises ``OllamaUnavailable`` (a ``SourceUnavailable``, 502)."""

    def __init__(self, client: OllamaClient | None = None, model: str | None = None, cache_dir: str | os.PathLike | None = None):
        self.client = client or OllamaClient()
        self.model_id = model or self.client.config.embed_model
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._dim: int | None = KNOWN_DIMS.get(self.model_id.split(":", 1)[0])
        self._cache: Any = None
        self._lock = threading.Lock()
        self.last_stats: dict[str, Any] = {"texts": 0, "cache_hits": 0, "embedded": 0}

    @classmethod
    def from_config(cls, config: Any, cache_dir: str | os.PathLike | None = None) -> "OllamaEmbedder":
        """From the lakehouse ``Config``: its ``ollama`` section when it has one (fields as
        in ``OllamaConfig``), else ``OllamaConfig.from_env()``."""
        section = getattr(config, "ollama", None)
        if section is not None:
            values = dataclasses.asdict(section) if dataclasses.is_dataclass(section) else dict(section)
            known = {f.name for f in dataclasses.fields(OllamaConfig)}
            cfg = OllamaConfig(**{k: v for k, v in values.items() if k in known})
        else:
            cfg = OllamaConfig.from_env()
        if cache_dir is None and hasattr(config, "data_path"):
            cache_dir = Path(config.data_path) / "_vectors" / "cache"
        return cls(OllamaClient(config=cfg), cfg.embed_model, cache_dir)

    @property
    def dim(self) -> int:
        """The model's dimension (known models: without a call; others: one probe call)."""
        if self._dim is None:
            self._dim = int(self.client.embed_texts(["dimension probe"], self.model_id).shape[1])
        return self._dim

    def _the_cache(self) -> Any:
        """The core's embedding cache (crates/vectord/src/cache.rs) for this model."""
        if self.cache_dir is None:
            return None
        with self._lock:
            if self._cache is None:
                from lakehouse import _core

                self.cache_dir.mkdir(parents=True, exist_ok=True)
                self._cache = _core.EmbeddingCache(str(self.cache_dir), self.model_id, self.dim)
            return self._cache

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            self.last_stats = {"texts": 0, "cache_hits": 0, "embedded": 0}
            return np.zeros((0, self.dim), np.float32)
        cache = self._the_cache()
        if cache is None:
            out = self.client.embed_texts(texts, self.model_id)
            self._dim = out.shape[1]
            self.last_stats = {"texts": len(texts), "cache_hits": 0, "embedded": len(texts)}
            return out
        raw, found = cache.lookup(texts)
        out = np.frombuffer(raw, dtype="<f4").reshape(len(texts), self.dim).copy()
        missing: dict[str, list[int]] = {}
        for i, (text, hit) in enumerate(zip(texts, found)):
            if not hit:
                missing.setdefault(text, []).append(i)
        if missing:
            fresh = self.client.embed_texts(list(missing), self.model_id)
            if fresh.shape[1] != self.dim:
                raise OllamaUnavailable(
                    f"model {self.model_id!r} answered {fresh.shape[1]}-d vectors, expected {self.dim}",
                    url=self.client.base_url, reason="bad response")
            cache.insert(list(missing), np.ascontiguousarray(fresh, "<f4").tobytes())
            for vector, rows in zip(fresh, missing.values()):
                out[rows] = vector
        hits = len(texts) - sum(len(rows) for rows in missing.values())
        self.last_stats = {"texts": len(texts), "cache_hits": hits, "embedded": len(missing)}
        return out

    def close(self) -> None:
        self.client.close()
