"""The sidecar (sidecar/app.py) against an Ollama-compatible stub on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `sidecar` is a top-level folder of the repository, not installed
    sys.path.insert(0, str(REPO))

from lakehouse.vectors.ollama import OllamaClient, OllamaConfig, OllamaUnavailable  # noqa: E402
from ollama_stub import OllamaStub, closed_port_url, stub_embedding  # noqa: E402
from sidecar.app import create_app, settings  # noqa: E402


@pytest.fixture
def stub():
    with OllamaStub() as s:
        yield s


@pytest.fixture
def api(stub):
    with TestClient(create_app(OllamaConfig(url=stub.url))) as client:
        yield client


@pytest.fixture
def down_api():
    with TestClient(create_app(OllamaConfig(url=closed_port_url()))) as client:
        yield client


def unit(texts, dim=768):
    raw = np.stack([stub_embedding(t, dim) for t in texts])
    return raw / np.linalg.norm(raw, axis=1, keepdims=True)


class ServerThread:
    """The sidecar served by a real uvicorn on a free loopback port, in a thread."""

    def __init__(self, app):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY needs the protocol named
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "sidecar did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


# -- the sidecar's own routes -----------------------------------------------------------


def test_embed_returns_vectors_model_and_dim(api, stub):
    texts = [f"worker {i} welder Toledo" for i in range(100)]
    r = api.post("/embed", json={"texts": texts})
    assert r.status_code == 200
    body = r.json()
    assert (body["model"], body["dim"], body["count"]) == ("nomic-embed-text", 768, 100)
    np.testing.assert_allclose(np.array(body["vectors"]), unit(texts), atol=1e-5)
    assert sorted(stub.batch_sizes) == [36, 64]


def test_embed_with_another_model_swaps_models(api, stub):
    api.post("/embed", json={"texts": ["a"]})
    r = api.post("/embed", json={"texts": ["a"], "model": "all-minilm"})
    assert r.json()["dim"] == 384
    assert stub.unloads() == ["nomic-embed-text"]
    assert [m["name"] for m in api.get("/health").json()["models_loaded"]] == ["all-minilm"]


def test_embed_rejects_empty_and_malformed_input(api):
    assert api.post("/embed", json={"texts": []}).status_code == 422
    assert api.post("/embed", json={"texts": "not a list"}).status_code == 422


def test_unknown_model_is_passed_on_as_ollamas_404(api):
    r = api.post("/embed", json={"texts": ["a"], "model": "no-such-model"})
    assert r.status_code == 404
    assert r.json()["error"] == "OllamaRequestError" and "not found" in r.json()["reason"]


def test_generate_returns_the_completion(api, stub):
    r = api.post("/generate", json={"prompt": "Draft an SMS to a welder", "model": "qwen3", "options": {"temperature": 0}})
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == "qwen3" and body["response"].startswith("stub answer to: Draft an SMS")
    assert body["done_reason"] == "stop"
    assert stub.requests[-1][1]["options"] == {"temperature": 0}


def test_rerank_orders_documents_by_cosine_similarity_with_scores(api):
    query = "reliable welder Toledo"
    docs = ["forklift driver Joliet", "welder in Toledo, reliable", "Toledo electrician", "welder in Chicago"]
    r = api.post("/rerank", json={"query": query, "documents": docs})
    assert r.status_code == 200
    results = r.json()["results"]
    vectors = unit([query, *docs])
    cosines = vectors[1:] @ vectors[0]
    assert [x["index"] for x in results] == list(np.argsort(-cosines))
    assert [x["document"] for x in results][0] == "welder in Toledo, reliable"
    assert [x["document"] for x in results][-1] == "forklift driver Joliet"
    scores = [x["score"] for x in results]
    assert scores == sorted(scores, reverse=True)
    np.testing.assert_allclose(scores, np.sort(cosines)[::-1], atol=1e-5)
    top = api.post("/rerank", json={"query": query, "documents": docs, "top_n": 1}).json()["results"]
    assert [x["index"] for x in top] == [1]
    assert api.post("/rerank", json={"query": query, "documents": []}).json()["results"] == []


# -- health and GPU memory ---------------------------------------------------------------


def fake_nvidia_smi(directory: Path, output: str, code: int = 0) -> None:
    script = directory / "nvidia-smi"
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}\nEOF\nexit {code}\n")
    script.chmod(0o755)


def test_health_without_nvidia_smi_reports_gpu_null(api, tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    api.post("/embed", json={"texts": ["warm"]})
    body = api.get("/health").json()
    assert body["status"] == "ok" and body["ollama"] == "up"
    assert [m["name"] for m in body["models_loaded"]] == ["nomic-embed-text"]
    assert body["models_loaded"][0]["size_vram"] > 0
    assert body["gpu"] is None and body["gpu_error"] is None


def test_health_reads_gpu_memory_from_nvidia_smi(api, tmp_path, monkeypatch):
    fake_nvidia_smi(tmp_path, "1234, 16376\n512, 8192")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    body = api.get("/health").json()
    assert body["gpu"] == {
        "memory_used_mib": 1746,
        "memory_total_mib": 24568,
        "devices": [
            {"index": 0, "memory_used_mib": 1234, "memory_total_mib": 16376},
            {"index": 1, "memory_used_mib": 512, "memory_total_mib": 8192},
        ],
    }


def test_health_reports_a_failing_nvidia_smi_as_gpu_null_with_the_reason(api, tmp_path, monkeypatch):
    fake_nvidia_smi(tmp_path, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver", code=9)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    body = api.get("/health").json()
    assert body["gpu"] is None
    assert "exited 9" in body["gpu_error"] and "NVIDIA driver" in body["gpu_error"]


def test_health_reports_ollama_down_fast(down_api):
    started = time.perf_counter()
    r = down_api.get("/health")
    assert time.perf_counter() - started < 1.0
    assert r.status_code == 200
    body = r.json()
    assert (body["status"], body["ollama"], body["reason"]) == ("degraded", "down", "connection refused")
    assert body["models_loaded"] == []


# -- Ollama down ---------------------------------------------------------------------------


@pytest.mark.parametrize("route,payload", [
    ("/embed", {"texts": ["a"]}),
    ("/generate", {"prompt": "hi"}),
    ("/rerank", {"query": "q", "documents": ["a", "b"]}),
])
def test_ollama_down_is_502_fast_with_the_reason(down_api, route, payload):
    started = time.perf_counter()
    r = down_api.post(route, json=payload)
    elapsed = time.perf_counter() - started
    assert r.status_code == 502
    assert elapsed < 1.0
    body = r.json()
    assert body["error"] == "OllamaUnavailable"
    assert body["reason"] == "connection refused"
    assert body["ollama_url"] in body["message"]


# -- the same client, through the sidecar ------------------------------------------------------


def test_ollama_client_works_through_the_sidecar(stub):
    with ServerThread(create_app(OllamaConfig(url=stub.url))) as sidecar, OllamaClient(sidecar.url) as client:
        texts = [f"forklift driver {i}" for i in range(150)]
        vectors = client.embed_texts(texts)
        np.testing.assert_allclose(vectors, unit(texts), atol=1e-5)
        assert sorted(stub.batch_sizes) == [22, 64, 64]
        assert client.generate("hello", model="qwen3")["response"] == "stub answer to: hello"
        # the client asked the sidecar to unload the embedding model; Ollama got it once
        assert stub.unloads() == ["nomic-embed-text"]
        assert [m["name"] for m in client.loaded_models()] == ["qwen3"]
        assert client.health()["ollama"] == "up"
        ranked = client.rerank("welder Toledo", ["driver Joliet", "welder Toledo OH"])
        assert ranked[0]["index"] == 1


def test_client_through_the_sidecar_fails_fast_when_ollama_is_down():
    with ServerThread(create_app(OllamaConfig(url=closed_port_url()))) as sidecar, OllamaClient(sidecar.url) as client:
        started = time.perf_counter()
        with pytest.raises(OllamaUnavailable) as info:
            client.embed_texts(["a"])
        assert time.perf_counter() - started < 1.0
        assert info.value.status == 502 and info.value.reason == "connection refused"
        assert client.health()["ollama"] == "down"


def test_sidecar_is_ollama_compatible_for_unload_and_streaming_clients(api, stub):
    api.post("/api/embed", json={"model": "nomic-embed-text", "input": "one text"})
    r = api.post("/api/generate", json={"model": "nomic-embed-text", "keep_alive": "0s"})
    assert r.json()["done_reason"] == "unload"
    assert stub.unloads() == ["nomic-embed-text"]
    r = api.post("/api/generate", json={"model": "qwen3", "prompt": "hi", "stream": True})
    assert r.headers["content-type"].startswith("application/x-ndjson")
    assert r.text.endswith("\n") and '"done": true' in r.text
    assert {m["name"] for m in api.get("/api/tags").json()["models"]} >= {"nomic-embed-text:latest", "qwen3:latest"}
    assert api.get("/api/version").json()["version"]


# -- configuration and running it ---------------------------------------------------------------


def test_settings_come_from_the_environment():
    host, port, cfg = settings({
        "LAKEHOUSE_SIDECAR_HOST": "0.0.0.0",
        "LAKEHOUSE_SIDECAR_PORT": "3999",
        "LAKEHOUSE_OLLAMA_URL": "http://gpu:11434",
        "LAKEHOUSE_OLLAMA_EMBED_MODEL": "all-minilm",
    })
    assert (host, port, cfg.url, cfg.embed_model) == ("0.0.0.0", 3999, "http://gpu:11434", "all-minilm")
    assert settings({})[:2] == ("127.0.0.1", 3300)


def test_sidecar_runs_as_a_module(stub):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "LAKEHOUSE_SIDECAR_PORT": str(port), "LAKEHOUSE_OLLAMA_URL": stub.url,
           "LAKEHOUSE_SIDECAR_LOG_LEVEL": "warning",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), str(REPO / "python"), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "sidecar.app"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode()
                assert time.monotonic() < deadline, "sidecar did not come up"
                time.sleep(0.1)
        assert r.json()["ollama"] == "up"
        assert httpx.post(f"http://127.0.0.1:{port}/embed", json={"texts": ["a"]}).json()["dim"] == 768
    finally:
        proc.terminate()
        proc.wait(timeout=10)
