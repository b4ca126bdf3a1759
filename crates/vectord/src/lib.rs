//! The vector layer: turning text into vectors and finding the nearest ones.
//!
//! - [`embed`]: all-MiniLM-L6-v2 on the CPU (tokenise, batch, mean pooling + L2 norm).
//! - [`encoder`]: the BERT forward pass: candle weights and GEMMs, fused parallel kernels between.
//! - [`cache`]: the (model, content hash) -> vector cache, so text is never embedded twice.
//! - [`chunk`]: splitting long texts into overlapping chunks with stable ids.
//! - [`hnsw`]: one usearch HNSW index version (build in parallel, save, memory-map).
//! - [`layered`]: one index version as callers see it: graph + segment.
//! - [`segment`]: the small exact layer a refresh writes instead of re-saving the graph.
//! - [`planner`]: exact scan vs filtered HNSW by selectivity; always k results or a shortfall.
//! - [`registry`]: index versions and the atomically flipped active pointer.
//! - [`playbook`]: playbook memory: the boost learned from past fills and no-shows.

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

pub use cache::{EmbedStats, EmbeddingCache};
pub use embed::MiniLmEmbedder;
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

/// Scale a vector to unit length in place (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}
