"""The agent's upkeep pass: playbook compaction with the configured policy."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa

from lakehouse import Lakehouse
from lakehouse.config import DaemonConfig
from lakehouse.daemon.agent import default_guard
from lakehouse.daemon.maintenance import Maintenance


def test_a_pass_compacts_playbook_memory_and_reports_what_went(tmp_path: Path):
    with Lakehouse(tmp_path / "data", actor="ops") as lake:
        lake.ingest_table(pa.table({"worker_id": [1, 2], "name": ["Ana", "Bo"], "role": ["Welder"] * 2,
                                    "city": ["Toledo"] * 2, "state": ["OH"] * 2}), "workers")
        old = (date.today() - timedelta(days=400)).isoformat()
        lake.playbooks.seed({"role": "Welder", "city": "Toledo", "state": "OH", "date": old, "workers": [{"worker_id": "1", "name": "Ana"}]})
        lake.playbooks.seed({"role": "Welder", "city": "Toledo", "state": "OH", "workers": [{"worker_id": "2", "name": "Bo"}]})
        settings = DaemonConfig(autotune=False, playbook_ttl_days=365)
        report = Maintenance(lake, default_guard(lake), settings).run_once()
        assert report["playbooks"]["before"] == 2 and report["playbooks"]["after"] == 1
        assert report["playbooks"]["expired_ttl"] == 1
        assert [e["workers"][0]["worker_id"] for e in lake.playbooks.entries()] == ["2"]
        assert lake.journal(actor="agent")[-1]["operation"] == "playbook_compact"


def test_a_pass_without_any_memory_loads_nothing(tmp_path: Path):
    with Lakehouse(tmp_path / "data") as lake:
        report = Maintenance(lake, default_guard(lake), DaemonConfig()).run_once()
        assert report == {"autotune": [], "playbooks": None}
        assert lake._playbooks is None
