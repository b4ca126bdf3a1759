//! The filter-aware planner. A filter that keeps few vectors makes graph traversal
//! wander (most neighbours are rejected), so below a threshold an exact scan of the
//! candidates is both faster and perfect; above it, HNSW checks the filter during
//! traversal with a beam widened by 1/selectivity. Either way the caller gets
//! min(k, eligible) results: a traversal that comes back short falls back to the exact
//! scan, and whatever is still missing is reported as `shortfall`.

use std::collections::HashSet;

use lakehouse_shared::Result;
use serde::{Deserialize, Serialize};

use crate::hnsw::HnswIndex;
use crate::segment::Segment;

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default)]
pub struct PlannerConfig {
    /// At most this many candidates: exact scan (about 1 ms per 10K at 384-d).
    pub exact_max_candidates: usize,
    /// At most this share of the index: exact scan, whatever the count.
    pub exact_max_fraction: f64,
    /// Cap on the widened beam, as a multiple of ef_search.
    pub max_beam_factor: usize,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        Self { exact_max_candidates: 20_000, exact_max_fraction: 0.2, max_beam_factor: 8 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchPath {
    /// No filter: plain graph traversal.
    Hnsw,
    /// Selective filter: brute force over the candidates.
    Exact,
    /// Broad filter: traversal that checks the filter on every visited node.
    HnswFiltered,
    /// The traversal came back short of k; the exact scan finished the job.
    HnswFilteredThenExact,
}

impl SearchPath {
    /// The name results and logs carry (the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hnsw => "hnsw",
            Self::Exact => "exact",
            Self::HnswFiltered => "hnsw_filtered",
            Self::HnswFilteredThenExact => "hnsw_filtered_then_exact",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedSearch {
    pub hits: Vec<(u64, f32)>,
    pub path: SearchPath,
    /// Vectors eligible under the filter (the index size when there is none).
    pub candidates: usize,
    pub shortfall: usize,
}

/// Top-`k` of the graph `index` plus its `segment` (rows added since the graph was
/// saved; graph keys it hides are never returned), restricted to `allowed` when given.
/// `allowed` may name keys that are not indexed, or a key twice; both are harmless.
pub fn search(
    index: &HnswIndex,
    segment: &Segment,
    query: &[f32],
    k: usize,
    allowed: Option<&[u64]>,
    config: &PlannerConfig,
) -> Result<PlannedSearch> {
    let query = &index.unit_query(query)?;
    let hidden = segment.hidden();
    let visible = |key: u64| !hidden.contains(&key);
    let graph_rows = index.len().saturating_sub(hidden.len());
    let total = graph_rows + segment.len();
    let ef = index.params().ef_search.max(k);
    let (hits, path, candidates) = match allowed {
        None => {
            let mut hits = if hidden.is_empty() { index.search(query, k, ef)? } else { index.filtered_search(query, k, ef, visible)? };
            if hits.len() < k.min(graph_rows) {
                hits = index.exact_all(query, k + hidden.len())?.into_iter().filter(|(key, _)| visible(*key)).collect();
            }
            (merge(hits, segment.scan(query, k, |_| true), k), SearchPath::Hnsw, total)
        }
        Some(allowed) => {
            let candidates = allowed.len();
            let selectivity = candidates as f64 / total.max(1) as f64;
            let exact = |k: usize| -> Result<Vec<(u64, f32)>> {
                let graph = index.exact_among(query, k, allowed.iter().copied().filter(|&key| visible(key)))?;
                Ok(merge(graph, segment.scan_among(query, k, allowed), k))
            };
            if candidates <= config.exact_max_candidates || selectivity <= config.exact_max_fraction {
                (exact(k)?, SearchPath::Exact, candidates)
            } else {
                // Only the traversal needs set membership; the exact path never builds it.
                let set: HashSet<u64> = allowed.iter().copied().collect();
                let beam = ((ef as f64 / selectivity.min(1.0)).ceil() as usize).min(ef * config.max_beam_factor);
                let graph = index.filtered_search(query, k, beam, |key| set.contains(&key) && visible(key))?;
                let hits = merge(graph, segment.scan(query, k, |key| set.contains(&key)), k);
                if hits.len() < k.min(set.len()) {
                    (exact(k)?, SearchPath::HnswFilteredThenExact, set.len())
                } else {
                    (hits, SearchPath::HnswFiltered, set.len())
                }
            }
        }
    };
    let shortfall = k.saturating_sub(hits.len());
    Ok(PlannedSearch { hits, path, candidates, shortfall })
}

/// The best `k` of two disjoint hit lists, best first.
fn merge(mut graph: Vec<(u64, f32)>, segment: Vec<(u64, f32)>, k: usize) -> Vec<(u64, f32)> {
    if segment.is_empty() {
        graph.truncate(k);
        return graph;
    }
    graph.extend(segment);
    graph.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    graph.truncate(k);
    graph
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hnsw::tests::unit_vectors;
    use crate::hnsw::HnswParams;
    use proptest::prelude::*;

    fn exact_top(vectors: &[f32], dim: usize, query: &[f32], k: usize, allowed: &HashSet<u64>) -> Vec<u64> {
        let mut scored: Vec<(u64, f32)> = allowed
            .iter()
            .map(|&key| (key, crate::dot(query, &vectors[key as usize * dim..(key as usize + 1) * dim])))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored.into_iter().take(k).map(|(key, _)| key).collect()
    }

    /// Enough queries that recall is measured over at least this many results. Recall is
    /// a mean, and a small sample misses its true value: at 400 results one case measured
    /// 514/520 (0.988) in CI. Over 60 seeds x {50 %, 100 %} x k in {5, 15, 26, 29} with
    /// ~1000 results each, the worst case measured 0.994 and the median 1.0.
    const RESULTS_PER_CASE: usize = 2000;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        /// At every selectivity the planner returns min(k, eligible) keys, all eligible,
        /// and its recall against exact search, over a batch of queries, is at least 0.99.
        /// (Recall is a property of many queries: one query of an approximate search may
        /// miss two of 22 and still be a 0.99-recall index, and the two-thread build makes
        /// the graph differ run to run.)
        #[test]
        fn planned_search_matches_exact_search_at_any_selectivity(
            seed in 0u64..1000,
            per_mille in prop::sample::select(vec![1u64, 10, 100, 500, 1000]),
            k in 1usize..30,
        ) {
            let (n, dim) = (4000usize, 24usize);
            let vectors = unit_vectors(n, dim, seed);
            let keys: Vec<u64> = (0..n as u64).collect();
            // ef_search well above k (up to 29 here): at the default 64, uniform random
            // vectors sit right at 0.99 and the property would test usearch's luck, not the planner.
            let params = HnswParams { ef_search: 128, ..HnswParams::default() };
            let index = HnswIndex::build(dim, params, &keys, &vectors, 2).unwrap();
            let allowed: HashSet<u64> = keys.iter().copied().filter(|k| (k.wrapping_mul(2654435761) % 1000) < per_mille).collect();
            // The recall promise is about what the planner does at its real selectivity
            // threshold; a small candidate floor makes the 50 % and 100 % cases traverse.
            let config = PlannerConfig { exact_max_candidates: 50, ..PlannerConfig::default() };
            // Every path must return only eligible keys, min(k, eligible) of them, so a forced
            // traversal is checked too, at every selectivity (for counts, not recall: at 10 %
            // usearch's filtered traversal has been measured at 0.987 here; see ADR-019).
            let forced = PlannerConfig { exact_max_candidates: 50, exact_max_fraction: 0.0, max_beam_factor: 8 };
            let allowed_keys: Vec<u64> = allowed.iter().copied().collect();
            let queries = unit_vectors((RESULTS_PER_CASE / k).max(20), dim, seed + 7);
            let (mut agree, mut returned) = (0, 0);
            for query in queries.chunks_exact(dim) {
                let mut planned = None;
                for config in [&forced, &config] {
                    let answer = search(&index, &Segment::empty(dim), query, k, Some(&allowed_keys), config).unwrap();
                    prop_assert_eq!(answer.hits.len(), k.min(allowed.len()));
                    prop_assert_eq!(answer.shortfall, k - answer.hits.len());
                    prop_assert!(answer.hits.iter().all(|(key, _)| allowed.contains(key)));
                    planned = Some(answer); // the last one is the real planner's
                }
                let planned = planned.expect("two configs ran");
                let truth: HashSet<u64> = exact_top(&vectors, dim, query, k, &allowed).into_iter().collect();
                agree += planned.hits.iter().filter(|(key, _)| truth.contains(key)).count();
                returned += planned.hits.len();
            }
            prop_assert!(agree as f64 >= 0.99 * returned as f64, "recall {agree}/{returned}");
        }
    }

    #[test]
    fn a_selective_filter_takes_the_exact_path_and_reports_the_shortfall() {
        let dim = 16;
        let vectors = unit_vectors(1000, dim, 9);
        let keys: Vec<u64> = (0..1000).collect();
        let index = HnswIndex::build(dim, HnswParams::default(), &keys, &vectors, 1).unwrap();
        let planned = search(&index, &Segment::empty(dim), &vectors[..dim], 10, Some(&[1, 2, 3, 3, 424242]), &PlannerConfig::default()).unwrap();
        assert_eq!(planned.path, SearchPath::Exact);
        assert_eq!(planned.hits.len(), 3, "a key named twice counts once; one not in the index cannot be returned");
        assert_eq!(planned.shortfall, 7);
    }

    /// A graph plus a segment answers like a graph rebuilt with the same changes: hidden
    /// keys never come back, new and re-embedded rows do, filtered or not.
    #[test]
    fn graph_plus_segment_answers_like_a_rebuilt_graph() {
        let (n, dim, k) = (3000usize, 24usize, 10usize);
        let vectors = unit_vectors(n + 200, dim, 11);
        let keys: Vec<u64> = (0..n as u64).collect();
        let index = HnswIndex::build(dim, HnswParams::default(), &keys, &vectors[..n * dim], 2).unwrap();
        // 100 new rows (keys n..n+100), keys 0..50 re-embedded with new vectors, 50..80 deleted
        let added: Vec<u64> = (n as u64..n as u64 + 100).chain(0..50).collect();
        let added_vectors: Vec<f32> = vectors[n * dim..(n + 150) * dim].to_vec();
        let removed: Vec<u64> = (50..80).collect();
        let segment = Segment::empty(dim).changed(|key| index.contains(key), &added, &added_vectors, &removed).unwrap();
        let mut rebuilt_rows: Vec<(u64, &[f32])> =
            (80..n).map(|i| (i as u64, &vectors[i * dim..(i + 1) * dim])).collect();
        rebuilt_rows.extend(added.iter().copied().zip(added_vectors.chunks_exact(dim)));
        let exact_top = |query: &[f32], keep: &dyn Fn(u64) -> bool| -> Vec<u64> {
            let mut scored: Vec<(u64, f32)> =
                rebuilt_rows.iter().filter(|(key, _)| keep(*key)).map(|(key, row)| (*key, crate::dot(query, row))).collect();
            scored.sort_by(|a, b| b.1.total_cmp(&a.1));
            scored.into_iter().take(k).map(|(key, _)| key).collect()
        };
        let config = PlannerConfig { exact_max_candidates: 50, exact_max_fraction: 0.0, max_beam_factor: 8 };
        let mut agree = 0;
        for q in 0..20 {
            let query = &vectors[(n + 150 + q) * dim..(n + 151 + q) * dim];
            let even: Vec<u64> = (0..n as u64 + 100).filter(|k| k % 2 == 0).collect();
            for (allowed, keep) in [(None, &(|_: u64| true) as &dyn Fn(u64) -> bool), (Some(&even[..]), &|key: u64| key % 2 == 0)] {
                let planned = search(&index, &segment, query, k, allowed, &config).unwrap();
                assert_eq!(planned.hits.len(), k);
                assert!(planned.hits.iter().all(|(key, _)| !(50..80).contains(key)), "a deleted key came back");
                let truth: HashSet<u64> = exact_top(query, keep).into_iter().collect();
                agree += planned.hits.iter().filter(|(key, _)| truth.contains(key)).count();
                for (key, score) in &planned.hits {
                    if *key < 50 {
                        let row = &added_vectors[(100 + *key as usize) * dim..(101 + *key as usize) * dim];
                        assert!((crate::dot(query, row) - score).abs() < 1e-4, "a re-embedded key scored by its old vector");
                    }
                }
            }
        }
        assert!(agree as f64 >= 0.98 * (40 * k) as f64, "recall {agree}/{}", 40 * k);
    }
}

