"""PII tagging on a labelled table, and tags landing in the catalog on ingest."""

from __future__ import annotations

from lakehouse import _core

from conftest import workers_table
from pii_labelled import labelled_table, score


def test_labelled_table_precision_and_recall():
    table, truth = labelled_table()
    report = _core.pii_scan(table)
    result = score(report["column_labels"], truth)
    wrong = {c: report["column_labels"].get(c) for c in truth if bool(report["column_labels"].get(c)) != bool(truth[c])}
    assert result["precision"] >= 0.95, (result, wrong)
    assert result["recall"] >= 0.9, (result, wrong)
    assert result["label_accuracy"] >= 0.95, result


def test_negatives_stay_untagged():
    table, truth = labelled_table(seed=11)
    labels = _core.pii_scan(table)["column_labels"]
    for column in ("zip", "zip4", "order_number", "start_date", "product_code", "worker_id", "serial"):
        assert column not in labels, (column, labels.get(column))


def test_ingest_records_sensitivity_and_column_tags_in_the_manifest(lh):
    table, _ = labelled_table()
    lh.ingest_table(table, "people")
    manifest = lh.dataset("people")
    assert manifest["sensitivity"] == "PHI"
    assert manifest["column_tags"]["ssn"] == "PII"
    assert manifest["column_tags"]["salary"] == "Financial"
    assert "zip" not in manifest["column_tags"]


def test_a_dataset_without_personal_data_is_internal(lh):
    lh.ingest_table(workers_table(5).drop_columns(["name"]), "roster")
    manifest = lh.dataset("roster")
    assert manifest["sensitivity"] == "Internal"
    assert manifest["column_tags"] == {}
