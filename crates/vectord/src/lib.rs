//! The vector layer: turning text into vectors and finding the nearest ones.
//!
//! - [`embed`]: all-MiniLM-L6-v2 run by candle on the CPU (mean pooling + L2 norm).
//! - [`cache`]: the (model, content hash) -> vector cache, so text is never embedded twice.
//! - [`chunk`]: splitting long texts into overlapping chunks with stable ids.
//! - [`hnsw`]: one usearch HNSW index version (build in parallel, save, memory-map).
//! - [`planner`]: exact scan vs filtered HNSW by selectivity; always k results or a shortfall.
//! - [`registry`]: index versions and the atomically flipped active pointer.
//! - [`playbook`]: playbook memory: the boost learned from past fills and no-shows.

pub mod cache;
pub mod chunk;
pub mod embed;
pub mod hnsw;
pub mod planner;
pub mod playbook;
pub mod registry;

pub use cache::{EmbedStats, EmbeddingCache};
pub use embed::MiniLmEmbedder;
pub use hnsw::{HnswIndex, HnswParams, Quantization};
pub use planner::{PlannedSearch, PlannerConfig, SearchPath};
pub use playbook::PlaybookMemory;
pub use registry::{IndexRegistry, IndexVersion};

/// Cosine similarity of two unit vectors (their dot product).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Scale a vector to unit length in place (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}
