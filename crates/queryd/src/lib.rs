//! SQL over the catalog: a DataFusion session in which every live dataset is a table.
//!
//! - Datasets are Delta tables read through delta-rs' table provider; after a write
//!   the caller `refresh`es the dataset and the next query sees the new version.
//! - [`guard`] keeps the surface read-only.
//! - [`cache`] pins small, frequently read tables in memory, keyed by table version
//!   so a write can never serve stale rows.
//! - Time travel: `sql_as_of` runs a query with one dataset read at an older version
//!   or point in time; `sql_appended_since` with one dataset narrowed to the rows
//!   appended after a version.
//! - [`lookup`]: rows by key (a search's "details of these ten workers") through a hash
//!   index over pinned tables, instead of a scan per call.

pub mod cache;
pub mod guard;
pub mod lookup;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use chrono::{DateTime, Utc};
use datafusion::catalog::TableProvider;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use lakehouse_shared::{LakehouseError, Result};
use lakehouse_storaged::TableStore;
use lakehouse_storaged::tables::OpenTable;

pub use cache::{CacheStats, HotCacheConfig};
use lookup::KeyIndex;

/// One query's answer: schema plus batches (zero-copy into Python).
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub rescue_used: bool,
}

#[derive(Clone)]
struct Registered {
    version: i64,
    size_bytes: u64,
    rescue_used: bool,
    provider: Arc<dyn TableProvider>,
}

pub struct QueryEngine {
    store: Arc<TableStore>,
    ctx: SessionContext,
    tables: Mutex<HashMap<String, Registered>>,
    cache: cache::HotCache,
    /// (dataset, indexed column names joined by U+001F) -> (table version, its index)
    key_indexes: Mutex<HashMap<(String, String), (i64, Arc<KeyIndex>)>>,
    last_rescue_used: AtomicBool,
}

impl QueryEngine {
    pub fn new(store: Arc<TableStore>, cache: HotCacheConfig, target_partitions: usize) -> Self {
        Self {
            store,
            ctx: new_context(target_partitions),
            tables: Mutex::new(HashMap::new()),
            cache: cache::HotCache::new(cache),
            key_indexes: Mutex::new(HashMap::new()),
            last_rescue_used: AtomicBool::new(false),
        }
    }

    /// Make exactly `live` queryable: register new datasets, drop the others.
    pub async fn sync(&self, live: &[String]) -> Result<()> {
        let current: Vec<String> = self.tables.lock().expect("tables").keys().cloned().collect();
        for name in current.iter().filter(|n| !live.contains(n)) {
            self.deregister(name)?;
        }
        for name in live.iter().filter(|n| !current.contains(n)) {
            self.refresh(name).await?;
        }
        Ok(())
    }

    /// Re-read a dataset's latest version (after a write).
    pub async fn refresh(&self, name: &str) -> Result<()> {
        let open = self.store.latest(name).await?;
        let registered = registered_from(&self.ctx, open).await?;
        self.forget_cached(name);
        self.ctx.deregister_table(quoted(name)).map_err(df_err)?;
        self.ctx.register_table(quoted(name), registered.provider.clone()).map_err(df_err)?;
        self.tables.lock().expect("tables").insert(name.to_string(), registered);
        Ok(())
    }

    pub fn deregister(&self, name: &str) -> Result<()> {
        self.forget_cached(name);
        self.ctx.deregister_table(quoted(name)).map_err(df_err)?;
        self.tables.lock().expect("tables").remove(name);
        Ok(())
    }

    /// Run one read-only query.
    pub async fn sql(&self, sql: &str) -> Result<QueryResult> {
        let referenced = guard::check_read_only(sql)?;
        self.promote_hot_tables(&referenced).await?;
        let rescue_used = self.any_rescued(&referenced);
        let result = run(&self.ctx, sql, rescue_used).await;
        self.last_rescue_used.store(rescue_used, Ordering::Relaxed);
        result
    }

    /// Run `sql` with `dataset` read at `version` or as of `at`.
    pub async fn sql_as_of(&self, sql: &str, dataset: &str, version: Option<i64>, at: Option<DateTime<Utc>>) -> Result<QueryResult> {
        let referenced = guard::check_read_only(sql)?;
        let open = match (version, at) {
            (Some(v), _) => self.store.at_version(dataset, v).await?,
            (None, Some(t)) => self.store.at_timestamp(dataset, t).await?,
            (None, None) => return Err(LakehouseError::invalid("time travel needs a version or a timestamp")),
        };
        let ctx = new_context(self.ctx.state().config().target_partitions());
        let historic = registered_from(&ctx, open).await?;
        let tables = self.tables.lock().expect("tables").clone();
        for (name, reg) in tables.iter().filter(|(n, _)| n.as_str() != dataset) {
            ctx.register_table(quoted(name), reg.provider.clone()).map_err(df_err)?;
        }
        ctx.register_table(quoted(dataset), historic.provider.clone()).map_err(df_err)?;
        let rescue_used = historic.rescue_used || self.any_rescued(&referenced);
        self.last_rescue_used.store(rescue_used, Ordering::Relaxed);
        run(&ctx, sql, rescue_used).await
    }

    /// Run `sql` with `dataset` narrowed to the rows appended since its `version` (the
    /// files later commits added). `None` when a later commit removed or rewrote files:
    /// then the caller must read everything. A vector refresh reads only what it must
    /// embed this way, instead of the whole dataset.
    pub async fn sql_appended_since(&self, sql: &str, dataset: &str, version: i64) -> Result<Option<QueryResult>> {
        let referenced = guard::check_read_only(sql)?;
        let Some(added) = self.store.appended_since(dataset, version).await? else { return Ok(None) };
        let open = self.store.latest(dataset).await?;
        let ctx = new_context(self.ctx.state().config().target_partitions());
        open.table.update_datafusion_session(&ctx.state()).map_err(df_err)?;
        let appended = open
            .table
            .table_provider()
            .with_session(Arc::new(ctx.state()))
            .with_file_paths(added)
            .await
            .map_err(df_err)?;
        let tables = self.tables.lock().expect("tables").clone();
        for (name, reg) in tables.iter().filter(|(n, _)| n.as_str() != dataset) {
            ctx.register_table(quoted(name), reg.provider.clone()).map_err(df_err)?;
        }
        ctx.register_table(quoted(dataset), appended).map_err(df_err)?;
        let rescue_used = open.rescue_used || self.any_rescued(&referenced);
        self.last_rescue_used.store(rescue_used, Ordering::Relaxed);
        run(&ctx, sql, rescue_used).await.map(Some)
    }

    /// The rows of `dataset` whose `key_column`, compared as text (`CAST(key AS
    /// VARCHAR)`), is one of `keys`: grouped in the order the keys are given, with only
    /// `columns` (every column when empty). A pinned table answers from its key index;
    /// any other is filtered by DataFusion and the rows put in the same order.
    ///
    /// `equal` narrows the rows further: each (text column, values) pair keeps the rows
    /// whose value there is one of those (see [`KeyIndex::take`]).
    pub async fn lookup(&self, dataset: &str, key_column: &str, keys: &[String], columns: &[String], equal: &[(String, Vec<String>)]) -> Result<QueryResult> {
        let reg = self
            .tables
            .lock()
            .expect("tables")
            .get(dataset)
            .cloned()
            .ok_or_else(|| LakehouseError::NotFound(format!("dataset {dataset:?} not found")))?;
        self.promote_hot_tables(&BTreeSet::from([dataset.to_string()])).await?;
        let wanted: Vec<&str> = keys.iter().map(String::as_str).collect();
        let found = match self.cache.pinned(dataset, reg.version) {
            Some(pinned) => {
                let indexed = lookup::index_columns(&pinned.schema, key_column, keys.len(), equal);
                self.key_index(dataset, &indexed, &pinned)?.take(&pinned.schema, &wanted, columns, equal)?
            }
            None => {
                let (schema, batches) = self.rows_with_keys(&reg, key_column, keys, columns, equal).await?;
                KeyIndex::build(batches.into(), &schema, &[key_column])?.take(&schema, &wanted, columns, equal)?
            }
        };
        self.last_rescue_used.store(reg.rescue_used, Ordering::Relaxed);
        let (schema, batches) = lakehouse_shared::arrow_helpers::plain_encodings(&found.schema(), vec![found])?;
        Ok(QueryResult { schema, batches, rescue_used: reg.rescue_used })
    }

    /// The index of a pinned table over `columns` (one, or a compound key), built on
    /// first use at each version.
    fn key_index(&self, dataset: &str, columns: &[String], pinned: &cache::Pinned) -> Result<Arc<KeyIndex>> {
        let slot = (dataset.to_string(), columns.join("\u{1f}"));
        if let Some((version, index)) = self.key_indexes.lock().expect("key indexes").get(&slot) {
            if *version == pinned.version {
                return Ok(index.clone());
            }
        }
        // Built outside the lock (~100 ms at 500K rows); two first lookups may both build.
        let names: Vec<&str> = columns.iter().map(String::as_str).collect();
        let index = Arc::new(KeyIndex::build(pinned.batches.clone(), &pinned.schema, &names)?);
        self.key_indexes.lock().expect("key indexes").insert(slot, (pinned.version, index.clone()));
        Ok(index)
    }

    /// `SELECT key_column, columns... WHERE CAST(key_column AS VARCHAR) IN (keys)`.
    async fn rows_with_keys(&self, reg: &Registered, key_column: &str, keys: &[String], columns: &[String], equal: &[(String, Vec<String>)]) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        use datafusion::prelude::{cast, ident, lit};
        let schema = reg.provider.schema();
        let mut selected = vec![key_column.to_string()];
        // `take` tests the `equal` columns on these rows, so they are read too (an empty
        // `columns` already means every column)
        let mut asked = columns.to_vec();
        if !columns.is_empty() {
            asked.extend(equal.iter().map(|(c, _)| c.clone()));
        }
        for c in lookup::projection(&schema, &asked)? {
            let name = schema.field(c).name();
            if !selected.contains(name) {
                selected.push(name.clone());
            }
        }
        let positions = lookup::projection(&schema, &selected)?; // names a missing key column clearly
        if keys.is_empty() {
            return Ok((Arc::new(schema.project(&positions)?), Vec::new()));
        }
        let matches = cast(ident(key_column), arrow::datatypes::DataType::Utf8).in_list(keys.iter().map(|k| lit(k.as_str())).collect(), false);
        let frame = self
            .ctx
            .read_table(reg.provider.clone())
            .and_then(|f| f.filter(matches))
            .and_then(|f| f.select(selected.iter().map(|c| ident(c)).collect::<Vec<_>>()))
            .map_err(df_err)?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let batches = frame.collect().await.map_err(df_err)?;
        Ok((schema, batches))
    }

    fn forget_cached(&self, name: &str) {
        self.cache.invalidate(name);
        self.key_indexes.lock().expect("key indexes").retain(|(table, _), _| table != name);
    }

    pub fn last_rescue_used(&self) -> bool {
        self.last_rescue_used.load(Ordering::Relaxed)
    }

    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    fn any_rescued(&self, names: &BTreeSet<String>) -> bool {
        let tables = self.tables.lock().expect("tables");
        names.iter().any(|n| tables.get(n).is_some_and(|r| r.rescue_used))
    }

    /// Count a read of each referenced table; pin the ones that earned it.
    async fn promote_hot_tables(&self, names: &BTreeSet<String>) -> Result<()> {
        for name in names {
            let Some(reg) = self.tables.lock().expect("tables").get(name).cloned() else { continue };
            if !self.cache.should_pin(name, reg.version, reg.size_bytes) {
                continue;
            }
            let batches = scan_all(&self.ctx, reg.provider.clone()).await?;
            if let Some(mem) = self.cache.pin(name, reg.version, reg.provider.schema(), batches)? {
                self.ctx.deregister_table(quoted(name)).map_err(df_err)?;
                self.ctx.register_table(quoted(name), mem).map_err(df_err)?;
            }
        }
        Ok(())
    }
}

fn new_context(target_partitions: usize) -> SessionContext {
    let mut config = SessionConfig::new().with_information_schema(false);
    if target_partitions > 0 {
        config = config.with_target_partitions(target_partitions);
    }
    // Evaluate filters while decoding Parquet (late materialisation): recruiter filters
    // are selective, so most rows never have their other columns decoded.
    config.options_mut().execution.parquet.pushdown_filters = true;
    config.options_mut().execution.parquet.reorder_filters = true;
    let state = SessionStateBuilder::new().with_config(config).with_default_features().build();
    SessionContext::new_with_state(state)
}

async fn registered_from(ctx: &SessionContext, open: OpenTable) -> Result<Registered> {
    // Make sure the session can reach the bucket the table was read from (primary or rescue).
    open.table.update_datafusion_session(&ctx.state()).map_err(df_err)?;
    let version = lakehouse_storaged::tables::version_of(&open.table);
    let size_bytes = open
        .table
        .snapshot()
        .map(|s| s.log_data().iter().map(|f| f.size().max(0) as u64).sum())
        .unwrap_or(0);
    // Seed the scan from our session so it inherits our Parquet settings (pushdown, views).
    let provider = open.table.table_provider().with_session(Arc::new(ctx.state())).await.map_err(df_err)?;
    Ok(Registered { version, size_bytes, rescue_used: open.rescue_used, provider })
}

async fn run(ctx: &SessionContext, sql: &str, rescue_used: bool) -> Result<QueryResult> {
    let options = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
    let frame = ctx.sql_with_options(sql, options).await.map_err(plan_err)?;
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await.map_err(df_err)?;
    let (schema, batches) = lakehouse_shared::arrow_helpers::plain_encodings(&schema, batches)?;
    Ok(QueryResult { schema, batches, rescue_used })
}

async fn scan_all(ctx: &SessionContext, provider: Arc<dyn TableProvider>) -> Result<Vec<RecordBatch>> {
    ctx.read_table(provider).map_err(df_err)?.collect().await.map_err(df_err)
}

/// DataFusion lower-cases unquoted identifiers; quoting keeps dataset names exact.
fn quoted(name: &str) -> datafusion::common::TableReference {
    datafusion::common::TableReference::bare(name)
}

fn df_err(e: impl std::fmt::Display) -> LakehouseError {
    LakehouseError::Internal(format!("query engine: {e}"))
}

/// Planning errors are the user's (unknown table, bad column): 4xx, not 5xx.
fn plan_err(e: datafusion::error::DataFusionError) -> LakehouseError {
    use datafusion::error::DataFusionError as E;
    match e.find_root() {
        E::Plan(m) if m.contains("table") && m.contains("not found") => LakehouseError::NotFound(e.to_string()),
        E::Plan(_) | E::SchemaError(..) | E::SQL(..) | E::NotImplemented(_) => LakehouseError::InvalidInput(e.to_string()),
        _ => df_err(e),
    }
}
