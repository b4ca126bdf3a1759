//! The vector layer: turning text into vectors and finding the nearest ones.
//!
//! - [`embed`]: all-MiniLM-L6-v2 on the CPU (tokenise, batch, mean pooling + L2 norm).
//! - [`encoder`]: the BERT forward pass: candle weights and GEMMs, fused parallel kernels between.
//! - [`bf16`]: the encoder's matrix products in bfloat16 on CPUs with AVX512-BF16.
//! - [`cache`]: the (model, content hash) -> vector cache, so text is never embedded twice.
//! - [`chunk`]: splitting long texts into overlapping chunks with stable ids.
//! - [`hnsw`]: one usearch HNSW index version (build in parallel, save, memory-map).
//! - [`layered`]: one index version as callers see it: graph + segment.
//! - [`segment`]: the small exact layer a refresh writes instead of re-saving the graph.
//! - [`planner`]: exact scan vs filtered HNSW by selectivity; always k results or a shortfall.
//! - [`registry`]: index versions and the atomically flipped active pointer.
//! - [`playbook`]: playbook memory: the boost learned from past fills and no-shows.

pub mod bf16;
pub mod cache;
pub mod chunk;
pub mod embed;
pub mod encoder;
pub mod hnsw;
pub mod layered;
pub mod planner;
pub mod playbook;
pub mod registry;
pub mod segment;

pub use cache::{CachedEmbedder, EmbedStats, EmbeddingCache};
pub use embed::MiniLmEmbedder;
pub use encoder::Precision;
pub use hnsw::{HnswIndex, HnswParams, Quantization};
pub use layered::LayeredIndex;
pub use planner::{PlannedSearch, PlannerConfig, SearchPath};
pub use playbook::PlaybookMemory;
pub use registry::{IndexRegistry, IndexVersion};
pub use segment::Segment;

/// Cosine similarity of two unit vectors (their dot product). Eight independent partial
/// sums: a single running sum is a serial chain the compiler may not reorder (float
/// addition is not associative), so it would not use SIMD; this form does. Always
/// inlined, so callers built for AVX2 (the encoder's attention) get AVX2 code.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    let mut lanes = [0f32; 8];
    for (x, y) in a8.zip(b8) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Rows scored per task when [`score_rows`] spreads a long list over the cores.
const SCORE_ROWS_PER_TASK: usize = 4096;

/// `(row, query · row)` for each listed row of a row-major matrix of `dim`-wide vectors,
/// in the order given. Long lists are split across the cores; each part runs a loop built
/// for AVX2 + FMA when the CPU has them (the crate itself targets baseline x86-64).
pub fn score_rows(query: &[f32], matrix: &[f32], dim: usize, rows: &[u32]) -> Vec<(u32, f32)> {
    use rayon::prelude::*;
    if rows.len() <= SCORE_ROWS_PER_TASK {
        return score_rows_serial(query, matrix, dim, rows);
    }
    rows.par_chunks(SCORE_ROWS_PER_TASK).flat_map_iter(|part| score_rows_serial(query, matrix, dim, part)).collect()
}

fn score_rows_serial(query: &[f32], matrix: &[f32], dim: usize, rows: &[u32]) -> Vec<(u32, f32)> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU was just checked for the features this build enables.
        return unsafe { score_rows_avx2(query, matrix, dim, rows) };
    }
    score_rows_portable(query, matrix, dim, rows)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn score_rows_avx2(query: &[f32], matrix: &[f32], dim: usize, rows: &[u32]) -> Vec<(u32, f32)> {
    score_rows_portable(query, matrix, dim, rows)
}

#[inline(always)]
fn score_rows_portable(query: &[f32], matrix: &[f32], dim: usize, rows: &[u32]) -> Vec<(u32, f32)> {
    // A plain loop, not an iterator closure, so the body is inlined into the caller
    // and built with its target features.
    let mut scored = Vec::with_capacity(rows.len());
    for &r in rows {
        let at = r as usize * dim;
        scored.push((r, dot(query, &matrix[at..at + dim])));
    }
    scored
}

/// Scale a vector to unit length in place (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}
