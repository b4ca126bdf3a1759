//! `out += x · Wᵀ` with W stored as IEEE half floats and everything else f32, for x86-64
//! CPUs with AVX2, FMA and F16C but no AVX512-BF16 (AMD Zen 2/3, Intel before Sapphire
//! Rapids): the machines [`crate::bf16`] cannot serve.
//!
//! On those CPUs MiniLM's 42 MB of f32 weights do not fit a 32 MB L3, so every one-query
//! forward pass streamed them from memory (12 ms on a 2-core Zen 3); halved, they stay in
//! cache. The weights are packed once, at load, in the order the kernel reads them, so
//! no product repacks them either (gemm did, for batches). `vcvtph2ps` widens 8 weights
//! per instruction; activations, products and sums stay f32, so the only rounding is the
//! weights' own (11 significant bits: sentence vectors move by a cosine of ~1e-6).
//!
//! The micro-kernel keeps a tile of up to 6 token rows x 16 outputs in 12 registers: per
//! input it widens 2 weight vectors, broadcasts 6 activations and issues 12 FMAs.
//! [`crate::tiled`] schedules the tiles over the cores.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use crate::tiled::{self, TiledProduct};

/// Outputs per register (8 f32 lanes).
const LANES: usize = 8;
/// Registers per tile along the outputs.
const TILE_BLOCKS: usize = 2;

/// Whether this CPU can run the f16-weights path.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        has!("avx2") && has!("fma") && has!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A weight matrix W (`output` x `input`, row-major as PyTorch stores it) as half floats,
/// per block of 8 outputs, per input k, the 8 lanes W[o][k].
pub struct HalfWeights {
    data: Vec<u16>,
    input: usize,
    output: usize,
}

impl HalfWeights {
    /// None when `output` is not a multiple of 8 (then the caller keeps f32).
    pub fn pack(weight: &[f32], input: usize, output: usize) -> Option<Self> {
        if output % LANES != 0 || weight.len() != input * output {
            return None;
        }
        let mut data = vec![0u16; output * input];
        for block in 0..output / LANES {
            for k in 0..input {
                for lane in 0..LANES {
                    let o = block * LANES + lane;
                    data[(block * input + k) * LANES + lane] = half::f16::from_f32(weight[o * input + k]).to_bits();
                }
            }
        }
        Some(Self { data, input, output })
    }

    /// `out += x · Wᵀ`: `x` is `rows` x `input`, `out` is `rows` x `output` (row-major;
    /// callers pre-fill `out` with the bias). Panics if the CPU lacks AVX2 / FMA / F16C:
    /// check [`available`] first.
    pub fn multiply_add(&self, x: &[f32], rows: usize, out: &mut [f32]) {
        assert!(available(), "the f16-weights path needs AVX2, FMA and F16C");
        tiled::multiply_add(self, x, self.input, rows, out);
    }
}

impl TiledProduct for HalfWeights {
    type Activation = f32;
    const LANES: usize = LANES;
    const TILE_BLOCKS: usize = TILE_BLOCKS;

    fn output(&self) -> usize {
        self.output
    }

    unsafe fn tile(&self, x: *const f32, rows: usize, first_block: usize, blocks: usize, out: *mut f32) {
        let w = self.data[first_block * self.input * LANES..].as_ptr();
        // SAFETY: forwarded from `TiledProduct::tile`'s contract; `w` starts the packed
        // blocks first_block..first_block+blocks.
        unsafe { tile_dispatch(rows, blocks, Tile { x, w, input: self.input, out, out_stride: self.output }) }
    }
}

#[derive(Clone, Copy)]
struct Tile {
    x: *const f32,
    w: *const u16,
    input: usize,
    out: *mut f32,
    out_stride: usize,
}

/// Run the kernel instantiated for this tile's shape (rows 1..=6, blocks 1..=2).
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C, and `tile` must describe live buffers of that shape.
unsafe fn tile_dispatch(rows: usize, blocks: usize, tile: Tile) {
    // SAFETY: forwarded from this function's contract.
    unsafe { tiled::dispatch_tile!(kernel, tile, rows, blocks, [1], 2) }
}

/// `R` rows x `B`·8 outputs: accumulators start from `out` (the bias), every input adds
/// one FMA per accumulator, and the tile is stored back once.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn kernel<const R: usize, const B: usize>(t: Tile) {
    // SAFETY: `tile_dispatch`'s contract: the features are present and every pointer
    // plus offset below stays inside the buffers the tile describes.
    unsafe {
        let block_stride = t.input * LANES; // u16s per 8-output block
        let mut acc = [[_mm256_setzero_ps(); B]; R];
        for (r, row) in acc.iter_mut().enumerate() {
            for (b, a) in row.iter_mut().enumerate() {
                *a = _mm256_loadu_ps(t.out.add(r * t.out_stride + b * LANES));
            }
        }
        for k in 0..t.input {
            let mut w = [_mm256_setzero_ps(); B];
            for (b, v) in w.iter_mut().enumerate() {
                *v = _mm256_cvtph_ps(_mm_loadu_si128(t.w.add(b * block_stride + k * LANES) as *const __m128i));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let x = _mm256_broadcast_ss(&*t.x.add(r * t.input + k));
                for (a, v) in row.iter_mut().zip(&w) {
                    *a = _mm256_fmadd_ps(x, *v, *a);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (b, a) in row.iter().enumerate() {
                _mm256_storeu_ps(t.out.add(r * t.out_stride + b * LANES), *a);
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn kernel<const R: usize, const B: usize>(_: Tile) {
    unreachable!("the f16-weights path is only chosen on x86-64 with AVX2, FMA and F16C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiled::test_cases::{bias_rows, random_product};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// The packed product equals the plain product with the weights rounded to f16,
        /// for every tile shape: rows that do and do not fill a tile, one or two blocks.
        #[test]
        fn the_packed_product_equals_the_f16_rounded_reference(
            rows in 1usize..15,
            input in 1usize..70,
            blocks in 1usize..7,
            seed in any::<u64>(),
        ) {
            if !available() {
                return Ok(()); // nothing to run on this CPU (the encoder never packs here)
            }
            let output = blocks * LANES;
            let (weight, x, bias) = random_product(seed, rows, input, output);
            let packed = HalfWeights::pack(&weight, input, output).unwrap();
            let mut out: Vec<f32> = bias_rows(rows, &bias);
            packed.multiply_add(&x, rows, &mut out);
            let round = |v: f32| half::f16::from_f32(v).to_f32() as f64;
            for r in 0..rows {
                for o in 0..output {
                    let want = bias[o] as f64 + (0..input).map(|k| x[r * input + k] as f64 * round(weight[o * input + k])).sum::<f64>();
                    let got = out[r * output + o] as f64;
                    prop_assert!((got - want).abs() <= 1e-5 * (1.0 + want.abs()) * input as f64, "{} vs {}", got, want);
                }
            }
        }
    }

    #[test]
    fn an_output_that_is_not_a_multiple_of_8_is_not_packed() {
        assert!(HalfWeights::pack(&[0.0; 3 * 12], 3, 12).is_none());
    }
}
