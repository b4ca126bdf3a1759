use super::*;
use arrow_schema::{DataType, Field};

fn schema(cols: &[(&str, DataType)]) -> Schema {
    Schema::new(cols.iter().map(|(n, t)| Field::new(*n, t.clone(), true)).collect::<Vec<_>>())
}

fn workers() -> Schema {
    schema(&[("worker_id", DataType::Int64), ("name", DataType::Utf8)])
}

fn stats(rows: u64, version: i64) -> TableStats {
    TableStats { row_count: Some(rows), size_bytes: Some(100), version }
}

fn lineage() -> Lineage {
    Lineage {
        source_system: "test".into(),
        ingest_job: "job".into(),
        source_hash: None,
        actor: "sarah".into(),
        version: None,
        at: now_rfc3339(),
    }
}

#[test]
fn same_name_and_fingerprint_reuses_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Catalog::open(dir.path()).unwrap();
    let first = c.register("workers", &workers(), stats(10, 0), lineage(), false).unwrap();
    let second = c.register("workers", &workers(), stats(20, 1), lineage(), false).unwrap();
    assert_eq!(first.id, second.id);
    assert_eq!(second.row_count, Some(20));
    assert!(second.updated_at >= first.updated_at);
    assert_eq!(c.list(false).len(), 1);
}

#[test]
fn other_fingerprint_is_a_conflict_naming_both_and_the_diff() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Catalog::open(dir.path()).unwrap();
    let m = c.register("workers", &workers(), stats(10, 0), lineage(), false).unwrap();
    let drifted = schema(&[("worker_id", DataType::Utf8), ("name", DataType::Utf8)]);
    let err = c.register("workers", &drifted, stats(10, 1), lineage(), false).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&m.fingerprint), "{text}");
    assert!(text.contains(&fingerprint(&drifted)), "{text}");
    assert!(text.contains("worker_id"), "{text}");
    // nothing changed
    assert_eq!(c.get("workers").unwrap().version, 0);
}

#[test]
fn replace_accepts_a_new_schema() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Catalog::open(dir.path()).unwrap();
    c.register("workers", &workers(), stats(10, 0), lineage(), false).unwrap();
    let other = schema(&[("id", DataType::Int32)]);
    let m = c.register("workers", &other, stats(3, 1), lineage(), true).unwrap();
    assert_eq!(m.fingerprint, fingerprint(&other));
}

#[test]
fn tombstone_hides_and_restore_brings_back_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut c = Catalog::open(dir.path()).unwrap();
        c.register("workers", &workers(), stats(10, 0), lineage(), false).unwrap();
        c.tombstone("workers").unwrap();
        assert!(c.get_live("workers").is_none());
        assert!(c.check("workers", &workers()).is_err(), "tombstoned names are not silently reused");
    }
    let mut c = Catalog::open(dir.path()).unwrap();
    assert!(c.list(false).is_empty());
    assert_eq!(c.list(true).len(), 1);
    c.restore("workers").unwrap();
    drop(c);
    assert_eq!(Catalog::open(dir.path()).unwrap().live_names(), vec!["workers".to_string()]);
}

#[test]
fn dedupe_keeps_known_row_count_then_newest_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Catalog::open(dir.path()).unwrap();
    let base = Manifest::new("workers", &workers(), stats(10, 0), lineage()).unwrap();
    let mut no_count = base.clone();
    no_count.id = "b-no-count".into();
    no_count.row_count = None;
    no_count.updated_at = "2999-01-01T00:00:00Z".into(); // newest, but unknown row count
    let mut older = base.clone();
    older.id = "c-older".into();
    older.updated_at = "2000-01-01T00:00:00Z".into();
    for m in [base.clone(), no_count, older] {
        c.import(m).unwrap();
    }
    let report = c.dedupe().unwrap();
    assert_eq!(report.removed, 2);
    assert_eq!(report.groups[0].winner, base.id);
    assert_eq!(c.dedupe().unwrap().removed, 0);
    drop(c);
    let c = Catalog::open(dir.path()).unwrap();
    assert_eq!(c.get("workers").unwrap().id, base.id);
}

#[test]
fn seen_hashes_persist() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut c = Catalog::open(dir.path()).unwrap();
        c.record_hash("sha256:abc", "workers", 3).unwrap();
    }
    let c = Catalog::open(dir.path()).unwrap();
    assert_eq!(c.seen_hash("sha256:abc").unwrap().version, 3);
    assert!(c.seen_hash("sha256:def").is_none());
}
