"""SIGKILL a writer at random moments: every acknowledged write survives, nothing
half-written is ever visible, and nothing is written twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pyarrow as pa

from lakehouse import Lakehouse

KILLS = 50

WRITER = textwrap.dedent("""
    import os, sys
    import pyarrow as pa
    from lakehouse import Lakehouse
    data, acks, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
    lh = Lakehouse(data)
    with open(acks, "a") as ack:
        i = start
        while True:
            if i % 2:
                lh.append_rows("events", [{"id": i, "kind": "wal"}])
            else:
                lh.ingest_table(pa.table({"id": pa.array([i], pa.int64()), "kind": ["commit"]}), "events")
            ack.write(f"{i}\\n"); ack.flush(); os.fsync(ack.fileno())   # acknowledged
            i += 1
""")


def test_acknowledged_writes_survive_sigkill(tmp_path):
    data, acks = tmp_path / "data", tmp_path / "acks.txt"
    with Lakehouse(data) as lh:
        lh.ingest_table(pa.table({"id": pa.array([0], pa.int64()), "kind": ["seed"]}), "events")
    rng = random.Random(7)
    next_id = 1
    for round_no in range(KILLS):
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(data), str(acks), str(next_id)], stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.6, 1.6))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        acked = {int(x) for x in acks.read_text().split()} if acks.exists() else set()
        with Lakehouse(data) as lh:  # opens, replays the append log
            ids = lh.sql("SELECT id FROM events").column("id").to_pylist()
            assert len(ids) == len(set(ids)), f"round {round_no}: duplicated rows"
            missing = acked - set(ids)
            assert not missing, f"round {round_no}: acknowledged ids lost: {sorted(missing)[:10]}"
            assert lh.dataset("events")["row_count"] == len(ids)
            next_id = max(ids) + 1
    assert len(acked) > KILLS  # the writer really did work between kills
