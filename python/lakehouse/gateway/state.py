"""The one `Lakehouse` this gateway serves, and how endpoints reach it."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import anyio
import anyio.to_thread
from fastapi import Request

from lakehouse.config import Config
from lakehouse.gateway.uploads import QUARANTINE_DIR, UPLOADS_DIR
from lakehouse.lakehouse import Lakehouse


T = TypeVar("T")


class ReadWriteLock:
    """Many readers or one writer; write-preferring.

    The rules (each is tested in tests/test_gateway_concurrency.py):

    * Any number of threads may hold the read side at once; the write side is held by
      one thread, and only while no other thread holds either side.
    * Write-preferring: once a writer waits, a thread that does not hold the lock yet
      waits for it too, so a steady stream of readers cannot starve a write.
    * The write side is re-entrant for the thread holding it, and that thread may take
      the read side as well (a write may call code that reads).
    * The read side is re-entrant too: a thread already reading gets in again at once,
      even while a writer waits (otherwise the two would wait for each other).
    * No upgrades. A thread holding only the read side that asks for the write side
      gets `RuntimeError` at once instead of a deadlock (two readers both waiting to
      write would wait for each other forever). Take the write side from the start
      when a call may write.
    * Every acquire is released by the thread that made it.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers: dict[int, int] = {}  # thread id -> read holds
        self._writer: int | None = None
        self._write_depth = 0
        self._writers_waiting = 0

    # ------------------------------------------------------------------ read side
    def acquire_read(self, timeout: float | None = None) -> bool:
        me = threading.get_ident()
        with self._cond:
            if self._writer == me or me in self._readers:  # re-entry never waits
                self._readers[me] = self._readers.get(me, 0) + 1
                return True
            if not self._cond.wait_for(lambda: self._writer is None and not self._writers_waiting, timeout):
                return False
            self._readers[me] = 1
            return True

    def release_read(self) -> None:
        me = threading.get_ident()
        with self._cond:
            held = self._readers.get(me, 0)
            if not held:
                raise RuntimeError("release_read by a thread that does not hold the read side")
            if held == 1:
                del self._readers[me]
                if not self._readers:
                    self._cond.notify_all()
            else:
                self._readers[me] = held - 1

    # ------------------------------------------------------------------ write side
    def acquire_write(self, timeout: float | None = None) -> bool:
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:
                self._write_depth += 1
                return True
            if me in self._readers:
                raise RuntimeError(
                    "a thread holding the facade's read side asked for its write side: upgrades are refused "
                    "(they can deadlock); take the write side (`guard.use()`) from the start"
                )
            self._writers_waiting += 1
            try:
                acquired = self._cond.wait_for(lambda: self._writer is None and not self._readers, timeout)
            finally:
                self._writers_waiting -= 1
                if not self._writers_waiting:
                    self._cond.notify_all()  # readers held back by this (now gone) waiting writer
            if not acquired:
                return False
            self._writer, self._write_depth = me, 1
            return True

    def release_write(self) -> None:
        with self._cond:
            if self._writer != threading.get_ident():
                raise RuntimeError("release_write by a thread that does not hold the write side")
            self._write_depth -= 1
            if not self._write_depth:
                self._writer = None
                self._cond.notify_all()

    # ------------------------------------------------------------------ views
    @property
    def read_side(self) -> _Side:
        return _Side(self.acquire_read, self.release_read)

    @property
    def write_side(self) -> _Side:
        return _Side(self.acquire_write, self.release_write)

    @property
    def waiting_writers(self) -> int:
        """Writers waiting right now (diagnostics and tests)."""
        with self._cond:
            return self._writers_waiting

    @property
    def active_readers(self) -> int:
        """Threads holding the read side right now (diagnostics and tests)."""
        with self._cond:
            return len(self._readers)


class _Side:
    """One side of a `ReadWriteLock` with the `threading.RLock` interface (`with`,
    `acquire(blocking, timeout)`, `release()`), so code written for a plain lock,
    such as `VectorIndexes.facade_lock`, takes it unchanged."""

    def __init__(self, acquire, release) -> None:
        self._acquire, self._release = acquire, release

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if not blocking:
            return self._acquire(0)
        return self._acquire(None if timeout is None or timeout < 0 else timeout)

    def release(self) -> None:
        self._release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class FacadeGuard:
    """How every call reaches the facade: reads share it, writes have it alone.

    `use()` is the exclusive (write) side: the default, so a call site that was never
    looked at stays correct. `read()` is for calls that only read the facade (SQL,
    catalog listings, searches); they run side by side. The rules of the lock (write
    preference, re-entry, no read -> write upgrade) are on `ReadWriteLock`. Sync
    endpoints run in FastAPI's threadpool, so waiting here never blocks the event loop.

    The core's objects are safe for concurrent reads (each guards its state with its
    own mutex). The one per-engine value a read leaves behind, "the last query used
    the rescue bucket", is paired with its query by `Lakehouse.sql` itself.
    """

    def __init__(self, lakehouse: Lakehouse):
        self._lakehouse = lakehouse
        self.rwlock = ReadWriteLock()
        #: exclusive side, a drop-in for a plain re-entrant lock (`VectorIndexes.facade_lock`)
        self.write_lock = self.rwlock.write_side
        #: shared side (`VectorIndexes.facade_read_lock`)
        self.read_lock = self.rwlock.read_side
        #: the old name of the exclusive lock, still taken by the maintenance agent
        self._lock = self.write_lock
        self._built: set[str] = set()

    @contextmanager
    def use(self) -> Iterator[Lakehouse]:
        """Exclusive: no other call into the facade runs meanwhile."""
        with self.write_lock:
            yield self._lakehouse

    @contextmanager
    def read(self) -> Iterator[Lakehouse]:
        """Shared with other readers: only for calls that do not change the facade."""
        with self.read_lock:
            yield self._lakehouse

    @contextmanager
    def try_use(self, timeout_s: float) -> Iterator[Lakehouse | None]:
        """Like `use`, but yields None instead of waiting longer than `timeout_s`."""
        with self._try(self.rwlock.acquire_write, self.rwlock.release_write, timeout_s) as lakehouse:
            yield lakehouse

    @contextmanager
    def try_read(self, timeout_s: float) -> Iterator[Lakehouse | None]:
        """Like `read`, but yields None instead of waiting longer than `timeout_s`."""
        with self._try(self.rwlock.acquire_read, self.rwlock.release_read, timeout_s) as lakehouse:
            yield lakehouse

    @contextmanager
    def _try(self, acquire, release, timeout_s: float) -> Iterator[Lakehouse | None]:
        acquired = acquire(timeout_s)
        try:
            yield self._lakehouse if acquired else None
        finally:
            if acquired:
                release()

    def built(self, *parts: str) -> None:
        """Make sure the facade's lazily created parts (`vectors`, `playbooks`) exist.

        The first use creates them under the write side, so two readers never race to
        create (and open the files of) the same part twice; afterwards this is a set
        lookup and takes no lock."""
        missing = [p for p in parts if p not in self._built]
        if missing:
            with self.use() as lakehouse:
                for part in missing:
                    getattr(lakehouse, part)
                    self._built.add(part)


@dataclass
class GatewayState:
    guard: FacadeGuard
    config: Config
    data_path: Path
    started_at: float = field(default_factory=time.monotonic)
    _search_slots: anyio.CapacityLimiter | None = field(default=None, repr=False)

    async def run_search(self, fn: Callable[[], T]) -> T:
        """`fn()` on a worker thread, at most `[gateway] search_threads` at once."""
        if self._search_slots is None:  # made on the event loop, as anyio requires
            self._search_slots = anyio.CapacityLimiter(max(1, self.config.gateway.search_threads))
        return await anyio.to_thread.run_sync(fn, limiter=self._search_slots)

    @property
    def uploads_dir(self) -> Path:
        return self.data_path / UPLOADS_DIR

    @property
    def quarantine_dir(self) -> Path:
        return self.data_path / QUARANTINE_DIR


def gateway_state(request: Request) -> GatewayState:
    return request.app.state.gateway
