//! Delta tables on the primary bucket, mirrored to the rescue bucket.
//!
//! Every write is one atomic, versioned Delta commit: appends add files and never
//! rewrite the base, a replace is an overwrite commit, OPTIMIZE merges small files.
//! Older versions stay readable (time travel) until an explicit vacuum.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU64;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use chrono::{DateTime, Utc};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::{EnabledStatistics, WriterProperties};
use deltalake::kernel::Transaction;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableError};
use futures::{StreamExt, TryStreamExt};
use lakehouse_shared::arrow_helpers::storage_schema;
use lakehouse_shared::{LakehouseError, Result};
use object_store::{ObjectStoreExt, path::Path as ObjectPath};
use serde::Serialize;

use crate::bucket::{Bucket, BucketHealth};
use crate::error_journal::{BucketError, ErrorJournal};
use crate::stream_input::{BatchSource, StreamProgress, input_plan};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    Append,
    Overwrite,
}

impl std::str::FromStr for WriteMode {
    type Err = LakehouseError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "append" => Ok(Self::Append),
            "overwrite" | "replace" => Ok(Self::Overwrite),
            other => Err(LakehouseError::invalid(format!("unknown write mode '{other}' (append | overwrite)"))),
        }
    }
}

/// Application-transaction marker committed atomically with the data, so a replayed
/// write (append log after a crash) can tell it already landed.
#[derive(Debug, Clone)]
pub struct TxnMarker {
    pub app_id: String,
    pub version: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct WriteOutcome {
    pub version: i64,
    pub files: Vec<String>,
    pub rows_written: u64,
    pub num_rows: u64,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableInfo {
    pub version: i64,
    pub num_rows: u64,
    pub num_files: usize,
    pub size_bytes: u64,
    #[serde(skip)]
    pub schema: SchemaRef,
}

#[derive(Debug, Clone, Serialize)]
pub struct RowChange {
    pub version: i64,
    pub rows: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct OptimizeReport {
    pub version: i64,
    pub files_added: u64,
    pub files_removed: u64,
}

/// A table handle plus where it was read from.
pub struct OpenTable {
    pub table: DeltaTable,
    pub rescue_used: bool,
}

/// How Parquet files are laid out. Row groups are the unit of parallelism and of
/// statistics-based skipping; with page statistics a point lookup reads a few pages.
#[derive(Debug, Clone, Copy)]
pub struct FileLayout {
    pub row_group_rows: usize,
}

impl Default for FileLayout {
    fn default() -> Self {
        Self { row_group_rows: 128 * 1024 }
    }
}

impl FileLayout {
    fn writer_properties(&self) -> WriterProperties {
        WriterProperties::builder()
            .set_max_row_group_row_count(Some(self.row_group_rows.max(1024)))
            // Snappy: decoding speed matters more than size on a 2-core box.
            .set_compression(Compression::SNAPPY)
            .set_statistics_enabled(EnabledStatistics::Page)
            .build()
    }
}

pub struct TableStore {
    layout: FileLayout,
    primary: Bucket,
    rescue: Option<Bucket>,
    errors: Arc<ErrorJournal>,
    /// Latest handle per table. This process is the only writer (the data-dir lock),
    /// so a cached handle is current until we write again.
    latest: Mutex<HashMap<String, DeltaTable>>,
}

impl TableStore {
    /// Tables live in `<data_dir>/tables/<name>`; the rescue mirror, if configured,
    /// in `<rescue_root>/tables/<name>`.
    pub fn open(data_dir: &Path, rescue_root: Option<&Path>, layout: FileLayout) -> Result<Self> {
        let errors = Arc::new(ErrorJournal::open(data_dir)?);
        let primary = Bucket::local("primary", &data_dir.join("tables"))?;
        let rescue = rescue_root.map(|r| Bucket::local("rescue", &r.join("tables"))).transpose()?;
        Ok(Self { layout, primary, rescue, errors, latest: Mutex::new(HashMap::new()) })
    }

    pub fn errors(&self, limit: Option<usize>) -> Vec<BucketError> {
        self.errors.list(limit)
    }

    pub async fn health(&self) -> Vec<BucketHealth> {
        let mut out = vec![self.primary.health("primary").await];
        if let Some(r) = &self.rescue {
            out.push(r.health("rescue").await);
        }
        for h in &out {
            if let Some(e) = &h.error {
                self.errors.record(&h.bucket, "health", &h.root, e);
            }
        }
        out
    }

    /// Write batches as one commit. On failure nothing becomes visible: the commit
    /// either lands whole or not at all; the failure is journaled and reported as
    /// `BucketUnavailable` when the bucket itself failed.
    pub async fn write(
        &self,
        name: &str,
        source: BatchSource,
        schema: SchemaRef,
        mode: WriteMode,
        metadata: HashMap<String, String>,
        txn: Option<TxnMarker>,
    ) -> Result<WriteOutcome> {
        let target: SchemaRef = Arc::new(storage_schema(&schema)?);
        let progress = Arc::new(StreamProgress::default());
        let plan = input_plan(target, source, progress.clone())?;
        let before = self.load_primary_or_new(name).await?;
        let files_before = file_set(&before);
        let mut props = CommitProperties::default()
            .with_metadata(metadata.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))));
        if let Some(t) = txn {
            props = props.with_application_transaction(Transaction::new(t.app_id, t.version));
        }
        let save_mode = match mode {
            WriteMode::Append => SaveMode::Append,
            WriteMode::Overwrite => SaveMode::Overwrite,
        };
        let mut builder = before
            .write(Vec::new())
            .with_input_plan(plan)
            .with_save_mode(save_mode)
            .with_commit_properties(props)
            .with_writer_properties(self.layout.writer_properties());
        if mode == WriteMode::Overwrite {
            builder = builder.with_schema_mode(deltalake::operations::write::SchemaMode::Overwrite);
        }
        let table = match builder.await {
            Ok(table) => table,
            Err(e) => match progress.source_error.lock().expect("progress").take() {
                Some(source_error) => return Err(LakehouseError::SourceFailed(source_error)),
                None => return Err(self.classify(e, "write", name)),
            },
        };
        let files: Vec<String> = file_set(&table).difference(&files_before).cloned().collect();
        let info = table_info(&table)?;
        self.remember(name, table);
        self.mirror(name).await;
        Ok(WriteOutcome {
            version: info.version,
            files,
            rows_written: progress.rows.load(Ordering::Relaxed),
            num_rows: info.num_rows,
            size_bytes: info.size_bytes,
        })
    }

    /// Current version, row count (from log statistics, no scan), files, size, schema.
    pub async fn info(&self, name: &str) -> Result<Option<TableInfo>> {
        match self.latest(name).await {
            Ok(open) => Ok(Some(table_info(&open.table)?)),
            Err(LakehouseError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The latest version, from the primary bucket or, if that read fails, the rescue copy.
    pub async fn latest(&self, name: &str) -> Result<OpenTable> {
        if let Some(t) = self.latest.lock().expect("table cache").get(name) {
            return Ok(OpenTable { table: t.clone(), rescue_used: false });
        }
        let open = self.read_with_rescue(name, |mut t| async move { t.load().await.map(|_| t) }).await?;
        if !open.rescue_used {
            self.remember(name, open.table.clone());
        }
        Ok(open)
    }

    pub async fn at_version(&self, name: &str, version: i64) -> Result<OpenTable> {
        let latest = version_of(&self.latest(name).await?.table);
        if version < 0 || version > latest {
            return Err(LakehouseError::NotFound(format!("dataset '{name}' has no version {version} (latest is {latest})")));
        }
        let version = version as u64;
        self.read_with_rescue(name, move |mut t| async move { t.load_version(version).await.map(|_| t) }).await
    }

    pub async fn at_timestamp(&self, name: &str, at: DateTime<Utc>) -> Result<OpenTable> {
        self.read_with_rescue(name, move |mut t| async move { t.load_with_datetime(at).await.map(|_| t) }).await
    }

    /// The files commits after `version` added, when those commits only added files (pure
    /// appends): then the rows appended since `version` are exactly those files' rows.
    /// `None` when a later commit removed or rewrote a file (update, delete, overwrite,
    /// compaction): only a full read can tell what changed then.
    pub async fn appended_since(&self, name: &str, version: i64) -> Result<Option<Vec<String>>> {
        let now = file_set(&self.latest(name).await?.table);
        // A version that cannot be read back (the log was cleaned, or the dataset was
        // recreated and numbers restarted) is no base for a diff: the caller reads all,
        // and that read reports any real storage failure.
        let Ok(then) = self.at_version(name, version).await else { return Ok(None) };
        let then = file_set(&then.table);
        if !then.is_subset(&now) {
            return Ok(None);
        }
        let mut added: Vec<String> = now.difference(&then).cloned().collect();
        added.sort();
        Ok(Some(added))
    }

    /// Drop cached handles so the next read reloads from storage (used after a
    /// bucket recovers, and by tests that damage the primary).
    pub fn forget(&self, name: Option<&str>) {
        let mut cache = self.latest.lock().expect("table cache");
        match name {
            Some(n) => {
                cache.remove(n);
            }
            None => cache.clear(),
        }
    }

    pub async fn history(&self, name: &str) -> Result<Vec<serde_json::Value>> {
        let open = self.latest(name).await?;
        let latest = version_of(&open.table);
        let infos: Vec<_> = open.table.history(None).try_collect().await.map_err(|e| self.classify(e, "history", name))?;
        // History is newest first, one entry per commit.
        Ok(infos
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                serde_json::json!({
                    "version": latest - i as i64,
                    "timestamp_ms": c.timestamp,
                    "operation": c.operation,
                    "parameters": c.operation_parameters,
                    "metadata": c.info,
                })
            })
            .collect())
    }

    pub async fn txn_version(&self, name: &str, app_id: &str) -> Result<Option<i64>> {
        let open = match self.latest(name).await {
            Ok(o) => o,
            Err(LakehouseError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let state = open.table.snapshot().map_err(|e| self.classify(e, "read", name))?;
        state
            .transaction_version(open.table.log_store().as_ref(), app_id)
            .await
            .map_err(|e| self.classify(e, "read", name))
    }

    /// Merge small files (Delta OPTIMIZE). Query answers do not change.
    pub async fn optimize(&self, name: &str, target_size: u64) -> Result<OptimizeReport> {
        let table = self.latest(name).await?.table;
        let target = NonZeroU64::new(target_size.max(1)).expect("non-zero");
        let (table, metrics) = table
            .optimize()
            .with_target_size(target)
            .with_writer_properties(self.layout.writer_properties())
            .await.map_err(|e| self.classify(e, "optimize", name))?;
        let report = OptimizeReport {
            version: version_of(&table),
            files_added: metrics.num_files_added,
            files_removed: metrics.num_files_removed,
        };
        self.remember(name, table);
        self.mirror(name).await;
        Ok(report)
    }

    /// Update rows matching a SQL predicate; `assignments` are (column, SQL expression).
    pub async fn update(&self, name: &str, predicate: &str, assignments: &[(String, String)]) -> Result<RowChange> {
        let table = self.latest(name).await?.table;
        let mut builder =
            table.update().with_predicate(predicate.to_string()).with_writer_properties(self.layout.writer_properties());
        for (column, expr) in assignments {
            builder = builder.with_update(column.as_str(), expr.to_string());
        }
        let (table, metrics) = builder.await.map_err(|e| self.classify(e, "update", name))?;
        let change = RowChange { version: version_of(&table), rows: metrics.num_updated_rows as u64 };
        self.remember(name, table);
        self.mirror(name).await;
        Ok(change)
    }

    pub async fn delete(&self, name: &str, predicate: &str) -> Result<RowChange> {
        let table = self.latest(name).await?.table;
        let (table, metrics) =
            table
                .delete()
                .with_predicate(predicate.to_string())
                .with_writer_properties(self.layout.writer_properties())
                .await
                .map_err(|e| self.classify(e, "delete", name))?;
        let change =
            RowChange { version: version_of(&table), rows: metrics.num_deleted_rows.unwrap_or(0) as u64 };
        self.remember(name, table);
        self.mirror(name).await;
        Ok(change)
    }

    // ------------------------------------------------------------------ internals

    async fn load_primary_or_new(&self, name: &str) -> Result<DeltaTable> {
        if let Some(t) = self.latest.lock().expect("table cache").get(name) {
            return Ok(t.clone());
        }
        // delta-rs wants the directory of a new table to exist.
        if let Err(e) = std::fs::create_dir_all(self.primary.root.join(name)) {
            let rec = self.errors.record(&self.primary.name, "write", name, &e.to_string());
            return Err(LakehouseError::BucketUnavailable { bucket: rec.bucket, operation: rec.operation, reason: rec.error });
        }
        DeltaTable::try_from_url(self.primary.table_url(name)).await.map_err(|e| self.classify(e, "open", name))
    }

    async fn read_with_rescue<F, Fut>(&self, name: &str, load: F) -> Result<OpenTable>
    where
        F: Fn(DeltaTable) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<DeltaTable, DeltaTableError>>,
    {
        let primary_err = match self.load_from(&self.primary, name, &load).await {
            Ok(table) => return Ok(OpenTable { table, rescue_used: false }),
            Err(e) => e,
        };
        if let DeltaTableError::InvalidVersion(_) | DeltaTableError::InvalidDateTimeString { .. } = primary_err {
            return Err(LakehouseError::NotFound(format!("{name}: {primary_err}")));
        }
        let Some(rescue) = &self.rescue else {
            return Err(self.not_found_or_unavailable(primary_err, name));
        };
        match self.load_from(rescue, name, &load).await {
            Ok(table) => {
                self.errors.record("primary", "read", name, &format!("{primary_err}; served from rescue"));
                Ok(OpenTable { table, rescue_used: true })
            }
            Err(_) => Err(self.not_found_or_unavailable(primary_err, name)),
        }
    }

    async fn load_from<F, Fut>(&self, bucket: &Bucket, name: &str, load: &F) -> std::result::Result<DeltaTable, DeltaTableError>
    where
        F: Fn(DeltaTable) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<DeltaTable, DeltaTableError>>,
    {
        let table = deltalake::DeltaTableBuilder::from_url(bucket.table_url(name))?.build()?;
        load(table).await
    }

    fn not_found_or_unavailable(&self, e: DeltaTableError, name: &str) -> LakehouseError {
        match e {
            DeltaTableError::NotATable(_) => LakehouseError::NotFound(format!("table '{name}' does not exist in storage")),
            other => self.classify(other, "read", name),
        }
    }

    fn remember(&self, name: &str, table: DeltaTable) {
        self.latest.lock().expect("table cache").insert(name.to_string(), table);
    }

    /// Copy files the rescue bucket lacks. Best effort: the primary commit already
    /// succeeded, so a mirror failure is journaled, not raised.
    async fn mirror(&self, name: &str) {
        let Some(rescue) = &self.rescue else { return };
        if let Err(e) = copy_missing(&self.primary, rescue, name).await {
            self.errors.record(&rescue.name, "mirror", name, &e.to_string());
        }
    }

    /// Map a Delta error to our error enum; bucket failures are journaled here, once.
    fn classify(&self, e: DeltaTableError, operation: &str, name: &str) -> LakehouseError {
        match &e {
            DeltaTableError::ObjectStore { .. } | DeltaTableError::Io { .. } | DeltaTableError::InvalidTableLocation(_) => {
                let rec = self.errors.record(&self.primary.name, operation, name, &e.to_string());
                LakehouseError::BucketUnavailable { bucket: rec.bucket, operation: rec.operation, reason: rec.error }
            }
            DeltaTableError::Arrow { .. } | DeltaTableError::SchemaMismatch { .. } | DeltaTableError::InvalidData { .. } => {
                LakehouseError::InvalidInput(format!("{operation} {name}: {e}"))
            }
            DeltaTableError::NotATable(_) => LakehouseError::NotFound(format!("table '{name}' does not exist in storage")),
            _ if e.to_string().contains("No such file") || e.to_string().contains("Not a directory") => {
                let rec = self.errors.record(&self.primary.name, operation, name, &e.to_string());
                LakehouseError::BucketUnavailable { bucket: rec.bucket, operation: rec.operation, reason: rec.error }
            }
            _ => LakehouseError::Internal(format!("{operation} {name}: {e}")),
        }
    }
}

/// Table version as the signed integer the rest of the system uses (0 for a new table).
pub fn version_of(table: &DeltaTable) -> i64 {
    table.version().map_or(0, |v| v as i64)
}

fn file_set(table: &DeltaTable) -> HashSet<String> {
    match table.snapshot() {
        Ok(state) => state.log_data().iter().map(|f| f.path().to_string()).collect(),
        Err(_) => HashSet::new(),
    }
}

fn table_info(table: &DeltaTable) -> Result<TableInfo> {
    let state = table.snapshot().map_err(LakehouseError::internal)?;
    let (mut rows, mut size, mut files) = (0u64, 0u64, 0usize);
    for f in state.log_data().iter() {
        rows += f.num_records().unwrap_or(0) as u64;
        size += f.size().max(0) as u64;
        files += 1;
    }
    let schema = state.snapshot().arrow_schema();
    Ok(TableInfo { version: version_of(&table), num_rows: rows, num_files: files, size_bytes: size, schema })
}

async fn copy_missing(from: &Bucket, to: &Bucket, table: &str) -> object_store::Result<()> {
    let prefix = ObjectPath::from(table);
    let have: HashSet<ObjectPath> = to.store().list(Some(&prefix)).map_ok(|m| m.location).try_collect().await?;
    let src = from.store();
    let mut listing = src.list(Some(&prefix));
    let mut pending = Vec::new();
    while let Some(meta) = listing.next().await {
        let meta = meta?;
        if !have.contains(&meta.location) {
            pending.push(meta.location);
        }
    }
    // Data files before log entries: a mirrored commit never points at a missing file.
    pending.sort_by_key(|p| p.as_ref().contains("_delta_log"));
    let dst = to.store();
    for path in pending {
        let bytes = src.get(&path).await?.bytes().await?;
        dst.put(&path, bytes.into()).await?;
    }
    Ok(())
}
