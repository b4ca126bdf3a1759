"""The in-process embedder reproduces the reference model and never embeds a text twice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lakehouse.errors import InvalidInput
from lakehouse.vectors.embedder import LocalEmbedder

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "minilm_reference.json").read_text())


@pytest.fixture(scope="module")
def embedder(tmp_path_factory) -> LocalEmbedder:
    return LocalEmbedder(cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.mark.parametrize("precision", ["f32", "auto", "f16", "i16"])
def test_vectors_match_the_sentence_transformers_reference(precision: str):
    """Reference made by sentence-transformers from the same model files
    (tests/fixtures/make_minilm_reference.py); includes a text past the 256-token limit.
    `auto` is bf16 on CPUs with AVX512-BF16 and 16-bit integers on other AVX2 CPUs; every
    faster arithmetic this CPU can run must meet the same bar."""
    try:
        model = LocalEmbedder(precision=precision)
    except InvalidInput as exc:
        pytest.skip(f"this CPU cannot run {precision}: {exc}")
    ours = model.embed(REFERENCE["texts"])
    reference = np.array(REFERENCE["vectors"], dtype=np.float32)
    cosines = (ours * reference).sum(axis=1)
    assert ours.shape == (len(REFERENCE["texts"]), 384)
    assert cosines.min() >= 0.99, dict(zip(REFERENCE["texts"], cosines.round(5)))


def test_the_precision_in_use_is_reported_and_a_bad_one_is_refused():
    assert LocalEmbedder(precision="f32").precision == "f32"
    assert LocalEmbedder(precision="auto").precision in ("f32", "f16", "bf16", "i16")
    with pytest.raises(InvalidInput, match="auto, f32, f16, bf16 or i16"):
        LocalEmbedder(precision="fp8")


def test_batches_and_single_texts_give_the_same_vectors(embedder: LocalEmbedder):
    texts = REFERENCE["texts"][:4]
    together = embedder.embed(texts)
    alone = np.vstack([embedder.embed([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-5)


def test_a_text_seen_before_is_served_from_the_cache_even_after_reopening(tmp_path: Path):
    first = LocalEmbedder(cache_dir=tmp_path)
    v1 = first.embed(["forklift operator, night shift", "forklift operator, night shift", "welder"])
    assert first.last_stats == {"texts": 3, "cache_hits": 1, "embedded": 2}
    reopened = LocalEmbedder(cache_dir=tmp_path)
    v2 = reopened.embed(["welder", "forklift operator, night shift"])
    assert reopened.last_stats["embedded"] == 0 and reopened.last_stats["cache_hits"] == 2
    assert np.array_equal(v2[0], v1[2])


def test_empty_input_gives_an_empty_matrix(embedder: LocalEmbedder):
    assert embedder.embed([]).shape == (0, 384)
