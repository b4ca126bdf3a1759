//! A graph's vectors copied once into one contiguous matrix, for the planner's exact scans.
//!
//! usearch hands out a stored vector one key at a time (`get`: a hash lookup under a lock,
//! then a copy). On a 500K-vector index that costs ~0.9 µs per key, and a broad hybrid filter
//! (38K candidates) spent 36 ms there, the slowest stage of the search. Here the candidates
//! become row numbers instead; sorted, they are read in memory order and scored by the SIMD
//! kernel on every core (`crate::score_rows`).
//!
//! A store is gathered once per graph file and shared by every open version that searches
//! that file (a small refresh writes a segment over the same graph, so versions share it),
//! through a process-wide table of weak references: the memory goes when the last version
//! using it is dropped. ADR-024 weighs the memory against the speed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

use lakehouse_shared::{LakehouseError, Result};

use crate::hnsw::HnswIndex;

pub struct RowStore {
    dim: usize,
    keys: Vec<u64>,
    /// Row-major, unit length (as the graph stores them).
    matrix: Vec<f32>,
    row_of: HashMap<u64, u32, foldhash::fast::RandomState>,
}

impl RowStore {
    /// Copy the vectors of `keys` out of `graph` on `threads` threads. Keys the graph does
    /// not hold are skipped; a key listed twice is stored once.
    pub fn gather(graph: &HnswIndex, keys: &[u64], threads: usize) -> Self {
        let mut wanted = keys.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let dim = graph.dim();
        let part = wanted.len().div_ceil(threads.max(1)).max(1);
        let parts: Vec<(Vec<u64>, Vec<f32>)> = std::thread::scope(|scope| {
            let workers: Vec<_> = wanted.chunks(part).map(|keys| scope.spawn(move || copy_rows(graph, keys))).collect();
            workers.into_iter().map(|w| w.join().expect("row gather thread panicked")).collect()
        });
        let rows: usize = parts.iter().map(|(keys, _)| keys.len()).sum();
        let (mut keys, mut matrix) = (Vec::with_capacity(rows), Vec::with_capacity(rows * dim));
        for (part_keys, part_rows) in parts {
            keys.extend(part_keys);
            matrix.extend(part_rows);
        }
        let mut row_of = HashMap::with_capacity_and_hasher(keys.len(), foldhash::fast::RandomState::default());
        row_of.extend(keys.iter().enumerate().map(|(row, &key)| (key, row as u32)));
        Self { dim, keys, matrix, row_of }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn vector(&self, key: u64) -> Option<&[f32]> {
        self.row_of.get(&key).map(|&row| &self.matrix[row as usize * self.dim..(row as usize + 1) * self.dim])
    }

    /// Exact top-`k` of `candidates` held here, best first, ties by key. Candidates not held
    /// here are pushed to `elsewhere` for the caller to score.
    pub fn exact_among(&self, query: &[f32], k: usize, candidates: impl Iterator<Item = u64>, elsewhere: &mut Vec<u64>) -> Vec<(u64, f32)> {
        let mut rows = Vec::with_capacity(candidates.size_hint().0);
        for key in candidates {
            match self.row_of.get(&key) {
                Some(&row) => rows.push(row),
                None => elsewhere.push(key),
            }
        }
        // Memory order, so the prefetcher streams each row; and a key named twice counts once.
        rows.sort_unstable();
        rows.dedup();
        let scored = crate::score_rows(query, &self.matrix, self.dim, &rows);
        let mut hits: Vec<(u64, f32)> = scored.into_iter().map(|(row, score)| (self.keys[row as usize], score)).collect();
        best_first(&mut hits, k);
        hits
    }
}

fn copy_rows(graph: &HnswIndex, keys: &[u64]) -> (Vec<u64>, Vec<f32>) {
    let dim = graph.dim();
    let (mut held, mut matrix) = (Vec::with_capacity(keys.len()), vec![0f32; keys.len() * dim]);
    for &key in keys {
        let at = held.len() * dim;
        if graph.copy_vector(key, &mut matrix[at..at + dim]) {
            held.push(key);
        }
    }
    matrix.truncate(held.len() * dim);
    (held, matrix)
}

/// Keep the best `k` hits, sorted best first (ties by key, so answers never depend on order).
pub(crate) fn best_first(hits: &mut Vec<(u64, f32)>, k: usize) {
    let order = |a: &(u64, f32), b: &(u64, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if k == 0 {
        hits.clear();
        return;
    }
    if hits.len() > k {
        hits.select_nth_unstable_by(k - 1, order);
        hits.truncate(k);
    }
    hits.sort_unstable_by(order);
}

/// What identifies one saved graph file: a save writes a new file and renames it over the
/// old one, so a replaced file differs in inode or modification time.
#[derive(Clone, PartialEq, Eq)]
struct FileStamp {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|e| LakehouseError::Internal(format!("graph file {}: {e}", path.display())))?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        Ok(Self { path, len: meta.len(), modified: meta.modified().ok(), inode })
    }
}

static SHARED: Mutex<Vec<(FileStamp, Weak<RowStore>)>> = Mutex::new(Vec::new());

/// The store of the graph saved at `path`: the one another open version already gathered,
/// or a new one from `gather`. The table lock is held while gathering, so two versions of
/// one graph opened at once gather it once.
pub fn shared(path: &Path, gather: impl FnOnce() -> RowStore) -> Result<Arc<RowStore>> {
    let stamp = FileStamp::of(path)?;
    let mut table = SHARED.lock().expect("row store table");
    table.retain(|(_, store)| store.strong_count() > 0);
    if let Some(store) = table.iter().find(|(held, _)| *held == stamp).and_then(|(_, store)| store.upgrade()) {
        return Ok(store);
    }
    let store = Arc::new(gather());
    table.push((stamp, Arc::downgrade(&store)));
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hnsw::tests::unit_vectors;
    use crate::hnsw::HnswParams;
    use proptest::prelude::*;

    fn graph(n: usize, dim: usize, seed: u64) -> (HnswIndex, Vec<f32>) {
        let vectors = unit_vectors(n, dim, seed);
        let keys: Vec<u64> = (0..n as u64).map(|i| i * 3 + 1).collect();
        (HnswIndex::build(dim, HnswParams::default(), &keys, &vectors, 2).unwrap(), vectors)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// The store's exact scan ranks exactly as scoring every candidate by its vector in
        /// the graph would, whatever the candidate list holds: duplicates, keys the store
        /// lacks (returned to the caller), keys nowhere at all.
        #[test]
        fn exact_scan_over_rows_matches_scoring_each_candidate(
            seed in 0u64..500,
            k in 0usize..40,
            picks in prop::collection::vec(0u64..1200, 0..600),
        ) {
            let (dim, n) = (20, 300);
            let (index, _) = graph(n, dim, seed);
            // The store holds two thirds of the graph's keys; the rest must come back in `elsewhere`.
            let stored: Vec<u64> = (0..n as u64).filter(|i| i % 3 != 0).map(|i| i * 3 + 1).collect();
            let store = RowStore::gather(&index, &stored, 3);
            prop_assert_eq!(store.len(), stored.len());
            let query = &unit_vectors(1, dim, seed + 99)[..];
            let mut elsewhere = Vec::new();
            let hits = store.exact_among(query, k, picks.iter().copied(), &mut elsewhere);
            let mut expected: Vec<(u64, f32)> = picks.iter().copied()
                .filter(|key| stored.contains(key))
                .collect::<std::collections::BTreeSet<u64>>().into_iter()
                .map(|key| (key, crate::dot(query, &index.vector(key).unwrap())))
                .collect();
            best_first(&mut expected, k);
            prop_assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), expected.iter().map(|h| h.0).collect::<Vec<_>>());
            prop_assert!(hits.iter().zip(&expected).all(|(a, b)| (a.1 - b.1).abs() < 1e-5));
            prop_assert_eq!(elsewhere.len(), picks.iter().filter(|key| !stored.contains(key)).count());
        }
    }

    #[test]
    fn one_graph_file_is_gathered_once_while_any_version_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let (index, _) = graph(50, 8, 1);
        let path = dir.path().join("g.usearch");
        index.save(&path).unwrap();
        let gathers = std::cell::Cell::new(0);
        let gather = || {
            gathers.set(gathers.get() + 1);
            RowStore::gather(&index, &[1, 4, 7], 1)
        };
        let first = shared(&path, gather).unwrap();
        let second = shared(&path, gather).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(gathers.get(), 1);
        drop((first, second));
        let _third = shared(&path, gather).unwrap();
        assert_eq!(gathers.get(), 2, "dropped by every version: gathered again");
        index.save(&path).unwrap(); // a new file under the same name is another graph
        let _fourth = shared(&path, gather).unwrap();
        assert_eq!(gathers.get(), 3);
    }
}
