"""Periodic upkeep run by the agent: autotune indexes that grew (or were never tuned),
and compact playbook memory (TTL, decay floor, near-duplicate merge). Each pass is
logged with what it did; a failing task is logged and retried next pass."""

from __future__ import annotations

import logging
import threading
from typing import Any

from lakehouse.config import DaemonConfig
from lakehouse.daemon.inbox import Guard
from lakehouse.lakehouse import Lakehouse

log = logging.getLogger("lakehouse.maintenance")


class Maintenance:
    def __init__(self, lakehouse: Lakehouse, guard: Guard, settings: DaemonConfig):
        self.lakehouse = lakehouse
        self.guard = guard
        self.settings = settings
        self.last: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Maintenance:
        self._thread = threading.Thread(target=self._loop, name="lakehouse-maintenance", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        # The first pass waits one interval: a restart must not start heavy work at once.
        while not self._stop.wait(self.settings.maintenance_interval_seconds):
            self.run_once()

    def run_once(self) -> dict[str, Any]:
        report: dict[str, Any] = {}
        if self.settings.autotune:
            report["autotune"] = self._task("autotune", self._autotune)
        if self.settings.playbook_compaction:
            report["playbooks"] = self._task("playbook compaction", self._compact_playbooks)
        self.last = report
        return report

    def _task(self, name: str, work) -> Any:
        try:
            result = work()
            log.info("%s: %s", name, result)
            return result
        except Exception as e:  # logged, retried next pass
            log.exception("%s failed", name)
            return {"error": f"{type(e).__name__}: {e}"}

    def _autotune(self) -> list[dict[str, Any]]:
        from lakehouse.vectors.autotune import run_due

        indexes = self.lakehouse.vectors
        indexes.facade_lock = getattr(self.guard, "_lock", indexes.facade_lock)
        return run_due(indexes, actor="agent")

    def _compact_playbooks(self) -> dict[str, Any] | None:
        ops = self.lakehouse.path / "_playbooks" / "ops.jsonl"
        if not ops.is_file() or ops.stat().st_size == 0:
            return None  # no memory yet: do not load the model for nothing
        s = self.settings
        with self.guard.use() as lakehouse:
            report = lakehouse.playbooks.compact(
                ttl_days=s.playbook_ttl_days, decay_floor=s.playbook_decay_floor, merge_cosine=s.playbook_merge_cosine, actor="agent"
            )
        return {k: (len(v) if isinstance(v, list) else v) for k, v in report.items()}
