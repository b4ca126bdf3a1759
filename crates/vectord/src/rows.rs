//! A graph's vectors copied once into one contiguous matrix, for the planner's exact scans.
//!
//! usearch hands out a stored vector one key at a time (`get`: a hash lookup under a lock,
//! then a copy). On a 500K-vector index that costs ~0.9 µs per key, and a broad hybrid filter
//! (38K candidates) spent 36 ms there, the slowest stage of the search. Here the candidates
//! become row numbers instead; sorted, they are read in memory order and scored on every core.
//!
//! The copy is held in bfloat16: a scan of tens of thousands of rows is bound by memory
//! bandwidth, and half the bytes is half the time (and half the memory). The answer stays
//! exact: rounding moves a score by at most a known bound ([`RowStore::score_error`]), so
//! every row whose rounded score is within twice that bound of the k-th best is scored
//! again from the graph's own vector, and only those exact scores are returned (ADR-027).
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

/// Round to nearest moves a value by at most this fraction of itself in bfloat16
/// (8 significant bits: the unit roundoff 2⁻⁸).
const BF16_UNIT_ROUNDOFF: f32 = 1.0 / 256.0;
/// Headroom for the f32 sums of a dot product (384 terms: ~1e-6 for unit vectors).
const SUM_ERROR: f32 = 1e-5;

pub struct RowStore {
    dim: usize,
    keys: Vec<u64>,
    /// Row-major bfloat16 bits of the graph's vectors.
    matrix: Vec<u16>,
    /// The largest row norm (the graph stores unit vectors: ~1), for the error bound.
    max_norm: f32,
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
        let parts: Vec<(Vec<u64>, Vec<u16>, f32)> = std::thread::scope(|scope| {
            let workers: Vec<_> = wanted.chunks(part).map(|keys| scope.spawn(move || copy_rows(graph, keys))).collect();
            workers.into_iter().map(|w| w.join().expect("row gather thread panicked")).collect()
        });
        let rows: usize = parts.iter().map(|(keys, _, _)| keys.len()).sum();
        let (mut keys, mut matrix, mut max_norm) = (Vec::with_capacity(rows), Vec::with_capacity(rows * dim), 0f32);
        for (part_keys, part_rows, part_norm) in parts {
            keys.extend(part_keys);
            matrix.extend(part_rows);
            max_norm = max_norm.max(part_norm);
        }
        let mut row_of = HashMap::with_capacity_and_hasher(keys.len(), foldhash::fast::RandomState::default());
        row_of.extend(keys.iter().enumerate().map(|(row, &key)| (key, row as u32)));
        Self { dim, keys, matrix, max_norm, row_of }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The most a rounded score can differ from the exact one for this query: with each
    /// element moved by at most 2⁻⁸ of itself, ‖x − x̃‖ ≤ 2⁻⁸‖x‖, so by Cauchy–Schwarz
    /// |q·x − q·x̃| ≤ 2⁻⁸‖q‖‖x‖ (plus the sums' own rounding).
    pub fn score_error(&self, query: &[f32]) -> f32 {
        let query_norm = crate::dot(query, query).sqrt();
        (BF16_UNIT_ROUNDOFF + SUM_ERROR) * query_norm * self.max_norm.max(1.0)
    }

    /// Exact top-`k` of `candidates` held here, best first, ties by key. `exact(key)` is the
    /// exact score of a held key (from the graph). Candidates not held here are pushed to
    /// `elsewhere` for the caller to score.
    pub fn exact_among(
        &self,
        query: &[f32],
        k: usize,
        candidates: impl Iterator<Item = u64>,
        elsewhere: &mut Vec<u64>,
        mut exact: impl FnMut(u64) -> Option<f32>,
    ) -> Vec<(u64, f32)> {
        let mut rows = Vec::with_capacity(candidates.size_hint().0);
        for key in candidates {
            match self.row_of.get(&key) {
                Some(&row) => rows.push(row),
                None => elsewhere.push(key),
            }
        }
        if k == 0 {
            return Vec::new();
        }
        // Memory order, so the prefetcher streams each row; and a key named twice counts once.
        rows.sort_unstable();
        rows.dedup();
        let rounded = crate::score_in_parts(&rows, |part| score_bf16_serial(query, &self.matrix, self.dim, part));
        let mut hits: Vec<(u64, f32)> = could_rank(rounded, k, self.score_error(query))
            .filter_map(|row| {
                let key = self.keys[row as usize];
                exact(key).map(|score| (key, score))
            })
            .collect();
        best_first(&mut hits, k);
        hits
    }
}

/// The rows that may be in the exact top `k`, given scores each off by at most `error`.
/// The k best rounded scores are each at least the k-th, `kth`, so the exact k-th best is at
/// least `kth − error`; a row whose exact score reaches that has a rounded one of at least
/// `kth − 2·error`. Every other row is beaten by k rows whatever the rounding did.
fn could_rank(mut rounded: Vec<(u32, f32)>, k: usize, error: f32) -> impl Iterator<Item = u32> {
    if rounded.len() > k {
        let by_score = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1);
        let (_, kth, _) = rounded.select_nth_unstable_by(k - 1, by_score);
        let floor = kth.1 - 2.0 * error;
        rounded.retain(|&(_, score)| score >= floor);
    }
    rounded.into_iter().map(|(row, _)| row)
}

simd_dispatch!(fn score_bf16_serial(query: &[f32], matrix: &[u16], dim: usize, rows: &[u32]) -> Vec<(u32, f32)> => score_bf16_portable);

#[inline(always)]
fn score_bf16_portable(query: &[f32], matrix: &[u16], dim: usize, rows: &[u32]) -> Vec<(u32, f32)> {
    crate::score_rows_widening(query, matrix, dim, rows, widen_bf16)
}

/// bfloat16 bits are the top half of an f32: widening is a shift.
#[inline(always)]
fn widen_bf16(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// (held keys, their rows as bfloat16 bits, the largest row norm).
fn copy_rows(graph: &HnswIndex, keys: &[u64]) -> (Vec<u64>, Vec<u16>, f32) {
    let dim = graph.dim();
    let (mut held, mut matrix, mut max_norm) = (Vec::with_capacity(keys.len()), Vec::with_capacity(keys.len() * dim), 0f32);
    let mut row = vec![0f32; dim];
    for &key in keys {
        if graph.copy_vector(key, &mut row) {
            held.push(key);
            matrix.extend(row.iter().map(|&x| half::bf16::from_f32(x).to_bits()));
            max_norm = max_norm.max(crate::dot(&row, &row).sqrt());
        }
    }
    (held, matrix, max_norm)
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

/// Values built once per saved graph file and shared by every open version searching that
/// file, held weakly: a value goes when the last version using it is dropped.
pub(crate) struct PerFile<T>(Mutex<Vec<(FileStamp, Weak<T>)>>);

impl<T> PerFile<T> {
    pub(crate) const fn new() -> Self {
        Self(Mutex::new(Vec::new()))
    }

    /// The value for the graph saved at `path`: the one another open version already
    /// built, or a new one from `build` (None: nothing to share, and the next version asks
    /// again). The table lock is held while building, so two versions of one graph opened
    /// at once build it once.
    pub(crate) fn get_or_build(&self, path: &Path, build: impl FnOnce() -> Option<T>) -> Result<Option<Arc<T>>> {
        let stamp = FileStamp::of(path)?;
        let mut table = self.0.lock().expect("per-file table");
        table.retain(|(_, value)| value.strong_count() > 0);
        if let Some(value) = table.iter().find(|(held, _)| *held == stamp).and_then(|(_, value)| value.upgrade()) {
            return Ok(Some(value));
        }
        let Some(value) = build().map(Arc::new) else { return Ok(None) };
        table.push((stamp, Arc::downgrade(&value)));
        Ok(Some(value))
    }
}

static STORES: PerFile<RowStore> = PerFile::new();

/// The row store of the graph saved at `path` (see [`PerFile::get_or_build`]).
pub fn shared(path: &Path, gather: impl FnOnce() -> RowStore) -> Result<Arc<RowStore>> {
    Ok(STORES.get_or_build(path, || Some(gather()))?.expect("a gathered store"))
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
            let hits = store.exact_among(query, k, picks.iter().copied(), &mut elsewhere, exact_from(&index, query));
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

    fn exact_from<'a>(index: &'a HnswIndex, query: &'a [f32]) -> impl Fn(u64) -> Option<f32> + 'a {
        move |key| index.vector(key).map(|row| crate::dot(query, &row))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Rows that differ from one another by less than bfloat16 can tell apart (a cluster
        /// of near-duplicate profiles) still come back in their exact order with their exact
        /// scores: the rounded scan only shortlists, the graph's vectors decide.
        #[test]
        fn near_ties_keep_their_exact_order_despite_rounded_rows(seed in 0u64..500, k in 1usize..30, spread in 1e-5f32..3e-3) {
            let (dim, n) = (64, 400);
            let centre = unit_vectors(1, dim, seed);
            let noise = unit_vectors(n, dim, seed + 1);
            let mut vectors = Vec::with_capacity(n * dim);
            for row in noise.chunks(dim) {
                let mut v: Vec<f32> = centre.iter().zip(row).map(|(c, e)| c + spread * e).collect();
                crate::normalize(&mut v);
                vectors.extend(v);
            }
            let keys: Vec<u64> = (0..n as u64).collect();
            let index = HnswIndex::build(dim, HnswParams::default(), &keys, &vectors, 2).unwrap();
            let store = RowStore::gather(&index, &keys, 2);
            let query: Vec<f32> = {
                let mut q: Vec<f32> = centre.iter().zip(unit_vectors(1, dim, seed + 2)).map(|(c, e)| c + 0.01 * e).collect();
                crate::normalize(&mut q);
                q
            };
            let hits = store.exact_among(&query, k, keys.iter().copied(), &mut Vec::new(), exact_from(&index, &query));
            let mut expected: Vec<(u64, f32)> = keys.iter().map(|&key| (key, crate::dot(&query, &index.vector(key).unwrap()))).collect();
            best_first(&mut expected, k);
            prop_assert_eq!(hits, expected);
        }
    }

    #[test]
    fn rounded_scores_stay_within_the_stated_error() {
        let (index, _) = graph(200, 384, 7);
        let keys: Vec<u64> = (0..200u64).map(|i| i * 3 + 1).collect();
        let store = RowStore::gather(&index, &keys, 2);
        let query = unit_vectors(1, 384, 8);
        let error = store.score_error(&query);
        let rows: Vec<u32> = (0..200).collect();
        for (row, rounded) in score_bf16_serial(&query, &store.matrix, 384, &rows) {
            let exact = crate::dot(&query, &index.vector(store.keys[row as usize]).unwrap());
            assert!((exact - rounded).abs() <= error, "row {row}: {exact} vs {rounded} (bound {error})");
        }
        assert!(error < 0.005, "the bound is what bfloat16 promises, not a loose guess: {error}");
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
