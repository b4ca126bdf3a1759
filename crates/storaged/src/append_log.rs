//! The append log: small writes are durable before they are acknowledged and are
//! flushed to their table in batches (ADR: append pattern).
//!
//! One JSON-lines file per dataset under `<data_dir>/_wal/`. Each record carries a
//! sequence number and the rows as JSON. A flush writes all pending rows as one
//! Delta commit that also records an application transaction
//! (`lakehouse.append_log`, highest sequence flushed); the log is truncated only
//! after that commit. If the process dies between the two, the next start sees
//! that the table already holds those sequence numbers and skips them, so a row is
//! never lost and never written twice.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::io::Cursor;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::json::ReaderBuilder;
use lakehouse_shared::arrow_helpers::storage_schema;
use lakehouse_shared::jsonl::JsonlFile;
use lakehouse_shared::{LakehouseError, Result};
use serde::{Deserialize, Serialize};

use crate::tables::{TableStore, TxnMarker, WriteMode};

const APP_ID: &str = "lakehouse.append_log";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    seq: i64,
    rows: Vec<String>,
}

struct DatasetLog {
    file: JsonlFile,
    entries: Vec<Entry>,
}

/// What a flush or replay committed for one dataset.
#[derive(Debug, Clone, Serialize)]
pub struct Flushed {
    pub dataset: String,
    pub rows: u64,
    pub version: i64,
    pub last_seq: i64,
}

pub struct AppendLog {
    dir: PathBuf,
    logs: BTreeMap<String, DatasetLog>,
    next_seq: HashMap<String, i64>,
}

impl AppendLog {
    pub fn open(data_dir: &Path) -> Result<Self> {
        let dir = data_dir.join("_wal");
        fs::create_dir_all(&dir)?;
        let mut logs = BTreeMap::new();
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            let Some(dataset) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".jsonl")) else {
                continue;
            };
            let (file, entries) = JsonlFile::open(&path)?;
            logs.insert(dataset.to_string(), DatasetLog { file, entries });
        }
        Ok(Self { dir, logs, next_seq: HashMap::new() })
    }

    /// Durably log `rows` (one JSON object each) for `dataset`; returns the sequence
    /// number once the record is fsync'd. Rows are checked against the table schema
    /// first, so a bad row is refused now rather than poisoning a later flush.
    pub async fn append(&mut self, store: &TableStore, dataset: &str, rows: Vec<String>) -> Result<i64> {
        let schema = table_schema(store, dataset).await?;
        decode(&schema, &rows)?;
        let seq = self.next_seq(store, dataset).await?;
        let log = self.log_for(dataset)?;
        let entry = Entry { seq, rows };
        log.file.append(std::slice::from_ref(&entry))?;
        log.entries.push(entry);
        self.next_seq.insert(dataset.to_string(), seq + 1);
        Ok(seq)
    }

    pub fn pending_rows(&self, dataset: &str) -> usize {
        self.logs.get(dataset).map_or(0, |l| l.entries.iter().map(|e| e.rows.len()).sum())
    }

    /// Commit pending rows (of one dataset, or all) as one Delta commit per dataset.
    pub async fn flush(&mut self, store: &TableStore, dataset: Option<&str>) -> Result<Vec<Flushed>> {
        let names: Vec<String> = match dataset {
            Some(d) => vec![d.to_string()],
            None => self.logs.keys().cloned().collect(),
        };
        let mut out = Vec::new();
        for name in names {
            if let Some(f) = self.flush_one(store, &name).await? {
                out.push(f);
            }
        }
        Ok(out)
    }

    /// On start: drop entries the table already holds, then flush the rest.
    pub async fn replay(&mut self, store: &TableStore) -> Result<Vec<Flushed>> {
        self.flush(store, None).await
    }

    async fn flush_one(&mut self, store: &TableStore, dataset: &str) -> Result<Option<Flushed>> {
        let committed = store.txn_version(dataset, APP_ID).await?.unwrap_or(0);
        let Some(log) = self.logs.get(dataset) else { return Ok(None) };
        let pending: Vec<&Entry> = log.entries.iter().filter(|e| e.seq > committed).collect();
        let mut result = None;
        if let Some(last_seq) = pending.last().map(|e| e.seq) {
            let schema = table_schema(store, dataset).await?;
            let rows: Vec<String> = pending.iter().flat_map(|e| e.rows.iter().cloned()).collect();
            let batches = decode(&schema, &rows)?;
            let txn = TxnMarker { app_id: APP_ID.into(), version: last_seq };
            let meta = HashMap::from([("lakehouse.via".to_string(), "append_log".to_string())]);
            let source: crate::BatchSource = Box::new(batches.into_iter().map(Ok));
            let outcome = store.write(dataset, source, schema, WriteMode::Append, meta, Some(txn)).await?;
            result = Some(Flushed { dataset: dataset.into(), rows: rows.len() as u64, version: outcome.version, last_seq });
        }
        self.truncate(dataset)?;
        Ok(result)
    }

    async fn next_seq(&mut self, store: &TableStore, dataset: &str) -> Result<i64> {
        if let Some(seq) = self.next_seq.get(dataset) {
            return Ok(*seq);
        }
        let committed = store.txn_version(dataset, APP_ID).await?.unwrap_or(0);
        let logged = self.logs.get(dataset).and_then(|l| l.entries.last()).map_or(0, |e| e.seq);
        Ok(committed.max(logged) + 1)
    }

    fn log_for(&mut self, dataset: &str) -> Result<&mut DatasetLog> {
        if !self.logs.contains_key(dataset) {
            let (file, entries) = JsonlFile::open(&self.path(dataset))?;
            self.logs.insert(dataset.to_string(), DatasetLog { file, entries });
        }
        Ok(self.logs.get_mut(dataset).expect("inserted above"))
    }

    fn truncate(&mut self, dataset: &str) -> Result<()> {
        let path = self.path(dataset);
        let f = OpenOptions::new().write(true).open(&path)?;
        f.set_len(0)?;
        f.sync_all()?;
        if let Some(log) = self.logs.get_mut(dataset) {
            log.entries.clear();
        }
        Ok(())
    }

    fn path(&self, dataset: &str) -> PathBuf {
        self.dir.join(format!("{dataset}.jsonl"))
    }
}

async fn table_schema(store: &TableStore, dataset: &str) -> Result<SchemaRef> {
    let info = store
        .info(dataset)
        .await?
        .ok_or_else(|| LakehouseError::NotFound(format!("dataset '{dataset}' has no table to append to")))?;
    Ok(std::sync::Arc::new(storage_schema(&info.schema)?))
}

fn decode(schema: &SchemaRef, rows: &[String]) -> Result<Vec<RecordBatch>> {
    let text = rows.join("\n");
    let reader = ReaderBuilder::new(schema.clone())
        .with_strict_mode(true)
        .build(Cursor::new(text.into_bytes()))
        .map_err(|e| LakehouseError::InvalidInput(format!("rows do not fit the table schema: {e}")))?;
    reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| LakehouseError::InvalidInput(format!("rows do not fit the table schema: {e}")))
}
