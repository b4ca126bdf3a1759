//! The hot cache: small tables that are read again and again are pinned in memory.
//!
//! A table is pinned once it has been read `min_hits` times at the same version and
//! is at most `max_table_bytes` on disk, as long as the total stays within
//! `budget_bytes`. Entries are keyed by (table, version): any write bumps the
//! version, so the caller invalidates and the next reads go to storage again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use lakehouse_shared::{LakehouseError, Result};
use serde::Serialize;

#[derive(Debug, Clone, Copy)]
pub struct HotCacheConfig {
    pub max_table_bytes: u64,
    pub budget_bytes: u64,
    pub min_hits: u32,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct CacheStats {
    pub pinned_tables: Vec<String>,
    pub pinned_bytes: u64,
    pub budget_bytes: u64,
}

/// A table held in memory at one version.
#[derive(Clone)]
pub struct Pinned {
    pub version: i64,
    pub bytes: u64,
    pub schema: SchemaRef,
    pub batches: Arc<[RecordBatch]>,
}

#[derive(Default)]
struct State {
    hits: HashMap<(String, i64), u32>,
    pinned: HashMap<String, Pinned>,
}

pub struct HotCache {
    config: HotCacheConfig,
    state: Mutex<State>,
}

impl HotCache {
    pub fn new(config: HotCacheConfig) -> Self {
        Self { config, state: Mutex::new(State::default()) }
    }

    /// Count one read; true when the table should now be loaded and pinned.
    pub fn should_pin(&self, name: &str, version: i64, size_on_disk: u64) -> bool {
        let mut s = self.state.lock().expect("cache");
        if s.pinned.get(name).is_some_and(|p| p.version == version) {
            return false;
        }
        let used: u64 = s.pinned.values().map(|p| p.bytes).sum();
        let hits = s.hits.entry((name.to_string(), version)).or_insert(0);
        *hits += 1;
        *hits >= self.config.min_hits
            && size_on_disk <= self.config.max_table_bytes
            && used + size_on_disk <= self.config.budget_bytes
    }

    /// Pin loaded batches; None if they turned out larger than the budget allows.
    pub fn pin(&self, name: &str, version: i64, schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<Option<Arc<dyn TableProvider>>> {
        let bytes: u64 = batches.iter().map(|b| b.get_array_memory_size() as u64).sum();
        let mut s = self.state.lock().expect("cache");
        let used: u64 = s.pinned.iter().filter(|(n, _)| n.as_str() != name).map(|(_, p)| p.bytes).sum();
        if used + bytes > self.config.budget_bytes {
            return Ok(None);
        }
        let kept: Arc<[RecordBatch]> = batches.clone().into();
        // One partition per batch group lets DataFusion scan the pinned table in parallel.
        let partitions = split_round_robin(batches, std::thread::available_parallelism().map_or(2, |n| n.get()));
        let table = MemTable::try_new(schema.clone(), partitions).map_err(|e| LakehouseError::Internal(e.to_string()))?;
        s.pinned.insert(name.to_string(), Pinned { version, bytes, schema, batches: kept });
        Ok(Some(Arc::new(table)))
    }

    /// The table's rows if it is pinned at `version`.
    pub fn pinned(&self, name: &str, version: i64) -> Option<Pinned> {
        let s = self.state.lock().expect("cache");
        s.pinned.get(name).filter(|p| p.version == version).cloned()
    }

    pub fn invalidate(&self, name: &str) {
        let mut s = self.state.lock().expect("cache");
        s.pinned.remove(name);
        s.hits.retain(|(n, _), _| n != name);
    }

    pub fn stats(&self) -> CacheStats {
        let s = self.state.lock().expect("cache");
        let mut pinned_tables: Vec<String> = s.pinned.keys().cloned().collect();
        pinned_tables.sort();
        CacheStats { pinned_tables, pinned_bytes: s.pinned.values().map(|p| p.bytes).sum(), budget_bytes: self.config.budget_bytes }
    }
}

fn split_round_robin(batches: Vec<RecordBatch>, parts: usize) -> Vec<Vec<RecordBatch>> {
    let parts = parts.max(1);
    let mut out: Vec<Vec<RecordBatch>> = (0..parts).map(|_| Vec::new()).collect();
    for (i, b) in batches.into_iter().enumerate() {
        out[i % parts].push(b);
    }
    out.retain(|p| !p.is_empty());
    if out.is_empty() {
        out.push(Vec::new());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(min_hits: u32) -> HotCache {
        HotCache::new(HotCacheConfig { max_table_bytes: 1000, budget_bytes: 1500, min_hits })
    }

    #[test]
    fn pins_after_enough_hits_and_only_small_tables() {
        let c = cache(2);
        assert!(!c.should_pin("t", 1, 100));
        assert!(c.should_pin("t", 1, 100));
        assert!(!c.should_pin("big", 1, 5000));
        assert!(!c.should_pin("big", 1, 5000));
    }

    #[test]
    fn a_new_version_starts_counting_again() {
        let c = cache(2);
        c.should_pin("t", 1, 100);
        assert!(!c.should_pin("t", 2, 100));
        c.invalidate("t");
        assert!(!c.should_pin("t", 2, 100));
        assert!(c.should_pin("t", 2, 100));
    }
}
