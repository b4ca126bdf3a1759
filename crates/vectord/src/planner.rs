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
        Self { exact_max_candidates: 20_000, exact_max_fraction: 0.02, max_beam_factor: 8 }
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

#[derive(Debug, Clone, Serialize)]
pub struct PlannedSearch {
    pub hits: Vec<(u64, f32)>,
    pub path: SearchPath,
    /// Vectors eligible under the filter (the index size when there is none).
    pub candidates: usize,
    pub shortfall: usize,
}

pub fn search(
    index: &HnswIndex,
    query: &[f32],
    k: usize,
    allowed: Option<&HashSet<u64>>,
    config: &PlannerConfig,
) -> Result<PlannedSearch> {
    let total = index.len();
    let ef = index.params().ef_search.max(k);
    let (hits, path, candidates) = match allowed {
        None => {
            let mut hits = index.search(query, k, ef)?;
            if hits.len() < k.min(total) {
                hits = index.exact_all(query, k)?;
            }
            (hits, SearchPath::Hnsw, total)
        }
        Some(allowed) => {
            let candidates = allowed.len();
            let selectivity = candidates as f64 / total.max(1) as f64;
            if candidates <= config.exact_max_candidates || selectivity <= config.exact_max_fraction {
                (index.exact_among(query, k, allowed.iter().copied())?, SearchPath::Exact, candidates)
            } else {
                let beam = ((ef as f64 / selectivity.min(1.0)).ceil() as usize).min(ef * config.max_beam_factor);
                let hits = index.filtered_search(query, k, beam, |key| allowed.contains(&key))?;
                if hits.len() < k.min(candidates) {
                    let exact = index.exact_among(query, k, allowed.iter().copied())?;
                    (exact, SearchPath::HnswFilteredThenExact, candidates)
                } else {
                    (hits, SearchPath::HnswFiltered, candidates)
                }
            }
        }
    };
    let shortfall = k.saturating_sub(hits.len());
    Ok(PlannedSearch { hits, path, candidates, shortfall })
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        /// At every selectivity the planner returns min(k, eligible) keys, all eligible,
        /// and agrees with exact search on at least 99% of them.
        #[test]
        fn planned_search_matches_exact_search_at_any_selectivity(
            seed in 0u64..1000,
            per_mille in prop::sample::select(vec![1u64, 10, 100, 500, 1000]),
            k in 1usize..30,
        ) {
            let (n, dim) = (4000usize, 24usize);
            let vectors = unit_vectors(n, dim, seed);
            let keys: Vec<u64> = (0..n as u64).collect();
            let index = HnswIndex::build(dim, HnswParams::default(), &keys, &vectors, 2).unwrap();
            let allowed: HashSet<u64> = keys.iter().copied().filter(|k| (k.wrapping_mul(2654435761) % 1000) < per_mille).collect();
            // A small exact threshold so the filtered traversal path is exercised too.
            let config = PlannerConfig { exact_max_candidates: 50, exact_max_fraction: 0.0, max_beam_factor: 8 };
            let query = &unit_vectors(1, dim, seed + 7)[..];
            let planned = search(&index, query, k, Some(&allowed), &config).unwrap();
            prop_assert_eq!(planned.hits.len(), k.min(allowed.len()));
            prop_assert_eq!(planned.shortfall, k - planned.hits.len());
            prop_assert!(planned.hits.iter().all(|(key, _)| allowed.contains(key)));
            let truth: HashSet<u64> = exact_top(&vectors, dim, query, k, &allowed).into_iter().collect();
            let agree = planned.hits.iter().filter(|(key, _)| truth.contains(key)).count();
            prop_assert!(agree as f64 >= 0.99 * planned.hits.len() as f64 - 1.0, "recall {agree}/{}", planned.hits.len());
        }
    }

    #[test]
    fn a_selective_filter_takes_the_exact_path_and_reports_the_shortfall() {
        let dim = 16;
        let vectors = unit_vectors(1000, dim, 9);
        let keys: Vec<u64> = (0..1000).collect();
        let index = HnswIndex::build(dim, HnswParams::default(), &keys, &vectors, 1).unwrap();
        let allowed: HashSet<u64> = [1, 2, 3, 424242].into_iter().collect();
        let planned = search(&index, &vectors[..dim], 10, Some(&allowed), &PlannerConfig::default()).unwrap();
        assert_eq!(planned.path, SearchPath::Exact);
        assert_eq!(planned.hits.len(), 3, "the key that is not in the index cannot be returned");
        assert_eq!(planned.shortfall, 7);
    }
}
