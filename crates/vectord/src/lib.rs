//! The vector layer: turning text into vectors and finding the nearest ones.
//!
//! - [`embed`]: all-MiniLM-L6-v2 on the CPU (tokenise, batch, mean pooling + L2 norm).
//! - [`encoder`]: the BERT forward pass: candle weights and GEMMs, fused parallel kernels between.
//! - [`bf16`]: the encoder's matrix products in bfloat16 on CPUs with AVX512-BF16.
//! - `amx`: the same products on Intel AMX tiles, where the CPU and the OS allow them.
//! - [`f16_weights`]: the same with f16 weights and f32 math, for AVX2 CPUs without it.
//! - [`cache`]: the (model, content hash) -> vector cache, so text is never embedded twice.
//! - [`chunk`]: splitting long texts into overlapping chunks with stable ids.
//! - [`distance`]: the f32 inner-product kernel HNSW traversal calls (instead of usearch's).
//! - [`hnsw`]: one usearch HNSW index version (build in parallel, save, memory-map).
//! - [`layered`]: one index version as callers see it: graph + segment.
//! - [`segment`]: the small exact layer a refresh writes instead of re-saving the graph.
//! - [`rows`]: a graph's vectors copied into one matrix, so exact scans read memory in order.
//! - [`planner`]: exact scan vs filtered HNSW by selectivity; always k results or a shortfall.
//! - [`registry`]: index versions and the atomically flipped active pointer.
//! - [`playbook`]: playbook memory: the boost learned from past fills and no-shows.

/// Defines `fn $name(args)` that runs `$body(args)` compiled for the widest vector
/// extension the CPU has: AVX-512, else AVX2 + FMA, else the baseline. The crate is built
/// for baseline x86-64 (4-wide SSE2), so a plainly written hot loop would use a quarter
/// of an AVX-512 register; `$body` must be `#[inline(always)]`, so each copy is compiled
/// with its own features. The feature checks are cached atomics: a few ns per call.
macro_rules! simd_dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:path) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                use std::arch::is_x86_feature_detected as has;
                if has!("avx512f") && has!("avx512bw") && has!("avx512vl") {
                    // SAFETY: the CPU was just checked for the features this copy uses.
                    return unsafe { avx512($($arg),*) };
                }
                if has!("avx2") && has!("fma") {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

mod amx;
pub mod bf16;
pub mod cache;
pub mod chunk;
pub mod distance;
pub mod embed;
pub mod encoder;
pub mod f16_weights;
pub mod graph;
pub mod hnsw;
pub mod int16;
pub mod layered;
pub mod planner;
pub mod playbook;
pub mod registry;
pub mod rows;
pub mod segment;
mod parallel;
mod tiled;

pub use cache::{CachedEmbedder, EmbedStats, EmbeddingCache};
pub use embed::MiniLmEmbedder;
pub use encoder::Precision;
pub use hnsw::{HnswIndex, HnswParams, Quantization};
pub use layered::LayeredIndex;
pub use planner::{PlannedSearch, PlannerConfig, SearchPath};
pub use playbook::PlaybookMemory;
pub use registry::{IndexRegistry, IndexVersion};
pub use segment::Segment;

/// Cosine similarity of two unit vectors (their dot product). Sixteen independent partial
/// sums: a single running sum is a serial chain the compiler may not reorder (float
/// addition is not associative), so it would not use SIMD; this form does, up to one
/// AVX-512 register. Always inlined, so callers built for wider SIMD get wider code.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_widening(a, b, |x| x)
}

/// [`dot`] with `b` held in another element type that `widen` turns into f32 (bfloat16
/// bits, say: a shift). Inlined with `widen`, so the widening vectorises with the sums.
#[inline(always)]
pub(crate) fn dot_widening<T: Copy>(a: &[f32], b: &[T], widen: impl Fn(T) -> f32) -> f32 {
    let (a16, b16) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = a16.remainder().iter().zip(b16.remainder()).map(|(x, &y)| x * widen(y)).sum();
    let mut lanes = [0f32; 16];
    for (x, y) in a16.zip(b16) {
        for i in 0..16 {
            lanes[i] += x[i] * widen(y[i]);
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// The sum of `x`, in sixteen partial sums for the same reason as [`dot`].
#[inline(always)]
pub fn sum(x: &[f32]) -> f32 {
    let chunks = x.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().sum();
    let mut lanes = [0f32; 16];
    for c in chunks {
        for i in 0..16 {
            lanes[i] += c[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Rows scored per task when [`score_rows`] spreads a long list over the cores.
const SCORE_ROWS_PER_TASK: usize = 4096;

/// `(row, query · row)` for each listed row of a row-major matrix of `dim`-wide vectors,
/// in the order given. Long lists are split across the cores; each part runs the widest
/// SIMD the CPU has ([`simd_dispatch!`]).
pub fn score_rows(query: &[f32], matrix: &[f32], dim: usize, rows: &[u32]) -> Vec<(u32, f32)> {
    score_in_parts(rows, |part| score_rows_serial(query, matrix, dim, part))
}

/// `score(part)` over `rows`, one part per task across the cores when the list is long;
/// the answers keep the order of `rows`.
pub(crate) fn score_in_parts(rows: &[u32], score: impl Fn(&[u32]) -> Vec<(u32, f32)> + Sync) -> Vec<(u32, f32)> {
    use rayon::prelude::*;
    if rows.len() <= SCORE_ROWS_PER_TASK {
        return score(rows);
    }
    rows.par_chunks(SCORE_ROWS_PER_TASK).flat_map_iter(|part| score(part)).collect()
}

simd_dispatch!(fn score_rows_serial(query: &[f32], matrix: &[f32], dim: usize, rows: &[u32]) -> Vec<(u32, f32)> => score_rows_portable);

#[inline(always)]
fn score_rows_portable(query: &[f32], matrix: &[f32], dim: usize, rows: &[u32]) -> Vec<(u32, f32)> {
    score_rows_widening(query, matrix, dim, rows, |x| x)
}

/// `(row, query · row)` for each listed row of a row-major matrix held as `T`, widened to
/// f32 by `widen`. A plain loop, not an iterator closure, so the body is inlined into the
/// (feature-dispatched) caller and built with its target features.
#[inline(always)]
pub(crate) fn score_rows_widening<T: Copy>(query: &[f32], matrix: &[T], dim: usize, rows: &[u32], widen: impl Fn(T) -> f32 + Copy) -> Vec<(u32, f32)> {
    let mut scored = Vec::with_capacity(rows.len());
    for &r in rows {
        let at = r as usize * dim;
        scored.push((r, dot_widening(query, &matrix[at..at + dim], widen)));
    }
    scored
}

/// An output buffer shared by the tasks of one matrix product (`tiled`),
/// each of which writes its own disjoint elements.
#[derive(Clone, Copy)]
pub(crate) struct SharedOut(pub(crate) *mut f32);
// SAFETY: tasks write disjoint elements (see the `multiply_add`s); the buffer outlives them.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    pub(crate) fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: offsets stay inside the output buffer (callers compute them from its shape).
        unsafe { self.0.add(offset) }
    }
}

/// Scale a vector to unit length in place (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}
