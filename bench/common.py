"""Helpers every benchmark in bench/ shares: one record shape, one way to compute a
median or a p95, one machine block, one JSON report.

bench/run and the modules it runs (vector_bench, lance_bench, normalizer_bench,
ingest_bench, recruiter_bench, playbook_eval) import this as `common` (bench/ is on
sys.path: it is the script's directory, and bench/run puts it there for the modules).
Standard library only, so the light benches (normalizer, lance) stay light; what needs
DuckDB, pyarrow or lakehouse imports it inside the function.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import hashlib
import importlib.machinery
import importlib.util
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable, Mapping

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent

# other work on the box skews every number: a run on a busy machine says so
LOAD_AT_START = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def use_source_tree_if_not_installed() -> None:
    """Without `maturin develop` the package is not installed: import it from python/."""
    try:
        import lakehouse  # noqa: F401
    except ImportError:
        sys.path.append(str(REPO / "python"))


# ---------------------------------------------------------------------------- logging


class Log:
    """Progress lines on stderr (stdout is kept for the one JSON object a bench prints).

    `Log("vector-bench")("x")` prints `[vector-bench   12.3s] x`, seconds since the Log was
    made (module import), so the lines of bench/run and of the modules it runs can be
    told apart and timed; `clock=False` prints `[prefix] x`."""

    def __init__(self, prefix: str, *, clock: bool = True):
        self.prefix = prefix
        self.clock = clock
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def __call__(self, msg: str) -> None:
        stamp = f"{self.prefix} {self.elapsed():7.1f}s" if self.clock else self.prefix
        print(f"[{stamp}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- statistics


def p50(samples: Iterable[float]) -> float:
    """The median, as a float (a median of ints stays `5.0` in the JSON, not `5`)."""
    return float(statistics.median(samples))


def p95(samples: Iterable[float]) -> float:
    """Nearest-rank 95th percentile: an observed value, never an interpolated one."""
    ordered = sorted(samples)
    return float(ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)])


def rnd(value: float | None, digits: int = 3) -> float | None:
    """Rounded for the JSON; None for a missing or non-finite value (JSON has no NaN)."""
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def round_all(value: Any, digits: int = 3) -> Any:
    """`rnd` applied to every float inside nested dicts / lists (record details)."""
    if isinstance(value, float):
        return rnd(value, digits)
    if isinstance(value, dict):
        return {k: round_all(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [round_all(v, digits) for v in value]
    return value


@contextlib.contextmanager
def no_gc():
    """A collection first, none inside: a GC pause must not land in a timed iteration."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# ---------------------------------------------------------------------------- records


def peak_rss_mib() -> float:
    """This process's memory high-water mark so far (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def own_peak_rss_mib() -> float:
    """This process's own high-water mark. Not `getrusage`: Linux carries `ru_maxrss`
    over from the parent through fork and exec, so a child would report the parent's."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return peak_rss_mib()


def record(area: str, case: str, metric: str, ours: float | None, peer: str | None = None, peer_value: float | None = None,
           rows: int | None = None, ratio: float | None = None, *, digits: int = 3, load_avg: bool = False,
           **extra: Any) -> dict[str, Any]:
    """One result in the shape every bench emits and bench/run prints: `area`, `case`,
    `metric`, `ours`, `peer`, `peer_value`, `ratio` (= ours / peer_value unless given;
    None without a peer), `rows`, then `extra`, then `peak_rss_mib`. `digits` rounds
    ours and peer_value; `load_avg` adds `load_avg_1m` (other work on the box skews the
    numbers). `ours` None (a failed case) gives no ratio."""
    if ratio is None and peer_value and ours is not None:
        ratio = ours / peer_value
    out = {
        "area": area, "case": case, "metric": metric, "ours": rnd(ours, digits), "peer": peer,
        "peer_value": rnd(peer_value, digits), "ratio": rnd(ratio) if peer is not None else None, "rows": rows,
    }
    out.update(extra)
    out["peak_rss_mib"] = peak_rss_mib()
    if load_avg:
        out["load_avg_1m"] = round(os.getloadavg()[0], 2)
    return out


def failed_records(area: str, cases: Iterable[tuple[str, str]], exc: BaseException, log: Callable[[str], None],
                   make: Callable[..., dict[str, Any]] = record) -> list[dict[str, Any]]:
    """A failed area as records with `ours: null` and an `error` (the traceback goes to
    stderr), so the areas after it still report. Call it inside the `except`."""
    log(f"{area} FAILED:\n{traceback.format_exc()}")
    return [make(area, case, metric, None, error=f"{type(exc).__name__}: {exc}"[:500]) for case, metric in cases]


# ---------------------------------------------------------------------------- machine


def cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _command(*argv: str) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=REPO)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def machine_info() -> dict[str, Any]:
    """What a number depends on: hardware, versions, commit (`-dirty` with local
    changes), date, and the load average when this process started."""
    import duckdb
    import pyarrow as pa

    commit = _command("git", "rev-parse", "--short=12", "HEAD")
    if commit and _command("git", "status", "--porcelain", "--untracked-files=no"):
        commit += "-dirty"
    return {
        "cpu": _cpu_model(),
        "cores": cores(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "rustc": _command("rustc", "--version"),
        "duckdb": duckdb.__version__,
        "pyarrow": pa.__version__,
        "git_commit": commit,
        "date": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "load_avg_1m_at_start": LOAD_AT_START,
    }


# ---------------------------------------------------------------------------- inputs and engines


def demo_data_version() -> str:
    """Hash of the demo-data generator's source: a changed generator must not reuse a stale cache."""
    import lakehouse.demo_data as demo

    digest = hashlib.sha256()
    for path in sorted(Path(demo.__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:10]


def open_lakehouse(data_dir: Path, *, actor: str = "bench", hot_cache: bool = True):
    """The product's facade on `data_dir` with the default config: LAKEHOUSE_* variables
    of the caller's shell are ignored, so they cannot change what a bench measures."""
    from lakehouse.config import Config
    from lakehouse.lakehouse import Lakehouse

    config = Config.load(data_dir, env={})
    config.data_dir = str(data_dir)
    if not hot_cache:
        config.query.hot_cache_max_table_bytes = 0
    return Lakehouse(data_dir, config=config, actor=actor)


def temp_dir(prefix: str, parent: Path | None = None) -> Path:
    """A new directory under `parent` (default: the system temp dir), which is created if
    missing. The caller owns it and removes it."""
    base = parent or Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


def with_pythonpath(env: Mapping[str, str], *first: Path) -> dict[str, str]:
    """`env` with `first` ahead of its PYTHONPATH, so a child process imports this
    checkout's code whether or not the package is installed."""
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [*map(str, first), env.get("PYTHONPATH")]))}


def load_bench_run() -> ModuleType:
    """bench/run as a module (it has no .py suffix), for a standalone bench that needs one
    of its helpers (ingest_bench: the cached workers CSV). Loaded once."""
    name = "lakehouse_bench_run"
    if name in sys.modules:
        return sys.modules[name]
    loader = importlib.machinery.SourceFileLoader(name, str(BENCH_DIR / "run"))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up while it loads
    loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------- standalone output


@contextlib.contextmanager
def stdout_to_stderr(enabled: bool = True):
    """Inside, file descriptor 1 is stderr: whatever native code (Rust, C extensions)
    prints cannot break the one JSON object the bench writes to stdout afterwards."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    real_stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(real_stdout, 1)
        os.close(real_stdout)


def bench_parser(doc: str | None, known: tuple[str, ...], quick_help: str, *, what: str = "area",
                 seed: int = 42) -> argparse.ArgumentParser:
    """The options every standalone bench takes (--quick, --only, --seed, --out,
    --workdir); a bench adds its own after them. `known`: the names --only accepts."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--only", metavar=f"{what.upper()}[,{what.upper()}]", help=f"a subset of: {', '.join(known)}")
    parser.add_argument("--seed", type=int, default=seed)
    parser.add_argument("--out", type=Path, help="also save the JSON report here")
    parser.add_argument("--workdir", type=Path, help="where the temporary directory goes (default: system temp)")
    return parser


def parse_only(parser: Any, only: str | None, known: tuple[str, ...], what: str = "area") -> tuple[str, ...]:
    """The names given to `--only a,b` (all of `known` without it); an unknown name is a usage error."""
    if not only:
        return tuple(known)
    names = tuple(a.strip() for a in only.split(",") if a.strip())
    unknown = [a for a in names if a not in known]
    if unknown:
        parser.error(f"unknown {what}(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return names


def save_report(report: dict[str, Any], path: Path, log: Callable[[str], None] | None = None) -> None:
    """The report, indented, to `path` (its directory created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    if log:
        log(f"saved {path}")


def report_json(results: list[dict[str, Any]], quick: bool, out: Path | None, log: Callable[[str], None]) -> str:
    """A standalone bench's report, `{"machine", "quick", "results"}` (bench/run's shape),
    as one line of JSON; also saved to `out`. Without a machine block ({}) when that
    fails: the numbers matter more."""
    try:
        machine = machine_info()
    except Exception as exc:
        log(f"machine info unavailable: {exc}")
        machine = {}
    report = {"machine": machine, "quick": quick, "results": results}
    text = json.dumps(report, allow_nan=False)
    if out:
        save_report(report, out, log)
    return text


def run_standalone(measure: Callable[[], list[dict[str, Any]]], *, quick: bool, out: Path | None,
                   log: Callable[[str], None]) -> int:
    """A standalone bench's main after parsing: `measure()` with fd 1 on stderr, then the
    report as the one JSON object on stdout. Exit status 1 when a record has an `error`."""
    with stdout_to_stderr():
        results = measure()
        text = report_json(results, quick, out, log)
    print(text)
    return 1 if any(r.get("error") for r in results) else 0
