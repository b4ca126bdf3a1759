"""The inbox watcher: a file dropped in `Config.inbox_path` is ingested, then moved.

Flow: watchdog events (and a periodic rescan, which also picks up files dropped while
the watcher was down) -> `PendingFiles` waits until a file is completely written ->
a queue -> ONE worker thread ingests through the facade (which is not safe for
concurrent mutation) -> the original moves to `processed/<stamp>_<name>` or to
`failed/<stamp>_<name>` with `<that>.error.json` giving a machine-readable reason.

When is a file complete? Its size and mtime must be unchanged between two looks and
for `settle_s` (watched, or told by the mtime itself: watchdog delivers inotify events
about 0.5 s late, so waiting from the first event would add that delay twice), and
- a writer closed it after its last write (inotify close-write; Linux), or
- no write was ever seen (it arrived whole: `mv`/rename into the inbox, or it was
  already there at start), or
- it has been quiet for `quiet_s` (a writer that holds the file open forever).
On platforms without close events the first rule is size/mtime stability alone.

Names: the dataset is `<file>.meta.json`'s `name` (write the sidecar before the file),
else derived from the file name (`dataset_name_from_path`: `workers.2024-06.csv` ->
`workers`). Ignored: dotfiles, `*.part`, `*.tmp`, `*.crdownload`, `*.swp`, `*~`,
sidecars, `*.error.json`, and everything in sub-directories.

Safety: only regular top-level entries of the inbox are ever moved, only into
`processed/` or `failed/` of that inbox; both are checked after resolving every path.
A symlink is never followed: the link itself is moved to `failed/`.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ContextManager, Protocol

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from lakehouse.errors import InvalidInput, LakehouseError, error_body
from lakehouse.lakehouse import Lakehouse, dataset_name_from_path

log = logging.getLogger("lakehouse.inbox")

PROCESSED_DIR = "processed"
FAILED_DIR = "failed"
SIDECAR_SUFFIX = ".meta.json"
ERROR_SUFFIX = ".error.json"
TEMP_SUFFIXES = (".part", ".tmp", ".crdownload", ".swp", "~", SIDECAR_SUFFIX, ERROR_SUFFIX)
SIDECAR_KEYS = {"name", "mode"}
MODES = ("append", "replace")
#: longest directory entry most filesystems accept
MAX_NAME_BYTES = 255
INBOX_ACTOR = "inbox"


class Guard(Protocol):
    """Serializes facade calls (`lakehouse.gateway.state.FacadeGuard` fits)."""

    def use(self) -> ContextManager[Lakehouse]: ...


@dataclass
class InboxSettings:
    settle_s: float = 0.5
    quiet_s: float = 10.0
    #: a full listing of the inbox this often catches anything the events missed
    rescan_s: float = 5.0
    poll_s: float = 0.05


@dataclass
class InboxOutcome:
    """What happened to one dropped file."""

    file: str
    status: str  # created | appended | replaced | noop | failed
    dataset: str | None = None
    rows_written: int = 0
    moved_to: str | None = None
    error: dict[str, Any] | None = None
    seconds: float = 0.0
    at: str = field(default_factory=lambda: utc_now().isoformat())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def stamp() -> str:
    return utc_now().strftime("%Y%m%dT%H%M%S%fZ")


def is_candidate_name(name: str) -> bool:
    return not name.startswith(".") and not name.endswith(TEMP_SUFFIXES)


# ---------------------------------------------------------------------- safe paths
def check_inbox_location(inbox: Path, data_path: Path) -> Path:
    """The resolved inbox, refusing places where moving files away would hurt: the
    filesystem root, the data directory itself or any of its ancestors."""
    inbox = inbox.resolve()
    data_path = data_path.resolve()
    if inbox == Path(inbox.anchor) or inbox == data_path or inbox in data_path.parents or inbox == Path.home().resolve():
        raise InvalidInput(f"refusing to watch {inbox} as the inbox: it is the filesystem root, the home directory "
                           f"or holds the data directory {data_path}; set inbox_dir to a dedicated folder")
    return inbox


def entry_inside(directory: Path, path: Path) -> Path:
    """`path` as a directory entry (its last component NOT followed) directly inside the
    already-resolved `directory`; anything else raises."""
    entry = path.parent.resolve() / path.name
    if entry.parent != directory or path.name in ("", ".", ".."):
        raise RuntimeError(f"refusing to touch {path}: not an entry of {directory}")
    return entry


def unique_target(directory: Path, name: str) -> Path:
    """`<directory>/<stamp>_<name>`, shortened to a legal length, never an existing entry."""
    while True:
        prefix = f"{stamp()}_"
        room = MAX_NAME_BYTES - len(prefix.encode()) - len(ERROR_SUFFIX)
        tail = name.encode()[-room:].decode(errors="ignore")  # keep the extension
        target = directory / f"{prefix}{tail}"
        if not os.path.lexists(target):
            return target


def move_entry(inbox: Path, source: Path, destination_dir: Path) -> Path:
    """Rename the inbox entry `source` into `destination_dir` (processed/ or failed/).
    `os.rename` moves a symlink itself, never its target."""
    entry = entry_inside(inbox, source)
    if destination_dir.resolve().parent != inbox:
        raise RuntimeError(f"refusing to move into {destination_dir}: not a folder of the inbox {inbox}")
    target = unique_target(destination_dir.resolve(), entry.name)
    os.rename(entry, target)
    return target


# ---------------------------------------------------------------------- completeness
@dataclass
class _Watched:
    size: int
    mtime_ns: int
    changed_at: float
    written: bool = False  # a write event was seen since we started tracking
    closed: bool = False  # a writer closed it after its last write


class PendingFiles:
    """Files seen in the inbox and not yet handed to the worker. Thread-safe: watchdog's
    thread reports events, the watcher's loop asks which files are complete."""

    def __init__(self, settings: InboxSettings, closes_reported: bool):
        self.settings = settings
        self.closes_reported = closes_reported
        self._files: dict[Path, _Watched] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._files)

    def saw(self, path: Path, *, written: bool = False, closed: bool = False) -> None:
        with self._lock:
            state = self._files.get(path)
            if state is None:
                state = self._files[path] = _Watched(-1, -1, time.monotonic())
            if written:  # the size/mtime check sees the change itself; this only orders write vs close
                state.written, state.closed = True, False
            if closed:
                state.closed = True

    def forget(self, path: Path) -> None:
        with self._lock:
            self._files.pop(path, None)

    def take_complete(self) -> list[Path]:
        """Remove and return the files that are completely written (and forget vanished ones)."""
        now = time.monotonic()
        with self._lock:
            verdicts = {path: self._verdict(path, state, now) for path, state in self._files.items()}
            done = [path for path, verdict in verdicts.items() if verdict != "wait"]
            for path in done:
                del self._files[path]
        return [path for path in done if verdicts[path] == "complete"]

    def _verdict(self, path: Path, state: _Watched, now: float) -> str:
        try:
            st = path.lstat()
        except FileNotFoundError:
            return "gone"  # renamed away or deleted before it settled
        if (st.st_size, st.st_mtime_ns) != (state.size, state.mtime_ns):
            state.size, state.mtime_ns, state.changed_at = st.st_size, st.st_mtime_ns, now
            return "wait"
        quiet_for = now - state.changed_at
        untouched_for = max(quiet_for, time.time() - st.st_mtime_ns / 1e9)
        finished = state.closed or not state.written or not self.closes_reported
        if quiet_for >= self.settings.quiet_s or (untouched_for >= self.settings.settle_s and finished):
            return "complete"
        return "wait"


class _EventHandler(FileSystemEventHandler):
    def __init__(self, watcher: InboxWatcher):
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if isinstance(event, FileMovedEvent):
            # A rename into a final name (`x.csv.part` -> `x.csv`) delivers a whole file.
            self.watcher.noticed(Path(os.fsdecode(event.dest_path)))
        elif isinstance(event, FileModifiedEvent):
            self.watcher.noticed(Path(os.fsdecode(event.src_path)), written=True)
        elif isinstance(event, FileClosedEvent):
            self.watcher.noticed(Path(os.fsdecode(event.src_path)), closed=True)
        elif isinstance(event, FileCreatedEvent):
            self.watcher.noticed(Path(os.fsdecode(event.src_path)))


#: the events worth waking up for (our own reads would otherwise report open/close-nowrite)
EVENT_FILTER = [FileCreatedEvent, FileModifiedEvent, FileClosedEvent, FileMovedEvent, FileDeletedEvent]


# ---------------------------------------------------------------------- ingest one file
def read_sidecar(path: Path) -> dict[str, Any]:
    """`<file>.meta.json` as {"name": ..., "mode": ...} (both optional); {} if absent."""
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    if not os.path.lexists(sidecar):
        return {}
    if sidecar.is_symlink() or not sidecar.is_file():
        raise InvalidInput(f"{sidecar.name} must be a regular file")
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{sidecar.name} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or set(meta) - SIDECAR_KEYS:
        raise InvalidInput(f"{sidecar.name} must be an object with only the keys {sorted(SIDECAR_KEYS)}")
    if meta.get("mode", "append") not in MODES:
        raise InvalidInput(f"{sidecar.name}: mode must be one of {MODES}, not {meta['mode']!r}")
    return meta


def ingest_dropped_file(guard: Guard, path: Path, name: str | None, mode: str | None, *, job: str,
                        source_system: str = INBOX_ACTOR, actor: str = INBOX_ACTOR) -> InboxOutcome:
    """Ingest one file through the facade; never raises (a failure is an outcome).
    Shared by the inbox and the scheduled file jobs, so both behave alike. An explicit
    `name`/`mode` wins over the sidecar's, which wins over the defaults."""
    started = time.perf_counter()
    try:
        if path.is_symlink() or not path.is_file():
            raise InvalidInput(f"{path.name} is not a regular file (symlinks are not followed)")
        meta = read_sidecar(path)
        name = name or meta.get("name") or dataset_name_from_path(path)
        mode = mode or meta.get("mode") or "append"
        with guard.use() as lakehouse:
            result = lakehouse.ingest_file(path, name, mode=mode, actor=actor,
                                           source_system=source_system, ingest_job=job)
    except Exception as exc:  # noqa: BLE001 - any failure is reported, none stops the caller
        if not isinstance(exc, LakehouseError):
            log.exception("unexpected error ingesting %s", path)
        return InboxOutcome(path.name, "failed", name, error=error_body(exc), seconds=time.perf_counter() - started)
    return InboxOutcome(path.name, result.status, result.dataset, result.rows_written, seconds=time.perf_counter() - started)


# ---------------------------------------------------------------------- the watcher
class InboxWatcher:
    """Watches one inbox; `start()` returns at once, `stop()` waits for the file in hand."""

    def __init__(self, guard: Guard, inbox: Path, data_path: Path, settings: InboxSettings | None = None):
        self.guard = guard
        self.settings = settings or InboxSettings()
        self.inbox = check_inbox_location(inbox, data_path)
        self.processed_dir = self.inbox / PROCESSED_DIR
        self.failed_dir = self.inbox / FAILED_DIR
        self.recent: deque[InboxOutcome] = deque(maxlen=100)
        self.counts = {"ingested": 0, "noop": 0, "failed": 0}
        self._queue: queue.Queue[Path | None] = queue.Queue()
        self._in_hand: set[Path] = set()  # queued or being ingested: not tracked again
        self._stuck: set[Path] = set()  # could not be moved out: reported once, not retried
        self._stop = threading.Event()
        self._observer = Observer()
        self.pending = PendingFiles(self.settings, closes_reported=_reports_closes(self._observer))
        self._threads: list[threading.Thread] = []

    # -------------------------------------------------------------- lifecycle
    def start(self) -> InboxWatcher:
        for directory in (self.inbox, self.processed_dir, self.failed_dir):
            directory.mkdir(parents=True, exist_ok=True)
            if directory.is_symlink() or (directory != self.inbox and directory.resolve().parent != self.inbox):
                raise InvalidInput(f"{directory} must be a real folder inside the inbox, not a symlink")
        self._observer.schedule(_EventHandler(self), str(self.inbox), recursive=False, event_filter=EVENT_FILTER)
        self._observer.start()
        self.rescan()  # files dropped while we were down
        self._threads = [threading.Thread(target=target, name=f"inbox-{target.__name__}", daemon=True)
                         for target in (self._settle_loop, self._work_loop)]
        for thread in self._threads:
            thread.start()
        log.info("watching %s", self.inbox)
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the file in hand; queued ones stay in the inbox for the next start."""
        self._stop.set()
        self._queue.put(None)
        self._observer.stop()
        self._observer.join(timeout_s)
        for thread in self._threads:
            thread.join(timeout_s)

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    # -------------------------------------------------------------- discovery
    def noticed(self, path: Path, *, written: bool = False, closed: bool = False) -> None:
        if path.parent == self.inbox and is_candidate_name(path.name) and path not in self._in_hand | self._stuck:
            self.pending.saw(path, written=written, closed=closed)

    def rescan(self) -> None:
        with os.scandir(self.inbox) as entries:
            for entry in entries:
                if entry.is_symlink() or entry.is_file(follow_symlinks=False):
                    self.noticed(self.inbox / entry.name)

    def _settle_loop(self) -> None:
        next_rescan = time.monotonic() + self.settings.rescan_s
        while not self._stop.wait(self.settings.poll_s):
            for path in self.pending.take_complete():
                self._in_hand.add(path)
                self._queue.put(path)
            if time.monotonic() >= next_rescan:
                self.rescan()
                next_rescan = time.monotonic() + self.settings.rescan_s

    # -------------------------------------------------------------- processing
    def _work_loop(self) -> None:
        # On stop, files still queued stay in the inbox: the next start picks them up.
        while (path := self._queue.get()) is not None and not self._stop.is_set():
            try:
                self.process(path)
            except Exception:  # noqa: BLE001 - the worker must survive anything
                log.exception("could not process %s; it stays in the inbox until the watcher restarts", path)
                self._stuck.add(path)
            finally:
                self._in_hand.discard(path)

    def process(self, path: Path) -> InboxOutcome | None:
        """Ingest one complete file and move it (and its sidecar) out of the inbox."""
        if not os.path.lexists(path):
            return None  # taken away after it settled
        size = path.lstat().st_size
        outcome = ingest_dropped_file(self.guard, path, None, None, job=f"inbox:{path.name}")
        destination = self.failed_dir if outcome.status == "failed" else self.processed_dir
        target = move_entry(self.inbox, path, destination)
        outcome.moved_to = str(target.relative_to(self.inbox))
        self._move_sidecar(path, target)
        if outcome.error is not None:
            self._write_error_report(target, outcome, size)
        self._record(outcome)
        return outcome

    def _move_sidecar(self, path: Path, target: Path) -> None:
        sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
        if os.path.lexists(sidecar):
            entry = entry_inside(self.inbox, sidecar)
            os.rename(entry, target.with_name(target.name + SIDECAR_SUFFIX))

    def _write_error_report(self, target: Path, outcome: InboxOutcome, size: int) -> None:
        report = {**(outcome.error or {}), "file": outcome.file, "dataset": outcome.dataset, "size_bytes": size,
                  "kept_as": target.name, "failed_at": outcome.at}
        error_file = target.with_name(target.name + ERROR_SUFFIX)
        error_file.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")

    def _record(self, outcome: InboxOutcome) -> None:
        key = outcome.status if outcome.status in ("failed", "noop") else "ingested"
        self.counts[key] += 1
        self.recent.append(outcome)
        log.info("inbox %s -> %s (dataset %s, %d rows) moved to %s", outcome.file, outcome.status,
                 outcome.dataset, outcome.rows_written, outcome.moved_to)


class _QuietStopFilter(logging.Filter):
    """watchdog 7 logs an ERROR when its reader thread sees the watch closed by a normal
    `stop()` (a benign race); keep it out of operators' logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "called when the thread is inactive" not in record.getMessage()


logging.getLogger("watchdog.observers.inotify").addFilter(_QuietStopFilter())


def _reports_closes(observer: Any) -> bool:
    try:
        from watchdog.observers.inotify import InotifyObserver
    except ImportError:  # not Linux
        return False
    return isinstance(observer, InotifyObserver)
