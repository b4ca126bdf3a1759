"""The Lakehouse sidecar: a FastAPI service wrapping Ollama.

Routes (JSON in, JSON out):

* ``POST /embed``    ``{texts, model?}`` -> ``{vectors, model, dim, count}`` (unit-length float32)
* ``POST /generate`` ``{prompt, model?, system?, options?}`` -> ``{response, model, done_reason, ...}``
* ``POST /rerank``   ``{query, documents, model?, top_n?}`` -> ``{model, results: [{index, document, score}]}``
  best first, by cosine similarity of the embeddings
* ``GET  /health``   ``{status, ollama: up|down, ollama_url, reason, version, models_loaded, models_available, gpu}``;
  ``gpu`` is memory used/total (MiB) from ``nvidia-smi`` when that binary is on PATH, else null
* ``/api/embed``, ``/api/generate``, ``/api/tags``, ``/api/ps``, ``/api/version``: Ollama's own
  routes, so ``lakehouse.vectors.ollama.OllamaClient`` works against the sidecar unchanged
  (only the base URL differs) and every process shares the sidecar's bounded queue.

Every call to Ollama goes through one ``OllamaClient``: batches of 64, bounded
concurrency, retries with backoff, one resident model (a swap unloads the previous one
with ``keep_alive=0``). When Ollama is down the sidecar answers 502 within a second,
``{"error": "OllamaUnavailable", "message", "ollama_url", "reason"}``.

Run: ``python -m sidecar.app`` or ``uvicorn sidecar.app:app``; configuration comes from
the environment (see sidecar/README.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from lakehouse.vectors.ollama import (
    OllamaClient,
    OllamaConfig,
    OllamaError,
    OllamaRequestError,
    OllamaUnavailable,
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3300
#: most texts (or documents) one /embed or /rerank request may carry
MAX_TEXTS = 10_000
#: how long nvidia-smi may take before the GPU is reported unknown
NVIDIA_SMI_TIMEOUT_SECONDS = 3.0


class EmbedRequest(BaseModel):
    texts: list[str] = Field(min_length=1, max_length=MAX_TEXTS)
    model: str | None = None


class GenerateRequest(BaseModel):
    prompt: str = Field(min_length=1)
    model: str | None = None
    system: str | None = None
    options: dict[str, Any] | None = None


class RerankRequest(BaseModel):
    query: str = Field(min_length=1)
    documents: list[str] = Field(max_length=MAX_TEXTS)
    model: str | None = None
    top_n: int | None = Field(default=None, ge=0)


def gpu_memory() -> tuple[dict[str, Any] | None, str | None]:
    """(GPU memory in MiB, or None; why it is None when nvidia-smi exists but failed).

    Reads ``nvidia-smi --query-gpu=memory.used,memory.total --format=csv,noheader,nounits``:
    one line per GPU; totals are summed, the per-device rows kept."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return None, None
    try:
        run = subprocess.run(
            [binary, "--query-gpu=memory.used,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_SECONDS, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"nvidia-smi failed: {exc}"
    if run.returncode != 0:
        return None, f"nvidia-smi exited {run.returncode}: {(run.stderr or run.stdout).strip()[:200]}"
    devices = []
    for index, line in enumerate(l for l in run.stdout.splitlines() if l.strip()):
        try:
            used, total = (int(float(x.strip())) for x in line.split(",")[:2])
        except ValueError:
            return None, f"unexpected nvidia-smi output: {line.strip()[:200]!r}"
        devices.append({"index": index, "memory_used_mib": used, "memory_total_mib": total})
    if not devices:
        return None, "nvidia-smi reported no GPU"
    return {
        "memory_used_mib": sum(d["memory_used_mib"] for d in devices),
        "memory_total_mib": sum(d["memory_total_mib"] for d in devices),
        "devices": devices,
    }, None


def create_app(config: OllamaConfig | None = None, client: OllamaClient | None = None) -> FastAPI:
    """The sidecar app. ``client`` (else one built from ``config``, else from the
    ``LAKEHOUSE_OLLAMA_*`` environment) is closed when the app shuts down."""
    ollama = client or OllamaClient(config=config or OllamaConfig.from_env())

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        ollama.close()

    app = FastAPI(title="Lakehouse sidecar", version="0.1.0", lifespan=lifespan,
                  description="Ollama wrapper: embed, generate, rerank, health with GPU memory.")
    app.state.ollama = ollama

    @app.exception_handler(OllamaError)
    async def ollama_error(_: Request, exc: OllamaError) -> JSONResponse:
        body = {"error": type(exc).__name__, "message": str(exc), "ollama_url": exc.url, "reason": exc.reason}
        if isinstance(exc, OllamaRequestError):  # Ollama refused the request: pass its status on
            return JSONResponse(body, status_code=exc.status or 400)
        return JSONResponse(body, status_code=502)

    # -- the sidecar's own API ---------------------------------------------------------

    @app.post("/embed")
    def embed(req: EmbedRequest) -> dict[str, Any]:
        model = req.model or ollama.config.embed_model
        vectors = ollama.embed_texts(req.texts, model)
        return {"model": model, "dim": int(vectors.shape[1]), "count": int(vectors.shape[0]), "vectors": vectors.tolist()}

    @app.post("/generate")
    def generate(req: GenerateRequest) -> dict[str, Any]:
        answer = ollama.generate(req.prompt, req.model, system=req.system, options=req.options)
        return {"model": answer.get("model") or req.model or ollama.config.generate_model, **answer}

    @app.post("/rerank")
    def rerank(req: RerankRequest) -> dict[str, Any]:
        model = req.model or ollama.config.embed_model
        return {"model": model, "results": ollama.rerank(req.query, req.documents, model, req.top_n)}

    @app.get("/health")
    def health() -> dict[str, Any]:
        started = time.perf_counter()
        probe = ollama.health()
        gpu, gpu_error = gpu_memory()
        return {
            "status": "ok" if probe["ollama"] == "up" else "degraded",
            "ollama": probe["ollama"],
            "ollama_url": probe["url"],
            "reason": probe["reason"],
            "version": probe["version"],
            "models_loaded": probe["models_loaded"],
            "models_available": probe["models_available"],
            "resident_model": ollama.resident_model,
            "gpu": gpu,
            "gpu_error": gpu_error,
            "took_ms": round((time.perf_counter() - started) * 1000, 2),
        }

    # -- Ollama-compatible routes (so OllamaClient can point at the sidecar) ---------------

    @app.post("/api/embed")
    def api_embed(body: dict[str, Any]) -> Any:
        model = body.get("model") or ollama.config.embed_model
        texts = body.get("input", [])
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return JSONResponse({"error": "input must be a string or a list of strings"}, status_code=400)
        if len(texts) > MAX_TEXTS:
            return JSONResponse({"error": f"at most {MAX_TEXTS} inputs per request"}, status_code=400)
        vectors = ollama.embed_texts(texts, model)
        return {"model": model, "embeddings": vectors.tolist()}

    @app.post("/api/generate")
    def api_generate(body: dict[str, Any]) -> Any:
        model = body.get("model") or ollama.config.generate_model
        if not body.get("prompt"):
            if _is_zero(body.get("keep_alive")):
                ollama.unload(model)
                answer = {"model": model, "response": "", "done": True, "done_reason": "unload"}
            else:
                answer = {"model": model, "response": "", "done": True, "done_reason": "load"}
        else:
            answer = ollama.generate(body["prompt"], model, system=body.get("system"), options=body.get("options"))
        if body.get("stream") is True:  # a streaming client reads NDJSON: one final line is valid
            return Response(json.dumps(answer) + "\n", media_type="application/x-ndjson")
        return answer

    @app.get("/api/tags")
    def api_tags() -> dict[str, Any]:
        return {"models": ollama.tags()}

    @app.get("/api/ps")
    def api_ps() -> dict[str, Any]:
        return {"models": ollama.loaded_models()}

    @app.get("/api/version")
    def api_version() -> dict[str, Any]:
        probe = ollama.health()
        if probe["ollama"] != "up":
            raise OllamaUnavailable(f"Ollama at {probe['url']} is unavailable: {probe['reason']}", url=probe["url"], reason=str(probe["reason"]))
        return {"version": probe["version"]}

    return app


def _is_zero(keep_alive: Any) -> bool:
    """Whether an Ollama keep_alive (seconds, or a duration such as "0s") is zero."""
    if keep_alive is None or isinstance(keep_alive, bool):
        return False
    text = str(keep_alive).strip().lower()
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit):
            text = text[: -len(unit)]
            break
    try:
        return float(text) == 0
    except ValueError:
        return False


def settings(env: dict[str, str] | None = None) -> tuple[str, int, OllamaConfig]:
    """(host, port, Ollama config) from ``LAKEHOUSE_SIDECAR_HOST/PORT`` and ``LAKEHOUSE_OLLAMA_*``."""
    env = dict(os.environ if env is None else env)
    host = env.get("LAKEHOUSE_SIDECAR_HOST", DEFAULT_HOST)
    port = int(env.get("LAKEHOUSE_SIDECAR_PORT", DEFAULT_PORT))
    return host, port, OllamaConfig.from_env(env)


app = create_app(settings()[2])


def main() -> None:
    import uvicorn

    host, port, _ = settings()
    uvicorn.run(app, host=host, port=port, log_level=os.environ.get("LAKEHOUSE_SIDECAR_LOG_LEVEL", "info"))


if __name__ == "__main__":
    main()
