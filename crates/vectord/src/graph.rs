//! A read-only f32 HNSW graph copied out of usearch once, and searched by our own
//! traversal (ADR-034).
//!
//! usearch keeps each node's links and its vector in separate allocations and, in
//! `index_dense`, passes no prefetch hook to its traversal: every visit waits on memory
//! for the vector it is about to score. hnswlib lays a node's links and vector out
//! together and prefetches the next neighbour's vector while scoring the current one, and
//! searched up to ~20 % more queries per second on the same graph quality (session 10's
//! Xeon, session 11's Zen 3). A mapped index version never changes, so its graph can be
//! copied once into the layout a traversal wants:
//! - nodes renumbered densely; the base level's links in one fixed-stride array;
//! - vectors f32, 64-byte aligned rows, in node order;
//! - the upper levels (a node in 16 has any) in small per-level maps;
//! and searched with the algorithm usearch and hnswlib share (greedy descent, then a
//! bounded best-first search of the base level, a predicate deciding only which nodes
//! may be *returned*), prefetching each neighbour's vector one step ahead.
//!
//! The copy costs the vectors' f32 bytes again (the mapped file's pages stay cold once
//! searches stop reading them) and ~4·2M bytes of links per node.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::distance::InnerProduct;
use crate::hnsw::{GraphNodes, OrderedScore as Score};

/// f32 values per 64-byte line.
const LINE_FLOATS: usize = 16;

/// 64 bytes, so every row of vectors starts on a cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; LINE_FLOATS]);

pub struct GraphCopy {
    dim: usize,
    /// f32 values from one row's start to the next (`dim` rounded up to whole lines).
    row_stride: usize,
    vectors: Vec<Line>,
    keys: Vec<u64>,
    /// Per node: its base-level link count, then up to `base_stride - 1` node numbers.
    base_links: Vec<u32>,
    base_stride: usize,
    /// Level l ≥ 1 at `upper[l - 1]`: node -> its links there.
    upper: Vec<HashMap<u32, Vec<u32>, foldhash::fast::RandomState>>,
    entry: u32,
    kernel: InnerProduct,
}

/// One node's links as read from usearch, per level (level 0 first), as keys.
struct NodeRead {
    links: Vec<Vec<u64>>,
}

impl GraphCopy {
    /// Copy the f32 graph of `index` whose nodes are exactly `keys` (in any order, repeats
    /// ignored), reading on `threads` threads. None when the copy would be incomplete: a
    /// key the graph does not hold, a node the keys do not name, or a link to an unnamed
    /// node. The caller then keeps searching through usearch.
    pub(crate) fn gather(index: &GraphNodes, keys: &[u64], threads: usize) -> Option<Self> {
        let mut keys = keys.to_vec();
        keys.sort_unstable();
        keys.dedup();
        if keys.is_empty() || keys.len() != index.len() || keys.len() > u32::MAX as usize {
            return None;
        }
        let (dim, part) = (index.dim(), keys.len().div_ceil(threads.max(1)).max(1));
        let row_stride = dim.div_ceil(LINE_FLOATS) * LINE_FLOATS;
        // Each thread writes its nodes' vectors straight into their rows.
        let mut vectors = vec![Line([0.0; LINE_FLOATS]); keys.len() * row_stride / LINE_FLOATS];
        let parts: Vec<Option<Vec<NodeRead>>> = std::thread::scope(|scope| {
            let workers: Vec<_> = keys
                .chunks(part)
                .zip(as_floats_mut(&mut vectors).chunks_mut(part * row_stride))
                .map(|(keys, rows)| scope.spawn(move || read_nodes(index, keys, rows, row_stride)))
                .collect();
            workers.into_iter().map(|w| w.join().expect("graph copy thread panicked")).collect()
        });
        let nodes: Vec<NodeRead> = parts.into_iter().collect::<Option<Vec<_>>>()?.into_iter().flatten().collect();
        Self::from_nodes(dim, row_stride, vectors, keys, nodes)
    }

    fn from_nodes(dim: usize, row_stride: usize, vectors: Vec<Line>, keys: Vec<u64>, nodes: Vec<NodeRead>) -> Option<Self> {
        let node_of: HashMap<u64, u32, foldhash::fast::RandomState> = keys.iter().enumerate().map(|(n, &key)| (key, n as u32)).collect();
        let renumber = |links: &[u64]| -> Option<Vec<u32>> { links.iter().map(|key| node_of.get(key).copied()).collect() };
        let base_stride = 1 + nodes.iter().map(|n| n.links.first().map_or(0, Vec::len)).max().unwrap_or(0);
        let top_level = nodes.iter().map(|n| n.links.len().saturating_sub(1)).max().unwrap_or(0);
        let mut base_links = vec![0u32; keys.len() * base_stride];
        let mut upper: Vec<HashMap<u32, Vec<u32>, foldhash::fast::RandomState>> = (0..top_level).map(|_| HashMap::default()).collect();
        // usearch enters at the first node to reach the top level; any node there will do.
        let entry = nodes.iter().position(|n| n.links.len() == top_level + 1)? as u32;
        for (n, node) in nodes.iter().enumerate() {
            let base = renumber(node.links.first()?)?;
            base_links[n * base_stride] = base.len() as u32;
            base_links[n * base_stride + 1..n * base_stride + 1 + base.len()].copy_from_slice(&base);
            for (level, links) in node.links.iter().enumerate().skip(1) {
                upper[level - 1].insert(n as u32, renumber(links)?);
            }
        }
        let (kernel, _) = crate::distance::inner_product_kernel();
        Some(Self { dim, row_stride, vectors, keys, base_links, base_stride, upper, entry, kernel })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Approximate top-`k` (key, cosine similarity), best first, among the nodes whose key
    /// `allowed` accepts, with a beam of `ef` (at least `k`). `query` is unit length.
    pub fn search(&self, query: &[f32], k: usize, ef: usize, allowed: impl Fn(u64) -> bool) -> Vec<(u64, f32)> {
        assert_eq!(query.len(), self.dim, "query dimension");
        if k == 0 {
            return Vec::new();
        }
        let (start, start_score) = self.descend(query);
        SCRATCH.with(|scratch| {
            let scratch = &mut *scratch.borrow_mut();
            let mut hits = self.search_base(query, start, start_score, ef.max(k), &allowed, scratch);
            hits.truncate(k);
            hits
        })
    }

    /// Greedy descent through the upper levels: the base-level node to start from.
    fn descend(&self, query: &[f32]) -> (u32, f32) {
        let (mut here, mut best) = (self.entry, self.score(query, self.entry));
        for level in self.upper.iter().rev() {
            loop {
                let mut moved = false;
                for &next in level.get(&here).map_or(&[][..], Vec::as_slice) {
                    let score = self.score(query, next);
                    if score > best {
                        (here, best) = (next, score);
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
            }
        }
        (here, best)
    }

    /// Best-first search of the base level from `start`, keeping the `ef` best allowed
    /// nodes; stops when the best unexpanded node cannot beat the worst one kept.
    fn search_base(&self, query: &[f32], start: u32, start_score: f32, ef: usize, allowed: &impl Fn(u64) -> bool, scratch: &mut Scratch) -> Vec<(u64, f32)> {
        scratch.begin(self.keys.len());
        let Scratch { visited, epoch, next, kept } = scratch;
        let epoch = *epoch;
        visited[start as usize] = epoch;
        next.push((Score(start_score), start));
        if allowed(self.keys[start as usize]) {
            kept.push(Reverse((Score(start_score), start)));
        }
        let worst = |kept: &BinaryHeap<Reverse<(Score, u32)>>| kept.peek().map_or(f32::NEG_INFINITY, |Reverse((s, _))| s.0);
        while let Some(&(Score(score), node)) = next.peek() {
            if kept.len() == ef && score < worst(kept) {
                break;
            }
            next.pop();
            let links = self.base_links(node);
            if let Some(&first) = links.first() {
                self.prefetch(first);
            }
            for (i, &neighbour) in links.iter().enumerate() {
                if let Some(&after) = links.get(i + 1) {
                    self.prefetch(after); // its vector loads while this one is scored
                }
                if visited[neighbour as usize] == epoch {
                    continue;
                }
                visited[neighbour as usize] = epoch;
                let score = self.score(query, neighbour);
                if kept.len() < ef || score > worst(kept) {
                    next.push((Score(score), neighbour));
                    if allowed(self.keys[neighbour as usize]) {
                        kept.push(Reverse((Score(score), neighbour)));
                        if kept.len() > ef {
                            kept.pop();
                        }
                    }
                }
            }
        }
        let mut hits: Vec<(u64, f32)> = kept.drain().map(|Reverse((Score(s), node))| (self.keys[node as usize], s)).collect();
        hits.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        hits
    }

    fn base_links(&self, node: u32) -> &[u32] {
        let at = node as usize * self.base_stride;
        &self.base_links[at + 1..at + 1 + self.base_links[at] as usize]
    }

    fn row(&self, node: u32) -> *const f32 {
        as_floats(&self.vectors)[node as usize * self.row_stride..].as_ptr()
    }

    fn score(&self, query: &[f32], node: u32) -> f32 {
        // SAFETY: both pointers start `dim` readable f32 values (the query was checked in
        // `search`; every row holds `dim` of its `row_stride` values), and the kernel was
        // chosen for this CPU.
        unsafe { (self.kernel)(query.as_ptr(), self.row(node), self.dim) }
    }

    fn prefetch(&self, node: u32) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is a hint and cannot fault; the address is inside `vectors`.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let row = self.row(node) as *const i8;
            _mm_prefetch::<_MM_HINT_T0>(row);
            _mm_prefetch::<_MM_HINT_T0>(row.add(64));
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = node;
    }
}

/// The links of each of `keys` at every level it has, its vector copied into its row of
/// `rows` (`row_stride` apart); None at the first key the graph does not hold.
fn read_nodes(index: &GraphNodes, keys: &[u64], rows: &mut [f32], row_stride: usize) -> Option<Vec<NodeRead>> {
    keys.iter()
        .zip(rows.chunks_mut(row_stride))
        .map(|(&key, row)| {
            if !index.copy_vector(key, &mut row[..index.dim()]) {
                return None;
            }
            let links = (0..=index.level_of(key)).map(|level| index.links(key, level)).collect();
            Some(NodeRead { links })
        })
        .collect()
}

fn as_floats(lines: &[Line]) -> &[f32] {
    // SAFETY: `Line` is `repr(C)` around `[f32; 16]`: the slice is that many f32 values,
    // contiguous and aligned.
    unsafe { std::slice::from_raw_parts(lines.as_ptr().cast::<f32>(), lines.len() * LINE_FLOATS) }
}

fn as_floats_mut(lines: &mut [Line]) -> &mut [f32] {
    // SAFETY: as in `as_floats`, and the borrow is exclusive.
    unsafe { std::slice::from_raw_parts_mut(lines.as_mut_ptr().cast::<f32>(), lines.len() * LINE_FLOATS) }
}

/// Per-thread search state, reused: `visited[n] == epoch` marks node n seen by the
/// current search, so no search clears a node-sized array.
#[derive(Default)]
struct Scratch {
    visited: Vec<u32>,
    epoch: u32,
    /// Unexpanded nodes, best first.
    next: BinaryHeap<(Score, u32)>,
    /// The best allowed nodes so far, worst on top.
    kept: BinaryHeap<Reverse<(Score, u32)>>,
}

impl Scratch {
    fn begin(&mut self, nodes: usize) {
        if self.visited.len() < nodes {
            self.visited.resize(nodes, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.visited.fill(0);
            self.epoch = 1;
        }
        self.next.clear();
        self.kept.clear();
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hnsw::tests::unit_vectors;
    use crate::hnsw::{HnswIndex, HnswParams};
    use proptest::prelude::*;

    fn exact_top(vectors: &[f32], keys: &[u64], dim: usize, query: &[f32], k: usize, allowed: impl Fn(u64) -> bool) -> Vec<u64> {
        let mut all: Vec<(u64, f32)> = keys
            .iter()
            .enumerate()
            .filter(|&(_, &key)| allowed(key))
            .map(|(i, &key)| (key, crate::dot(query, &vectors[i * dim..(i + 1) * dim])))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.into_iter().take(k).map(|h| h.0).collect()
    }

    fn recall(found: &[(u64, f32)], truth: &[u64]) -> f64 {
        found.iter().filter(|h| truth.contains(&h.0)).count() as f64 / truth.len().max(1) as f64
    }

    #[test]
    fn the_copy_finds_what_usearch_finds_at_the_same_beam() {
        let (n, dim) = (3000, 24);
        let vectors = unit_vectors(n, dim, 11);
        let keys: Vec<u64> = (0..n as u64).map(|k| k * 5 + 2).collect();
        let params = HnswParams { ef_search: 24, ..HnswParams::default() }; // usearch's beam = ours
        let index = HnswIndex::build(dim, params, &keys, &vectors, 2).unwrap();
        let copy = GraphCopy::gather(&index.nodes(), &keys, 3).expect("a complete copy");
        assert_eq!(copy.len(), n);
        let queries = unit_vectors(200, dim, 12);
        let (mut ours, mut theirs) = (0.0, 0.0);
        for q in queries.chunks(dim) {
            let truth = exact_top(&vectors, &keys, dim, q, 10, |_| true);
            ours += recall(&copy.search(q, 10, 24, |_| true), &truth);
            theirs += recall(&index.search(q, 10, 24).unwrap(), &truth); // a built graph has no copy
        }
        assert!(ours >= theirs - 2.0, "recall summed over 200 queries: ours {ours:.1}, usearch {theirs:.1}");
        assert!(ours / 200.0 > 0.9, "recall@10 {:.3}", ours / 200.0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        /// With a beam as wide as the graph every reachable node is scored, so the answer
        /// is the exact top-k of the allowed nodes, scores and order included.
        #[test]
        fn a_full_beam_returns_the_exact_top_k_of_the_allowed_nodes(seed in 0u64..1000, k in 1usize..20, modulus in 1u64..7) {
            let (n, dim) = (400, 12);
            let vectors = unit_vectors(n, dim, seed);
            let keys: Vec<u64> = (0..n as u64).collect();
            let index = HnswIndex::build(dim, HnswParams::default(), &keys, &vectors, 1).unwrap();
            let copy = GraphCopy::gather(&index.nodes(), &keys, 2).unwrap();
            let query = unit_vectors(1, dim, seed + 7);
            let allowed = |key: u64| key % modulus == 0;
            let hits = copy.search(&query, k, n, allowed);
            let truth = exact_top(&vectors, &keys, dim, &query, k, allowed);
            prop_assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), truth);
            for (key, score) in hits {
                let row = &vectors[key as usize * dim..(key as usize + 1) * dim];
                prop_assert!((score - crate::dot(&query, row)).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn keys_that_do_not_name_every_node_give_no_copy() {
        let dim = 8;
        let vectors = unit_vectors(100, dim, 3);
        let keys: Vec<u64> = (0..100).collect();
        let index = HnswIndex::build(dim, HnswParams::default(), &keys, &vectors, 1).unwrap();
        assert!(GraphCopy::gather(&index.nodes(), &keys[..99], 2).is_none(), "a node missing");
        let mut wrong = keys.clone();
        wrong[5] = 1000;
        assert!(GraphCopy::gather(&index.nodes(), &wrong, 2).is_none(), "a key the graph does not hold");
    }
}
