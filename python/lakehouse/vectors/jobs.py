"""Background jobs with progress (index builds and refreshes): a thread per job, status
readable at any time, the last few hundred kept for `GET /vectors/jobs`."""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from collections import OrderedDict
from typing import Any, Callable

from lakehouse.errors import NotFound

KEEP_FINISHED = 200


class Job:
    def __init__(self, kind: str, target: str):
        self.id = uuid.uuid4().hex[:12]
        self.kind = kind
        self.target = target
        self.status = "queued"
        self.done = 0
        self.total = 0
        self.result: Any = None
        self.error: str | None = None
        self.started_at = time.time()
        self.finished_at: float | None = None
        self.finished = threading.Event()

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "target": self.target, "status": self.status,
            "progress": {"done": self.done, "total": self.total,
                         "fraction": round(self.done / self.total, 4) if self.total else (1.0 if self.status == "succeeded" else 0.0)},
            "result": self.result, "error": self.error,
            "seconds": round((self.finished_at or time.time()) - self.started_at, 3),
        }


class JobRunner:
    def __init__(self) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()

    def submit(self, kind: str, target: str, work: Callable[[Callable[[int, int], None]], Any]) -> Job:
        job = Job(kind, target)
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > KEEP_FINISHED:
                oldest = next(iter(self._jobs.values()))
                if not oldest.finished.is_set():
                    break
                self._jobs.popitem(last=False)

        def run() -> None:
            job.status = "running"
            try:
                job.result = work(job.progress)
                job.status = "succeeded"
            except Exception as e:  # reported through the job, never lost
                job.status = "failed"
                job.error = f"{type(e).__name__}: {e}"
                job.result = {"traceback": traceback.format_exc(limit=5)}
            finally:
                job.finished_at = time.time()
                job.finished.set()

        threading.Thread(target=run, name=f"lakehouse-{kind}-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        return job

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [job.to_dict() for job in reversed(self._jobs.values())]
