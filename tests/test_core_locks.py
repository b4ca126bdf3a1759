"""The core's objects are shared by the gateway's worker threads: none may deadlock when
Python hands the GIL from one thread to another in the middle of a call.

The failure this guards against: a binding took its Rust lock while holding the GIL and
then built the Python result (which runs `json.loads`, where Python may switch threads).
A second thread, now holding the GIL, waited for that lock; the first waited for the GIL.
The gateway froze under 20 concurrent /match clients.

A deadlocked process cannot report anything (the thread stuck on the lock keeps the GIL),
so each workload runs in a child process that must finish within a time limit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

LIMIT_S = 120

PRELUDE = """
import sys, threading
import numpy as np
from lakehouse import _core
sys.setswitchinterval(1e-6)  # switch threads as often as possible: a lock held across a switch shows
DIM, THREADS, CALLS = 8, 8, 300
def run_all(workers):
    threads = [threading.Thread(target=fn) for fn in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
"""


def _finishes(tmp_path: Path, workload: str) -> None:
    script = PRELUDE + textwrap.dedent(workload) + "\nprint('done')\n"
    try:
        proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the threads did not finish within {LIMIT_S}s: a lock is held across a GIL switch") from None
    assert proc.returncode == 0 and proc.stdout.strip() == "done", proc.stderr[-2000:]


def test_playbook_memory_reads_and_writes_from_many_threads_never_deadlock(tmp_path: Path):
    _finishes(tmp_path, """
        memory = _core.PlaybookMemory(sys.argv[1], DIM)
        vector = (np.ones(DIM) / np.sqrt(DIM)).astype("<f4").tobytes()
        for i in range(20):
            memory.seed({"operation": f"Welder x1 #{i}", "role": "Welder", "city": "Toledo", "state": "OH",
                         "date": "2026-11-01", "workers": [{"worker_id": str(i), "name": f"W{i}"}]}, vector)
        def reader():
            for _ in range(CALLS):
                assert len(memory.entries()) == 20 and len(memory) == 20
        def writer():
            for i in range(CALLS // 10):
                memory.mark_failed("Toledo", "OH", str(i % 20), f"W{i % 20}")
                memory.failures()
        run_all([reader] * (THREADS - 2) + [writer] * 2)
    """)


def test_index_registry_reads_from_many_threads_never_deadlock(tmp_path: Path):
    _finishes(tmp_path, """
        registry = _core.IndexRegistry(sys.argv[1])
        def reader():
            for _ in range(CALLS):
                registry.versions(); registry.history(); registry.active(); registry.next_version()
        run_all([reader] * THREADS)
    """)
