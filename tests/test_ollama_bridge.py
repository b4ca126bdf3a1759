"""The Ollama bridge (lakehouse.vectors.ollama) against an Ollama-compatible stub on loopback."""

from __future__ import annotations

import pickle
import time
from types import SimpleNamespace

import numpy as np
import pytest

from lakehouse.vectors.ollama import (
    OllamaClient,
    OllamaConfig,
    OllamaEmbedder,
    OllamaRequestError,
    OllamaUnavailable,
    SourceUnavailable,
)
from ollama_stub import OllamaStub, closed_port_url, stub_embedding


def config(url: str, **overrides) -> OllamaConfig:
    return OllamaConfig(url=url, **overrides)


@pytest.fixture
def stub():
    with OllamaStub() as s:
        yield s


@pytest.fixture
def client(stub):
    with OllamaClient(config=config(stub.url)) as c:
        yield c


def expected(texts, dim=768):
    raw = np.stack([stub_embedding(t, dim) for t in texts])
    return raw / np.linalg.norm(raw, axis=1, keepdims=True)


def test_embed_texts_returns_unit_float32_vectors_in_input_order(client, stub):
    texts = ["reliable welder in Toledo", "forklift driver near Joliet", "OSHA-10 certified electrician"]
    vectors = client.embed_texts(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (3, 768)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(vectors, expected(texts), atol=1e-5)
    assert stub.keep_alives == [("/api/embed", "nomic-embed-text", "5m")]
    np.testing.assert_allclose(client.embed_one(texts[1]), vectors[1], atol=1e-6)


def test_empty_input_makes_no_request(client, stub):
    assert client.embed_texts([]).shape == (0, 768)
    assert stub.requests == []


def test_texts_are_sent_in_batches_of_64_and_reassembled_in_order(client, stub):
    texts = [f"worker {i} welder" for i in range(200)]
    vectors = client.embed_texts(texts)
    assert sorted(stub.batch_sizes) == [8, 64, 64, 64]
    np.testing.assert_allclose(vectors, expected(texts), atol=1e-5)


def test_concurrency_is_bounded_and_overlaps_batches(stub):
    stub.delay = 0.1  # "GPU time" per request; small batches keep the JSON cost negligible
    texts = [f"text {i}" for i in range(8 * 4)]  # 8 batches of 4
    timings = {}
    for concurrency in (1, 4):
        stub.reset_records()
        with OllamaClient(config=config(stub.url, max_concurrency=concurrency, batch_size=4)) as c:
            started = time.perf_counter()
            c.embed_texts(texts)
            timings[concurrency] = time.perf_counter() - started
        assert stub.max_in_flight == concurrency
        assert len(stub.batch_sizes) == 8
    assert timings[1] >= 0.8
    assert timings[4] < timings[1] / 2


def test_concurrency_bound_holds_across_callers(stub):
    """Two threads using one client still have at most max_concurrency requests in flight."""
    import threading

    stub.delay = 0.05
    with OllamaClient(config=config(stub.url, max_concurrency=2)) as c:
        threads = [threading.Thread(target=c.embed_texts, args=([f"t{j} {i}" for i in range(256)],)) for j in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert stub.max_in_flight == 2
    assert len(stub.batch_sizes) == 12


def test_server_errors_are_retried_with_backoff_then_succeed(stub):
    stub.fail_first = 2
    with OllamaClient(config=config(stub.url, retry_attempts=3, retry_backoff_seconds=0.05)) as c:
        started = time.perf_counter()
        vectors = c.embed_texts(["welder"])
        elapsed = time.perf_counter() - started
    assert vectors.shape == (1, 768)
    assert stub.failures_served == 2 and len(stub.requests) == 3
    assert elapsed >= 0.05 + 0.1  # backoff doubled between the two retries


def test_server_errors_past_the_attempts_raise_ollama_unavailable(stub):
    stub.fail_first = 10
    with OllamaClient(config=config(stub.url, retry_attempts=3, retry_backoff_seconds=0.01)) as c:
        with pytest.raises(OllamaUnavailable) as info:
            c.embed_texts(["welder"])
    assert info.value.status == 500
    assert "simulated failure" in str(info.value)
    assert len(stub.requests) == 3


def test_a_failing_batch_stops_the_other_batches(stub):
    stub.fail_first = 1000
    stub.delay = 0.05  # failures arrive slower than the caller reacts
    with OllamaClient(config=config(stub.url, retry_attempts=1, max_concurrency=2)) as c:
        with pytest.raises(OllamaUnavailable):
            c.embed_texts([f"t {i}" for i in range(64 * 40)])
    assert len(stub.requests) <= 4  # not 40: the queued batches were cancelled


def test_refused_request_is_not_retried(client, stub):
    with pytest.raises(OllamaRequestError) as info:
        client.embed_texts(["welder"], model="no-such-model")
    assert info.value.status == 404
    assert "not found" in str(info.value)
    assert len(stub.requests) == 1
    assert isinstance(info.value, SourceUnavailable)


def test_slow_ollama_within_the_timeout_succeeds(stub):
    stub.delay = 0.3
    with OllamaClient(config=config(stub.url, request_timeout_seconds=5)) as c:
        started = time.perf_counter()
        vectors = c.embed_texts(["slow but fine"])
        elapsed = time.perf_counter() - started
    assert vectors.shape == (1, 768)
    assert 0.3 <= elapsed < 2
    assert len(stub.requests) == 1


def test_ollama_slower_than_the_timeout_raises_unavailable_without_retrying(stub):
    stub.delay = 1.5
    with OllamaClient(config=config(stub.url, request_timeout_seconds=0.3)) as c:
        started = time.perf_counter()
        with pytest.raises(OllamaUnavailable) as info:
            c.embed_texts(["too slow"])
        elapsed = time.perf_counter() - started
    assert elapsed < 1.0
    assert "timed out" in info.value.reason
    assert len(stub.requests) == 1


def test_ollama_down_fails_fast_with_source_unavailable():
    url = closed_port_url()
    with OllamaClient(config=config(url)) as c:
        started = time.perf_counter()
        with pytest.raises(SourceUnavailable) as info:
            c.embed_texts(["anyone there?"])
        elapsed = time.perf_counter() - started
    assert elapsed < 1.0
    err = info.value
    assert isinstance(err, OllamaUnavailable)
    assert err.reason == "connection refused" and err.url == url
    assert url in str(err)
    assert err.args[1] == {"ollama_url": url, "reason": "connection refused", "status": None}


def test_ollama_down_maps_to_http_502():
    errors = pytest.importorskip("lakehouse.errors", reason="native core not built")
    with OllamaClient(config=config(closed_port_url())) as c:
        with pytest.raises(errors.SourceUnavailable) as info:
            c.embed_texts(["x"])
    assert errors.http_status(info.value) == 502
    body = errors.error_body(info.value)
    assert body["error"] == "OllamaUnavailable" and body["reason"] == "connection refused"


def test_after_ollama_is_found_down_calls_fail_at_once_until_the_cooldown_then_recover():
    stub = OllamaStub().start()
    port = stub.port
    stub.stop()
    with OllamaClient(config=config(stub.url, down_cooldown_seconds=0.5)) as c:
        with pytest.raises(OllamaUnavailable):
            c.embed_texts(["a"])
        started = time.perf_counter()
        with pytest.raises(OllamaUnavailable) as info:
            c.embed_texts(["a"])
        assert time.perf_counter() - started < 0.05
        assert "not retried" in str(info.value)
        revived = OllamaStub(port=port).start()
        try:
            time.sleep(0.5)
            assert c.embed_texts(["a"]).shape == (1, 768)
        finally:
            revived.stop()


def test_health_probe_clears_the_cooldown():
    stub = OllamaStub().start()
    port = stub.port
    stub.stop()
    with OllamaClient(config=config(stub.url, down_cooldown_seconds=60)) as c:
        with pytest.raises(OllamaUnavailable):
            c.embed_texts(["a"])
        assert c.health()["ollama"] == "down"
        revived = OllamaStub(port=port).start()
        try:
            assert c.health()["ollama"] == "up"
            assert c.embed_texts(["a"]).shape == (1, 768)
        finally:
            revived.stop()


def test_model_swap_unloads_the_previous_model_with_keep_alive_zero(client, stub):
    assert client.embed_texts(["a"]).shape == (1, 768)
    assert client.embed_texts(["b"]).shape == (1, 768)  # same model: nothing unloaded
    assert stub.unloads() == []
    assert [m["name"] for m in client.loaded_models()] == ["nomic-embed-text"]

    assert client.embed_texts(["c"], model="all-minilm").shape == (1, 384)
    assert stub.unloads() == ["nomic-embed-text"]
    unload = [body for path, body in stub.requests if body and body.get("keep_alive") == 0]
    assert unload == [{"model": "nomic-embed-text", "keep_alive": 0, "stream": False}]
    assert [m["name"] for m in client.loaded_models()] == ["all-minilm"]
    assert client.resident_model == "all-minilm"

    client.generate("draft an SMS", model="qwen3")
    assert stub.unloads() == ["nomic-embed-text", "all-minilm"]
    assert [m["name"] for m in client.loaded_models()] == ["qwen3"]
    # every ordinary request carried the configured keep_alive
    assert {ka for path, model, ka in stub.keep_alives if ka != 0} == {"5m"}


def test_unload_on_swap_can_be_turned_off(stub):
    with OllamaClient(config=config(stub.url, unload_on_swap=False)) as c:
        c.embed_texts(["a"])
        c.embed_texts(["a"], model="all-minilm")
        assert stub.unloads() == []
        assert sorted(m["name"] for m in c.loaded_models()) == ["all-minilm", "nomic-embed-text"]
        c.unload("all-minilm")
        assert stub.unloads() == ["all-minilm"]


def test_generate_returns_ollama_answer(client, stub):
    answer = client.generate("Write one line to a welder", system="be brief", options={"temperature": 0})
    assert answer["response"].startswith("stub answer to: Write one line")
    assert answer["done_reason"] == "stop"
    body = stub.requests[-1][1]
    assert body["stream"] is False and body["system"] == "be brief" and body["options"] == {"temperature": 0}


def test_rerank_orders_documents_by_cosine_similarity(client):
    query = "reliable welder Toledo"
    docs = ["forklift driver Joliet", "welder in Toledo, reliable", "welder in Chicago", "Toledo electrician"]
    ranked = client.rerank(query, docs)
    vectors = expected([query, *docs])
    cosines = vectors[1:] @ vectors[0]
    assert [r["index"] for r in ranked] == list(np.argsort(-cosines))
    assert ranked[0]["document"] == "welder in Toledo, reliable"
    assert ranked[-1]["document"] == "forklift driver Joliet"
    np.testing.assert_allclose([r["score"] for r in ranked], np.sort(cosines)[::-1], atol=1e-5)
    assert [r["index"] for r in client.rerank(query, docs, top_n=2)] == [r["index"] for r in ranked[:2]]


def test_health_reports_up_with_loaded_models(client):
    client.embed_texts(["warm up"])
    health = client.health()
    assert health["ollama"] == "up" and health["reason"] is None
    assert [m["name"] for m in health["models_loaded"]] == ["nomic-embed-text"]
    assert "nomic-embed-text:latest" in health["models_available"]
    assert health["version"]


def test_health_reports_down_without_raising():
    with OllamaClient(config=config(closed_port_url())) as c:
        started = time.perf_counter()
        health = c.health()
    assert time.perf_counter() - started < 1.0
    assert health["ollama"] == "down" and health["reason"] == "connection refused"


def test_config_reads_lakehouse_ollama_environment():
    cfg = OllamaConfig.from_env({
        "LAKEHOUSE_OLLAMA_URL": "http://gpu-box:11434",
        "LAKEHOUSE_OLLAMA_BATCH_SIZE": "16",
        "LAKEHOUSE_OLLAMA_CONNECT_TIMEOUT_SECONDS": "0.2",
        "LAKEHOUSE_OLLAMA_UNLOAD_ON_SWAP": "false",
    })
    assert (cfg.url, cfg.batch_size, cfg.connect_timeout_seconds, cfg.unload_on_swap) == ("http://gpu-box:11434", 16, 0.2, False)
    with OllamaClient("http://other:1", config=cfg) as c:
        assert c.base_url == "http://other:1" and c.config.batch_size == 16
    with OllamaClient(cfg) as c:  # a config may also be passed positionally
        assert c.base_url == "http://gpu-box:11434"


def test_errors_survive_pickling():
    err = OllamaUnavailable("down", url="http://x", reason="connection refused")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is OllamaUnavailable and copy.reason == "connection refused" and str(copy) == "down"


# -- OllamaEmbedder: the vector layer's embedder, with the on-disk content-hash cache --------


def test_embedder_never_embeds_a_text_twice_across_instances(stub, tmp_path):
    texts = ["welder Toledo", "forklift Joliet", "welder Toledo"]
    with OllamaClient(stub.url) as client:
        embedder = OllamaEmbedder(client, cache_dir=tmp_path)
        assert (embedder.model_id, embedder.dim) == ("nomic-embed-text", 768)
        first = embedder.embed(texts)
        assert embedder.last_stats == {"texts": 3, "cache_hits": 0, "embedded": 2}
        assert stub.batch_sizes == [2]
        np.testing.assert_allclose(first, expected(texts), atol=1e-5)
        second = OllamaEmbedder(client, cache_dir=tmp_path).embed(["forklift Joliet", "new text", *texts])
    assert stub.batch_sizes == [2, 1]  # only "new text" went to Ollama
    np.testing.assert_array_equal(second[2:], first)
    assert second.dtype == np.float32 and second.shape == (5, 768)


def test_embedder_cache_is_the_core_cache_file(stub, tmp_path):
    """Ollama vectors go into the core's cache file: one record per text, and a torn
    tail (a crash mid-append) is cut off when the cache is opened again."""
    from lakehouse import _core

    with OllamaClient(stub.url) as client:
        OllamaEmbedder(client, cache_dir=tmp_path).embed(["a", "b"])
    path = tmp_path / "nomic-embed-text.768d.bin"
    record = 32 + 768 * 4
    assert path.stat().st_size == 2 * record
    with open(path, "ab") as f:
        f.write(b"\x01" * 100)
    cache = _core.EmbeddingCache(str(tmp_path), "nomic-embed-text", 768)
    assert len(cache) == 2 and path.stat().st_size == 2 * record
    raw, hits = cache.lookup(["a", "unknown"])
    assert hits == [True, False]
    np.testing.assert_allclose(np.frombuffer(raw, "<f4")[:768], expected(["a"])[0], atol=1e-5)


def test_a_vector_cached_once_is_a_hit_for_the_local_embedder_too(tmp_path):
    from lakehouse import _core
    from lakehouse.vectors.embedder import LocalEmbedder

    marker = np.zeros(384, np.float32)
    marker[7] = 1.0
    _core.EmbeddingCache(str(tmp_path), "all-MiniLM-L6-v2", 384).insert(["a text only the cache knows"], marker.tobytes())
    local = LocalEmbedder(None, "all-MiniLM-L6-v2", tmp_path)
    vector = local.embed(["a text only the cache knows"])
    assert local.last_stats["cache_hits"] == 1
    np.testing.assert_array_equal(vector[0], marker)


def test_embedder_from_config_uses_the_ollama_section_and_the_data_dir(stub, tmp_path):
    config = SimpleNamespace(ollama=OllamaConfig(url=stub.url, embed_model="all-minilm"), data_path=tmp_path)
    embedder = OllamaEmbedder.from_config(config)
    try:
        assert (embedder.model_id, embedder.dim, embedder.client.base_url) == ("all-minilm", 384, stub.url)
        assert embedder.embed(["x"]).shape == (1, 384)
        assert (tmp_path / "_vectors" / "cache" / "all-minilm.384d.bin").is_file()
    finally:
        embedder.close()


def test_embedder_with_ollama_down_raises_source_unavailable_fast(tmp_path):
    embedder = OllamaEmbedder(OllamaClient(closed_port_url()), cache_dir=tmp_path)
    try:
        started = time.perf_counter()
        with pytest.raises(SourceUnavailable):
            embedder.embed(["x"])
        assert time.perf_counter() - started < 1.0
    finally:
        embedder.close()
