//! One HNSW index version on usearch: cosine metric, keys are the 63-bit chunk keys the
//! Python side derives from chunk ids. Built in parallel, saved as one file, reopened
//! either loaded into memory (appendable) or memory-mapped (read-only, instant).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use lakehouse_shared::{LakehouseError, Result};
use serde::{Deserialize, Serialize};
use usearch::ffi::{IndexOptions, MetricKind, ScalarKind};
use usearch::{Index, VectorType};

use crate::graph::GraphCopy;
use crate::rows::{self, PerFile, RowStore};
use crate::segment::Segment;

/// How vectors are stored inside the graph. f16 and bf16 halve memory, i8 quarters it;
/// the recall each costs is measured in `bench/` and written down in BENCHMARKS.md.
/// bf16 keeps f32's exponent (no overflow, 8 significant bits) and, on CPUs with
/// AVX512-BF16, its distance is one `vdpbf16ps` per 32 dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Quantization {
    #[default]
    F32,
    F16,
    Bf16,
    I8,
}

impl Quantization {
    fn scalar_kind(self) -> ScalarKind {
        match self {
            Self::F32 => ScalarKind::F32,
            Self::F16 => ScalarKind::F16,
            Self::Bf16 => ScalarKind::BF16,
            Self::I8 => ScalarKind::I8,
        }
    }

    /// Vectors are stored unit length, so cosine is the inner product: one multiply-add
    /// per dimension instead of the three (dot and both norms) usearch's cosine kernel
    /// spends. Measured: the build and every search get cheaper, most at 768-d. The i8
    /// kernel keeps cosine, whose normalisation absorbs the quantisation scale.
    fn metric(self) -> MetricKind {
        match self {
            Self::F32 | Self::F16 | Self::Bf16 => MetricKind::IP,
            Self::I8 => MetricKind::Cos,
        }
    }
}

/// The knobs autotune turns. Defaults are usearch's own (M 16, ef 128/64).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HnswParams {
    /// `M`: graph edges per node.
    pub connectivity: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
    pub quantization: Quantization,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self { connectivity: 16, ef_construction: 128, ef_search: 64, quantization: Quantization::F32 }
    }
}

/// How many searches may run on one index at once. usearch keeps one scratch context
/// per concurrent search and *fails* a search when none is free, so we reserve this
/// many and make any caller beyond them wait for a slot instead.
pub const SEARCH_SLOTS: usize = 32;

pub struct HnswIndex {
    /// Shared with the thread that gathers the graph copy (see [`HnswIndex::attach_rows`]).
    index: Arc<Index>,
    dim: usize,
    params: HnswParams,
    read_only: bool,
    slots: SearchSlots,
    /// The vectors in one contiguous matrix, for exact scans; only on read-only (mapped)
    /// versions, whose vectors cannot change under it.
    rows: Option<Arc<RowStore>>,
    /// The graph copied out for our own traversal (`graph.rs`); only on read-only f32
    /// versions whose keys name every node. usearch answers until the copy is in.
    graph: Option<Arc<CopySlot>>,
}

/// Where a graph copy lands once a background thread has gathered it.
#[derive(Default)]
struct CopySlot {
    started: AtomicBool,
    /// None inside: the keys did not name every node, so there is no copy to search.
    copy: OnceLock<Option<GraphCopy>>,
}

/// Graph copies, one per saved file, shared by the versions that search it.
static GRAPH_COPIES: PerFile<CopySlot> = PerFile::new();

/// Held by a test to keep background copies from starting (see `copy_in_background`).
#[cfg(test)]
pub(crate) static HOLD_GRAPH_COPIES: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Read access to a graph's nodes, for gathering a copy of it away from its index.
#[derive(Clone)]
pub(crate) struct GraphNodes {
    index: Arc<Index>,
}

impl GraphNodes {
    pub(crate) fn len(&self) -> usize {
        self.index.size()
    }

    pub(crate) fn dim(&self) -> usize {
        self.index.dimensions()
    }

    /// The top graph level of `key` (0 also when absent).
    pub(crate) fn level_of(&self, key: u64) -> usize {
        self.index.level_of_key(key)
    }

    /// The keys `key` links to at `level`.
    pub(crate) fn links(&self, key: u64, level: usize) -> Vec<u64> {
        let mut neighbours = self.index.neighbors(key, level);
        let mut links = vec![0; neighbours.total()];
        let read = neighbours.drain_into(&mut links);
        links.truncate(read);
        links
    }

    /// Copy the stored vector of `key` into `out` (of length `dim`); false when absent.
    pub(crate) fn copy_vector(&self, key: u64, out: &mut [f32]) -> bool {
        copy_vector(&self.index, key, out)
    }
}

/// Lower the calling thread (and the threads it starts) to the lowest CPU priority, nice
/// 19, on Linux. A copy gathered while the gateway is busy took two cores from the searches
/// it exists to speed up: 20 recruiters right after a restart saw a `/match` p95 of 87-113 ms,
/// against 79-85 ms at nice 19 (session 13, the recruiter bench's burst). At nice 19 the copy
/// runs on what the searches leave.
fn yield_to_searches() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on the calling thread's own id changes only that thread's nice
    // value; a failure (not permitted, say) leaves it as it was, which is harmless.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19);
    }
}

/// Copy the stored vector of `key` into `out` (of length `dim`); false when absent.
fn copy_vector(index: &Index, key: u64, out: &mut [f32]) -> bool {
    matches!(index.get(key, out), Ok(n) if n > 0)
}

/// A counting semaphore over usearch's search contexts.
struct SearchSlots {
    free: std::sync::Mutex<usize>,
    released: std::sync::Condvar,
}

struct SlotGuard<'a>(&'a SearchSlots);

impl SearchSlots {
    fn new(n: usize) -> Self {
        Self { free: std::sync::Mutex::new(n), released: std::sync::Condvar::new() }
    }

    fn acquire(&self) -> SlotGuard<'_> {
        let mut free = self.free.lock().expect("search slots");
        while *free == 0 {
            free = self.released.wait(free).expect("search slots");
        }
        *free -= 1;
        SlotGuard(self)
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().expect("search slots") += 1;
        self.0.released.notify_one();
    }
}

/// Replaces usearch's inner-product kernel on f32 graphs with ours ([`crate::distance`]):
/// the metric is not saved with the index, so every new or reopened f32 graph gets it
/// here. The distance is usearch's own definition for `MetricKind::IP`: 1 - a·b.
fn install_f32_metric(index: &mut Index, dim: usize) -> Result<()> {
    let (kernel, _) = crate::distance::inner_product_kernel();
    // SAFETY: usearch calls the metric of a `dim`-dimensional f32 index with two pointers
    // to `dim` f32 values each (a stored row, or the query it converted); the kernel was
    // chosen for this CPU.
    let metric = move |a: *const f32, b: *const f32| -> f32 { 1.0 - unsafe { kernel(a, b, dim) } };
    <f32 as VectorType>::change_metric(index, Box::new(metric)).map_err(|e| engine_error("metric", e))
}

fn engine_error(what: &str, e: impl std::fmt::Display) -> LakehouseError {
    LakehouseError::Internal(format!("hnsw {what}: {e}"))
}

fn check_rows(keys: &[u64], vectors: &[f32], dim: usize) -> Result<()> {
    if dim == 0 || vectors.len() != keys.len() * dim {
        return Err(LakehouseError::invalid(format!(
            "{} keys need {} floats of dimension {dim}, got {}",
            keys.len(),
            keys.len() * dim,
            vectors.len()
        )));
    }
    Ok(())
}

impl HnswIndex {
    pub fn new(dim: usize, params: HnswParams) -> Result<Self> {
        let options = IndexOptions {
            dimensions: dim,
            metric: params.quantization.metric(),
            quantization: params.quantization.scalar_kind(),
            connectivity: params.connectivity,
            expansion_add: params.ef_construction,
            expansion_search: params.ef_search,
            multi: false,
        };
        let mut index = Index::new(&options).map_err(|e| engine_error("create", e))?;
        if params.quantization == Quantization::F32 {
            install_f32_metric(&mut index, dim)?;
        }
        index.reserve_capacity_and_threads(0, SEARCH_SLOTS).map_err(|e| engine_error("reserve", e))?;
        Ok(Self { index: Arc::new(index), dim, params, read_only: false, slots: SearchSlots::new(SEARCH_SLOTS), rows: None, graph: None })
    }

    /// Build from row-major `vectors` on `threads` threads (usearch inserts concurrently).
    pub fn build(dim: usize, params: HnswParams, keys: &[u64], vectors: &[f32], threads: usize) -> Result<Self> {
        let index = Self::new(dim, params)?;
        index.add(keys, vectors, threads)?;
        Ok(index)
    }

    /// Insert vectors (a key already present is replaced).
    pub fn add(&self, keys: &[u64], vectors: &[f32], threads: usize) -> Result<()> {
        if self.read_only {
            return Err(LakehouseError::invalid("a memory-mapped index version is read-only; open it loaded to append"));
        }
        check_rows(keys, vectors, self.dim)?;
        let vectors = &unit_rows(vectors, self.dim);
        let threads = threads.clamp(1, SEARCH_SLOTS);
        self.index
            .reserve_capacity_and_threads(self.index.size() + keys.len(), SEARCH_SLOTS)
            .map_err(|e| engine_error("reserve", e))?;
        for &key in keys {
            if self.index.contains(key) {
                self.index.remove(key).map_err(|e| engine_error("replace", e))?;
            }
        }
        let insert = |worker: usize| -> Result<()> {
            for i in (worker..keys.len()).step_by(threads) {
                let row = &vectors[i * self.dim..(i + 1) * self.dim];
                self.index.add(keys[i], row).map_err(|e| engine_error("add", e))?;
            }
            Ok(())
        };
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads).map(|w| scope.spawn(move || insert(w))).collect();
            workers.into_iter().try_for_each(|w| w.join().expect("insert thread panicked"))
        })
    }

    /// Drop `keys` from the graph (unknown keys are ignored); returns how many went.
    pub fn remove(&self, keys: &[u64]) -> Result<usize> {
        if self.read_only {
            return Err(LakehouseError::invalid("a memory-mapped index version is read-only; open it loaded to remove"));
        }
        keys.iter().try_fold(0, |n, &key| Ok(n + self.index.remove(key).map_err(|e| engine_error("remove", e))?))
    }

    /// Merge a segment into this loaded graph: its hidden keys leave, its rows go in.
    pub fn fold(&self, segment: &Segment, threads: usize) -> Result<()> {
        let hidden: Vec<u64> = segment.hidden().iter().copied().collect();
        self.remove(&hidden)?;
        let (keys, rows): (Vec<u64>, Vec<&[f32]>) = segment.rows().unzip();
        self.add(&keys, &rows.concat(), threads)
    }

    /// Write atomically: to a temporary sibling, then rename over `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("tmp");
        self.index.save(&tmp.to_string_lossy()).map_err(|e| engine_error("save", e))?;
        std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| engine_error("sync", e))?;
        std::fs::rename(&tmp, path).map_err(|e| engine_error("rename", e))
    }

    /// Reopen a saved version; `mmap` views the file in place (read-only, no load time).
    pub fn open(path: &Path, mmap: bool, params: HnswParams) -> Result<Self> {
        if !path.is_file() {
            return Err(LakehouseError::NotFound(format!("index file {} does not exist", path.display())));
        }
        let path_str = path.to_string_lossy();
        let mut index = if mmap { Index::restore_view(&path_str) } else { Index::restore(&path_str) }
            .map_err(|e| engine_error("open", e))?;
        if index.scalar_kind() == ScalarKind::F32 {
            let dim = index.dimensions();
            install_f32_metric(&mut index, dim)?;
        }
        index.change_expansion_search(params.ef_search);
        // Room for concurrent searches. A memory-mapped view may refuse to grow; then it
        // keeps the contexts usearch gave it (one per hardware thread) and callers queue.
        let slots = match index.reserve_capacity_and_threads(index.size(), SEARCH_SLOTS) {
            Ok(()) => SEARCH_SLOTS,
            Err(_) if mmap => usearch_default_contexts(),
            Err(e) => return Err(engine_error("reserve", e)),
        };
        let dim = index.dimensions();
        let quantization = match index.scalar_kind() {
            ScalarKind::F16 => Quantization::F16,
            ScalarKind::BF16 => Quantization::Bf16,
            ScalarKind::I8 => Quantization::I8,
            _ => Quantization::F32,
        };
        let params = HnswParams { quantization, ..params };
        Ok(Self { index: Arc::new(index), dim, params, read_only: mmap, slots: SearchSlots::new(slots), rows: None, graph: None })
    }

    /// Give this read-only version the contiguous copy of `keys`' vectors that exact scans
    /// read (`rows.rs`) and, for an f32 graph, the copy of the graph its searches traverse
    /// (`graph.rs`); both shared with every other open version of the file at `path`.
    /// A loaded, appendable graph keeps asking usearch: its vectors may change.
    ///
    /// The graph copy is gathered on a thread of its own, and usearch answers searches
    /// until it is in: reading every node's links through usearch is most of the time it
    /// takes to open a large version (ADR-034 amendment), and a version must serve from
    /// the moment it opens (a restart, a promotion).
    pub fn attach_rows(&mut self, path: &Path, keys: &[u64]) -> Result<()> {
        if !self.read_only {
            return Ok(());
        }
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        self.rows = Some(rows::shared(path, || RowStore::gather(self, keys, threads))?);
        if self.params.quantization == Quantization::F32 {
            self.graph = Some(self.copy_in_background(path, keys, threads)?);
        }
        Ok(())
    }

    /// The slot the graph copy of the file at `path` lands in, shared with the other open
    /// versions of that file; the first version to ask starts the thread that fills it.
    fn copy_in_background(&self, path: &Path, keys: &[u64], threads: usize) -> Result<Arc<CopySlot>> {
        let slot = GRAPH_COPIES.get_or_build(path, || Some(CopySlot::default()))?.expect("a new slot");
        if slot.started.swap(true, Ordering::AcqRel) {
            return Ok(slot);
        }
        let (nodes, keys, filled) = (self.nodes(), keys.to_vec(), Arc::clone(&slot));
        let spawned = std::thread::Builder::new().name("graph-copy".into()).spawn(move || {
            yield_to_searches();
            #[cfg(test)]
            let _held = HOLD_GRAPH_COPIES.lock();
            let _ = filled.copy.set(GraphCopy::gather(&nodes, &keys, threads));
        });
        if let Err(e) = spawned {
            // No thread to copy with: this version stays on usearch, as it did before copies.
            let _ = slot.copy.set(None);
            return Err(LakehouseError::Internal(format!("starting the graph copy of {}: {e}", path.display())));
        }
        Ok(slot)
    }

    /// Block until this version's graph copy is gathered (at once when it has none coming).
    pub fn wait_for_graph_copy(&self) {
        if let Some(slot) = &self.graph {
            slot.copy.wait();
        }
    }

    /// The graph copy searches traverse, once it is in.
    fn graph_copy(&self) -> Option<&GraphCopy> {
        self.graph.as_ref()?.copy.get()?.as_ref()
    }

    /// Read access to the nodes, for gathering copies.
    pub(crate) fn nodes(&self) -> GraphNodes {
        GraphNodes { index: Arc::clone(&self.index) }
    }

    /// Vectors held in the contiguous copy (0 without one).
    pub fn rows_held(&self) -> usize {
        self.rows.as_ref().map_or(0, |rows| rows.len())
    }

    pub fn len(&self) -> usize {
        self.index.size()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// The distance kernel searches use: ours on f32 graphs ("lakehouse-f32-<simd>"), else
    /// the SIMD target usearch dispatched to on this CPU ("serial" means none).
    pub fn simd(&self) -> String {
        match self.params.quantization {
            Quantization::F32 => format!("lakehouse-f32-{}", crate::distance::inner_product_kernel().1),
            _ => self.index.hardware_acceleration(),
        }
    }

    pub fn contains(&self, key: u64) -> bool {
        self.index.contains(key)
    }

    /// The stored vector of `key` (dequantised), if present.
    pub fn vector(&self, key: u64) -> Option<Vec<f32>> {
        let mut buffer = vec![0f32; self.dim];
        self.copy_vector(key, &mut buffer).then_some(buffer)
    }

    /// Whether searches traverse our copy of the graph (`graph.rs`) instead of usearch.
    pub fn traverses_copy(&self) -> bool {
        self.graph_copy().is_some()
    }

    /// Whether a copy of the graph is still being gathered (usearch answers meanwhile).
    pub fn copying_graph(&self) -> bool {
        self.graph.as_ref().is_some_and(|slot| slot.copy.get().is_none())
    }

    /// Copy the stored vector of `key` into `out` (of length `dim`); false when absent.
    pub(crate) fn copy_vector(&self, key: u64, out: &mut [f32]) -> bool {
        copy_vector(&self.index, key, out)
    }

    /// Approximate top-`k` by graph traversal; `beam` widens the search beyond ef_search.
    /// Returns (key, cosine similarity), best first.
    pub fn search(&self, query: &[f32], k: usize, beam: usize) -> Result<Vec<(u64, f32)>> {
        self.check_query(query)?;
        if let Some(graph) = self.graph_copy() {
            return Ok(graph.search(query, k, beam.max(self.params.ef_search), |_| true));
        }
        let _slot = self.slots.acquire();
        let matches = self.index.search(query, k.max(beam)).map_err(|e| engine_error("search", e))?;
        Ok(to_hits(matches, k))
    }

    /// Approximate top-`k` among keys accepted by `allowed`, checked during traversal.
    pub fn filtered_search(&self, query: &[f32], k: usize, beam: usize, allowed: impl Fn(u64) -> bool) -> Result<Vec<(u64, f32)>> {
        self.check_query(query)?;
        if let Some(graph) = self.graph_copy() {
            return Ok(graph.search(query, k, beam.max(self.params.ef_search), allowed));
        }
        let _slot = self.slots.acquire();
        let matches = self
            .index
            .filtered_search(query, k.max(beam), allowed)
            .map_err(|e| engine_error("filtered search", e))?;
        Ok(to_hits(matches, k))
    }

    /// Exact top-`k` over the whole index (brute force inside usearch).
    pub fn exact_all(&self, query: &[f32], k: usize) -> Result<Vec<(u64, f32)>> {
        self.check_query(query)?;
        let _slot = self.slots.acquire();
        let matches = self.index.exact_search(query, k).map_err(|e| engine_error("exact search", e))?;
        Ok(to_hits(matches, k))
    }

    /// Exact top-`k` among `candidates` (keys absent from the index are skipped): over the
    /// contiguous rows when this version has them (the few that could rank re-scored from
    /// the graph's vectors), asking usearch per key for the rest.
    pub fn exact_among(&self, query: &[f32], k: usize, candidates: impl Iterator<Item = u64>) -> Result<Vec<(u64, f32)>> {
        self.check_query(query)?;
        let (mut hits, rest): (_, Vec<u64>) = match &self.rows {
            Some(rows) => {
                let mut elsewhere = Vec::new();
                let mut row = vec![0f32; self.dim];
                let exact = |key: u64| self.copy_vector(key, &mut row).then(|| crate::dot(query, &row));
                (rows.exact_among(query, k, candidates, &mut elsewhere, exact), elsewhere)
            }
            None => (Vec::new(), candidates.collect()),
        };
        let mut buffer = vec![0f32; self.dim];
        let mut top = TopK::new(k);
        for key in rest {
            if self.copy_vector(key, &mut buffer) {
                top.offer(key, crate::dot(query, &buffer));
            }
        }
        hits.extend(top.into_sorted());
        rows::best_first(&mut hits, k);
        Ok(hits)
    }

    /// The query at unit length (the stored vectors are), after checking its dimension.
    /// The search methods below take a unit query: the planner normalises it once.
    pub fn unit_query(&self, query: &[f32]) -> Result<Vec<f32>> {
        self.check_query(query)?;
        let mut query = query.to_vec();
        crate::normalize(&mut query);
        Ok(query)
    }

    fn check_query(&self, query: &[f32]) -> Result<()> {
        if query.len() != self.dim {
            return Err(LakehouseError::invalid(format!("query has {} dimensions, the index {}", query.len(), self.dim)));
        }
        Ok(())
    }
}

/// Row-major `vectors` with every row scaled to unit length.
fn unit_rows(vectors: &[f32], dim: usize) -> Vec<f32> {
    let mut rows = vectors.to_vec();
    rows.chunks_mut(dim).for_each(crate::normalize);
    rows
}

/// The search contexts usearch allocates on its own: one per hardware thread.
fn usearch_default_contexts() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn to_hits(matches: usearch::ffi::Matches, k: usize) -> Vec<(u64, f32)> {
    matches.keys.into_iter().zip(matches.distances).take(k).map(|(key, d)| (key, 1.0 - d)).collect()
}

/// A bounded min-heap keeping the `k` highest scores seen.
pub(crate) struct TopK {
    k: usize,
    heap: std::collections::BinaryHeap<std::cmp::Reverse<(OrderedScore, u64)>>,
}

/// A score with a total order (f32's `total_cmp`), for heaps.
#[derive(PartialEq, PartialOrd, Clone, Copy)]
pub(crate) struct OrderedScore(pub(crate) f32);
impl Eq for OrderedScore {}
impl Ord for OrderedScore {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        Self { k, heap: std::collections::BinaryHeap::with_capacity(k + 1) }
    }

    pub(crate) fn offer(&mut self, key: u64, score: f32) {
        if self.k == 0 {
            return;
        }
        let beats_worst = self.heap.len() < self.k || self.heap.peek().is_some_and(|std::cmp::Reverse((worst, _))| score > worst.0);
        // A candidate list may name a key twice; it must not take two of the k slots.
        if !beats_worst || self.heap.iter().any(|std::cmp::Reverse((_, held))| *held == key) {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(std::cmp::Reverse((OrderedScore(score), key)));
        } else if let Some(std::cmp::Reverse((worst, _))) = self.heap.peek() {
            if score > worst.0 {
                self.heap.pop();
                self.heap.push(std::cmp::Reverse((OrderedScore(score), key)));
            }
        }
    }

    pub(crate) fn into_sorted(self) -> Vec<(u64, f32)> {
        let mut hits: Vec<(u64, f32)> = self.heap.into_iter().map(|std::cmp::Reverse((s, key))| (key, s.0)).collect();
        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        hits
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic pseudo-random unit vectors (xorshift), so tests need no RNG crate.
    pub(crate) fn unit_vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut out: Vec<f32> = (0..n * dim)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        out.chunks_mut(dim).for_each(crate::normalize);
        out
    }

    #[test]
    fn every_vector_finds_itself_first() {
        let (n, dim) = (2000, 32);
        let vectors = unit_vectors(n, dim, 1);
        let keys: Vec<u64> = (0..n as u64).map(|k| k * 7 + 3).collect();
        let index = HnswIndex::build(dim, HnswParams::default(), &keys, &vectors, 2).unwrap();
        assert_eq!(index.len(), n);
        let found = (0..n).filter(|&i| index.search(&vectors[i * dim..(i + 1) * dim], 1, 64).unwrap()[0].0 == keys[i]).count();
        assert!(found as f64 / n as f64 > 0.99, "only {found} of {n} found themselves");
    }

    #[test]
    fn every_storage_scores_like_exact_cosine_within_its_precision() {
        let (n, dim) = (400, 100); // 100 = 64 + 32 + 4: every kernel's tail path runs
        let vectors = unit_vectors(n, dim, 5);
        let keys: Vec<u64> = (0..n as u64).collect();
        let tolerance = [(Quantization::F32, 1e-5), (Quantization::F16, 2e-3), (Quantization::Bf16, 2e-2), (Quantization::I8, 6e-2)];
        for (quantization, tolerance) in tolerance {
            let params = HnswParams { quantization, ..HnswParams::default() };
            // One build thread and a beam as wide as the index: this test is about each
            // storage's scores, so the traversal must not depend on how a two-thread build
            // happened to link the graph (such builds left row 333 unreached at ef 64 in
            // CI, and row 74 unreached at any ef about once in 20 runs here).
            let index = HnswIndex::build(dim, params, &keys, &vectors, 1).unwrap();
            assert_eq!(index.params.quantization, quantization);
            for q in (0..n).step_by(37) {
                let query = &vectors[q * dim..(q + 1) * dim];
                let hits = index.search(query, 5, n).unwrap();
                assert_eq!(hits[0].0, q as u64, "{quantization:?}: row {q} must find itself first");
                for (key, score) in hits {
                    let row = &vectors[key as usize * dim..(key as usize + 1) * dim];
                    let exact: f64 = query.iter().zip(row).map(|(&a, &b)| a as f64 * b as f64).sum();
                    assert!((score as f64 - exact).abs() <= tolerance, "{quantization:?}: score {score} vs exact {exact}");
                }
            }
        }
        let f32_index = HnswIndex::build(dim, HnswParams::default(), &keys, &vectors, 1).unwrap();
        assert!(f32_index.simd().starts_with("lakehouse-f32-"), "f32 graphs use our kernel, got {}", f32_index.simd());
    }

    #[test]
    fn saved_index_reopens_loaded_and_mapped_with_the_same_answers() {
        let dir = tempfile::tempdir().unwrap();
        let (n, dim) = (500, 16);
        let vectors = unit_vectors(n, dim, 2);
        let keys: Vec<u64> = (0..n as u64).collect();
        let built = HnswIndex::build(dim, HnswParams::default(), &keys, &vectors, 2).unwrap();
        let path = dir.path().join("v1.usearch");
        built.save(&path).unwrap();
        let query = &vectors[..dim];
        let expected = built.search(query, 10, 64).unwrap();
        for mmap in [false, true] {
            let reopened = HnswIndex::open(&path, mmap, HnswParams::default()).unwrap();
            assert_eq!(reopened.search(query, 10, 64).unwrap(), expected);
        }
        let mapped = HnswIndex::open(&path, true, HnswParams::default()).unwrap();
        assert!(mapped.add(&[9999], &vectors[..dim], 1).is_err(), "a mapped index must refuse writes");
    }

    #[test]
    fn a_mapped_f32_version_given_its_keys_searches_its_own_copy_of_the_graph() {
        let dir = tempfile::tempdir().unwrap();
        let (n, dim) = (800, 16);
        let vectors = unit_vectors(n, dim, 9);
        let keys: Vec<u64> = (0..n as u64).map(|k| k + 100).collect();
        let built = HnswIndex::build(dim, HnswParams::default(), &keys, &vectors, 2).unwrap();
        let path = dir.path().join("v.usearch");
        built.save(&path).unwrap();
        let answers = |index: &HnswIndex| {
            let mut all = Vec::new();
            for q in (0..n).step_by(53) {
                let query = &vectors[q * dim..(q + 1) * dim];
                let hits = index.search(query, 5, 64).unwrap();
                assert_eq!(hits[0].0, keys[q], "row {q} finds itself first");
                let even = index.filtered_search(query, 5, 64, |key| key % 2 == 0).unwrap();
                assert_eq!(even.len(), 5);
                assert!(even.iter().all(|(key, _)| key % 2 == 0), "only allowed keys come back");
                all.push((hits[0].0, even[0].0));
            }
            all
        };
        let mut mapped = HnswIndex::open(&path, true, HnswParams::default()).unwrap();
        let held = HOLD_GRAPH_COPIES.lock().unwrap();
        mapped.attach_rows(&path, &keys).unwrap();
        // Open and serving before the copy is gathered: usearch answers meanwhile.
        assert!(mapped.copying_graph() && !mapped.traverses_copy());
        let meanwhile = answers(&mapped);
        drop(held);
        mapped.wait_for_graph_copy();
        assert!(mapped.traverses_copy() && !mapped.copying_graph());
        assert_eq!(answers(&mapped), meanwhile, "the copy answers as usearch did");
        // Another version of the same file shares the copy already gathered.
        let mut again = HnswIndex::open(&path, true, HnswParams::default()).unwrap();
        again.attach_rows(&path, &keys).unwrap();
        assert!(again.traverses_copy(), "no second gathering");
        let mut loaded = HnswIndex::open(&path, false, HnswParams::default()).unwrap();
        loaded.attach_rows(&path, &keys).unwrap();
        assert!(!loaded.traverses_copy() && !loaded.copying_graph(), "an appendable graph keeps usearch: its links may change");
    }

    #[test]
    fn more_concurrent_searches_than_contexts_wait_instead_of_failing() {
        let dir = tempfile::tempdir().unwrap();
        let dim = 16;
        let vectors = unit_vectors(300, dim, 4);
        let keys: Vec<u64> = (0..300).collect();
        let built = HnswIndex::build(dim, HnswParams::default(), &keys, &vectors, 2).unwrap();
        let path = dir.path().join("v.usearch");
        built.save(&path).unwrap();
        for index in [built, HnswIndex::open(&path, true, HnswParams::default()).unwrap()] {
            std::thread::scope(|scope| {
                for t in 0..(SEARCH_SLOTS + 8) {
                    let (index, vectors) = (&index, &vectors);
                    scope.spawn(move || {
                        for i in 0..50 {
                            let row = (t * 7 + i) % 300;
                            let hits = index.search(&vectors[row * dim..(row + 1) * dim], 3, 32).expect("search never fails");
                            assert_eq!(hits.len(), 3);
                        }
                    });
                }
            });
        }
    }

    #[test]
    fn exact_among_ranks_by_cosine_and_skips_unknown_keys() {
        let dim = 8;
        let vectors = unit_vectors(100, dim, 3);
        let keys: Vec<u64> = (0..100).collect();
        let index = HnswIndex::build(dim, HnswParams::default(), &keys, &vectors, 1).unwrap();
        let query = &vectors[5 * dim..6 * dim];
        let hits = index.exact_among(query, 3, [5u64, 6, 7, 12345].into_iter()).unwrap();
        assert_eq!(hits.len(), 3);
        assert_eq!(hits[0].0, 5);
        assert!((hits[0].1 - 1.0).abs() < 1e-5);
        assert!(hits.windows(2).all(|w| w[0].1 >= w[1].1));
    }
}
