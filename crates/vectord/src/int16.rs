//! `out += x · Wᵀ` in 16-bit integers, for x86-64 CPUs with AVX2 but no AVX512-BF16
//! (AMD Zen 2/3, Intel client and pre-Sapphire Rapids server parts).
//!
//! Why integers: on such a CPU a floating-point product is capped at two 8-lane FMAs per
//! cycle, and a short query spent ~80 % of its forward pass there (4.7 ms of CPU on a
//! 2-core Zen 3, session 11). `vpmaddwd` multiplies 16 pairs of i16 and adds neighbouring
//! products into 8 i32 lanes, so each instruction does twice an FMA's multiply-adds; with
//! the i32 add after it the product still ran 1.3–1.6x faster than the f16-weights
//! kernel (ADR-033 has the measurements).
//!
//! The arithmetic: each weight row (one output) is scaled to integers in ±[`LEVELS`] once,
//! at load; each activation row is scaled the same way at every product. The i32 sums are
//! exact, and the result is `scale(x row) · scale(W row) · Σ x̂·ŵ`. Both sides keep 11
//! significant bits, so the only error is that rounding (MiniLM's sentence vectors move by
//! a cosine of ~1e-4; the encoder's tests hold it). [`MAX_INPUT`] keeps every sum inside
//! i32, so no product can overflow.
//!
//! The micro-kernel keeps a tile of up to 6 token rows x 16 outputs in 12 registers: per
//! pair of inputs it loads 2 weight vectors, broadcasts 6 activation pairs and issues 12
//! `vpmaddwd` + 12 adds. [`crate::tiled`] schedules the tiles over the cores.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use rayon::prelude::*;

use crate::parallel;
use crate::tiled::{self, TiledProduct, ROWS_PER_TASK};

/// Outputs per register (8 i32 lanes).
const LANES: usize = 8;
/// Registers per tile along the outputs.
const TILE_BLOCKS: usize = 2;
/// The largest magnitude a quantised weight or activation takes: 11 significant bits.
pub const LEVELS: f32 = 1023.0;
/// The longest input row whose sums cannot overflow i32: each term is at most
/// `LEVELS`², and 2,052 of them stay below 2³¹.
pub const MAX_INPUT: usize = (i32::MAX as usize) / (LEVELS as usize * LEVELS as usize);

/// Whether this CPU can run the integer path (AVX2; FMA for the final scaling).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A weight matrix W (`output` x `input`, row-major as PyTorch stores it) quantised per
/// output row: per block of 8 outputs, per pair of inputs (k, k+1), the 8 lanes
/// (W[o][k], W[o][k+1]) as i16, which is the operand order `vpmaddwd` pairs them in.
pub struct Int16Weights {
    data: Vec<i16>,
    /// Per output: the value of one integer step.
    scales: Vec<f32>,
    input: usize,
    /// Input pairs per row (`input` rounded up to even, halved; the odd tail is zero).
    pairs: usize,
    output: usize,
}

impl Int16Weights {
    /// None when `output` is not a multiple of 8 or `input` exceeds [`MAX_INPUT`] (then
    /// the caller keeps another path).
    pub fn pack(weight: &[f32], input: usize, output: usize) -> Option<Self> {
        if output % LANES != 0 || input > MAX_INPUT || weight.len() != input * output {
            return None;
        }
        let pairs = input.div_ceil(2);
        let scales: Vec<f32> = weight.chunks_exact(input).map(step_of).collect();
        let mut data = vec![0i16; output * pairs * 2];
        for (o, (row, &step)) in weight.chunks_exact(input).zip(&scales).enumerate() {
            let (block, lane) = (o / LANES, o % LANES);
            for (k, &w) in row.iter().enumerate() {
                data[((block * pairs + k / 2) * LANES + lane) * 2 + k % 2] = level(w, 1.0 / step);
            }
        }
        Some(Self { data, scales, input, pairs, output })
    }

    /// `out += x · Wᵀ`: `x` is `rows` x `input`, `out` is `rows` x `output` (row-major;
    /// callers pre-fill `out` with the bias). Panics if the CPU lacks AVX2: check
    /// [`available`] first.
    pub fn multiply_add(&self, x: &[f32], rows: usize, out: &mut [f32]) {
        assert!(available(), "the int16 path needs AVX2 and FMA");
        assert_eq!(x.len(), rows * self.input);
        assert_eq!(out.len(), rows * self.output);
        let quantised = quantise_rows(x, rows, self.input, self.pairs);
        tiled::multiply_add(self, &quantised, self.pairs + 1, rows, out);
    }
}

/// The value of one integer step for a row whose largest magnitude is that of `row`
/// (1 for an all-zero row, whose integers are then all zero).
fn step_of(row: &[f32]) -> f32 {
    let largest = row.iter().fold(0f32, |m, v| m.max(v.abs()));
    if largest > 0.0 && largest.is_finite() { largest / LEVELS } else { 1.0 }
}

/// `v` in integer steps (`inverse_step` = 1 / step), rounded to nearest, ties to even.
/// Adding and subtracting 1.5·2²³ rounds any |x| < 2²² that way in plain f32 arithmetic,
/// which vectorises (`round_ties_even` became a libm call per value, 2 % of a query).
#[inline(always)]
fn level(v: f32, inverse_step: f32) -> i16 {
    const ROUNDER: f32 = 12_582_912.0;
    (v * inverse_step + ROUNDER - ROUNDER) as i16
}

/// Each row of `x` quantised: its step (f32 bits), then its integer pairs (the low half of
/// each u32 is input 2p, the high half input 2p+1). The step travels in the row so the
/// tile that reads the row finds it there.
fn quantise_rows(x: &[f32], rows: usize, input: usize, pairs: usize) -> Vec<u32> {
    let row_len = pairs + 1;
    let mut quantised = vec![0u32; rows * row_len];
    quantised
        .par_chunks_mut(ROWS_PER_TASK * row_len)
        .zip(x.par_chunks(ROWS_PER_TASK * input))
        .with_min_len(parallel::min_len())
        .for_each(|(quantised, x)| {
            for (target, row) in quantised.chunks_exact_mut(row_len).zip(x.chunks_exact(input)) {
                let step = step_of(row);
                target[0] = step.to_bits();
                quantise_row(row, 1.0 / step, &mut target[1..]);
            }
        });
    quantised
}

simd_dispatch!(fn quantise_row(row: &[f32], inverse_step: f32, target: &mut [u32]) => quantise_row_portable);

/// `target[p]` = (round(row[2p] / step), round(row[2p+1] / step)) as two i16 halves.
#[inline(always)]
fn quantise_row_portable(row: &[f32], inverse_step: f32, target: &mut [u32]) {
    let bits = |v: f32| level(v, inverse_step) as u16 as u32;
    let mut pairs = row.chunks_exact(2);
    for (t, pair) in target.iter_mut().zip(&mut pairs) {
        *t = bits(pair[0]) | bits(pair[1]) << 16;
    }
    if let [last] = pairs.remainder() {
        target[row.len() / 2] = bits(*last);
    }
}

impl TiledProduct for Int16Weights {
    type Activation = u32;
    const LANES: usize = LANES;
    const TILE_BLOCKS: usize = TILE_BLOCKS;

    fn output(&self) -> usize {
        self.output
    }

    /// `x` points at rows of [`quantise_rows`]: a step, then `pairs` integer pairs.
    unsafe fn tile(&self, x: *const u32, rows: usize, first_block: usize, blocks: usize, out: *mut f32) {
        let w = self.data[first_block * self.pairs * LANES * 2..].as_ptr();
        let scales = self.scales[first_block * LANES..].as_ptr();
        // SAFETY: forwarded from `TiledProduct::tile`'s contract; `w` and `scales` start
        // the packed blocks first_block..first_block+blocks.
        unsafe { tile_dispatch(rows, blocks, Tile { x, w, scales, pairs: self.pairs, out, out_stride: self.output }) }
    }
}

#[derive(Clone, Copy)]
struct Tile {
    x: *const u32,
    w: *const i16,
    scales: *const f32,
    pairs: usize,
    out: *mut f32,
    out_stride: usize,
}

/// Run the kernel instantiated for this tile's shape (rows 1..=6, blocks 1..=2).
///
/// # Safety
/// The CPU must have AVX2 and FMA, and `tile` must describe live buffers of that shape.
unsafe fn tile_dispatch(rows: usize, blocks: usize, tile: Tile) {
    // SAFETY: forwarded from this function's contract.
    unsafe { tiled::dispatch_tile!(kernel, tile, rows, blocks, [1], 2) }
}

/// `R` rows x `B`·8 outputs: exact i32 sums over every input pair, then each output adds
/// its sum times the two rows' steps.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel<const R: usize, const B: usize>(t: Tile) {
    // SAFETY: `tile_dispatch`'s contract: the features are present and every pointer
    // plus offset below stays inside the buffers the tile describes.
    unsafe {
        let block_stride = t.pairs * LANES * 2; // i16s per 8-output block
        let row_len = t.pairs + 1; // the step, then the pairs
        let mut acc = [[_mm256_setzero_si256(); B]; R];
        for p in 0..t.pairs {
            let mut w = [_mm256_setzero_si256(); B];
            for (b, v) in w.iter_mut().enumerate() {
                *v = _mm256_loadu_si256(t.w.add(b * block_stride + p * LANES * 2) as *const __m256i);
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let x = _mm256_set1_epi32(*t.x.add(r * row_len + 1 + p) as i32);
                for (a, v) in row.iter_mut().zip(&w) {
                    *a = _mm256_add_epi32(*a, _mm256_madd_epi16(x, *v));
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            let row_step = _mm256_set1_ps(f32::from_bits(*t.x.add(r * row_len)));
            for (b, sum) in row.iter().enumerate() {
                let step = _mm256_mul_ps(row_step, _mm256_loadu_ps(t.scales.add(b * LANES)));
                let target = t.out.add(r * t.out_stride + b * LANES);
                _mm256_storeu_ps(target, _mm256_fmadd_ps(_mm256_cvtepi32_ps(*sum), step, _mm256_loadu_ps(target)));
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn kernel<const R: usize, const B: usize>(_: Tile) {
    unreachable!("the int16 path is only chosen on x86-64 with AVX2 and FMA")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiled::test_cases::{bias_rows, random_product};
    use proptest::prelude::*;

    /// x rounded the way the product rounds it: to a multiple of its row's step.
    fn rounded(row: &[f32]) -> Vec<f64> {
        let step = step_of(row);
        row.iter().map(|&v| level(v, 1.0 / step) as f64 * step as f64).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// The integer product equals the plain product of the rounded operands (its sums
        /// are exact), for every tile shape: rows that do and do not fill a tile, one or
        /// two blocks, odd inputs, and batches past one task's rows.
        #[test]
        fn the_integer_product_equals_the_product_of_the_rounded_operands(
            rows in prop_oneof![1usize..15, 49usize..60],
            input in 1usize..70,
            blocks in 1usize..7,
            seed in any::<u64>(),
        ) {
            if !available() {
                return Ok(()); // nothing to run on this CPU (the encoder never packs here)
            }
            let output = blocks * LANES;
            let (weight, x, bias) = random_product(seed, rows, input, output);
            let packed = Int16Weights::pack(&weight, input, output).unwrap();
            let mut out = bias_rows(rows, &bias);
            packed.multiply_add(&x, rows, &mut out);
            let w: Vec<Vec<f64>> = weight.chunks_exact(input).map(rounded).collect();
            for r in 0..rows {
                let xr = rounded(&x[r * input..(r + 1) * input]);
                for o in 0..output {
                    let want = bias[o] as f64 + xr.iter().zip(&w[o]).map(|(a, b)| a * b).sum::<f64>();
                    let got = out[r * output + o] as f64;
                    prop_assert!((got - want).abs() <= 1e-5 * (1.0 + want.abs()), "{} vs {}", got, want);
                }
            }
        }

        /// Against the exact f32 product, the error stays inside the rounding bound: each
        /// operand moves by at most half a step, so |error| ≤ Σ_k (|x|·½step_w + |w|·½step_x + ¼step_x·step_w).
        #[test]
        fn the_error_against_the_exact_product_is_within_the_rounding_bound(
            rows in 1usize..8,
            input in 1usize..400,
            seed in any::<u64>(),
        ) {
            if !available() {
                return Ok(());
            }
            let output = 16;
            let (weight, x, bias) = random_product(seed, rows, input, output);
            let packed = Int16Weights::pack(&weight, input, output).unwrap();
            let mut out = bias_rows(rows, &bias);
            packed.multiply_add(&x, rows, &mut out);
            for r in 0..rows {
                let xr = &x[r * input..(r + 1) * input];
                let sx = step_of(xr) as f64;
                for o in 0..output {
                    let wr = &weight[o * input..(o + 1) * input];
                    let sw = step_of(wr) as f64;
                    let exact = bias[o] as f64 + xr.iter().zip(wr).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>();
                    let bound: f64 = xr.iter().zip(wr).map(|(&a, &b)| (a.abs() as f64) * sw / 2.0 + (b.abs() as f64) * sx / 2.0 + sx * sw / 4.0).sum();
                    let got = out[r * output + o] as f64;
                    prop_assert!((got - exact).abs() <= bound + 1e-5 * (1.0 + exact.abs()), "{} vs {} (bound {})", got, exact, bound);
                }
            }
        }
    }

    #[test]
    fn shapes_the_kernel_cannot_take_are_not_packed() {
        assert!(Int16Weights::pack(&[0.0; 3 * 12], 3, 12).is_none(), "outputs not a multiple of 8");
        let wide = MAX_INPUT + 1;
        assert!(Int16Weights::pack(&vec![0.0; wide * 8], wide, 8).is_none(), "sums could overflow i32");
    }

    #[test]
    fn zero_rows_and_zero_weights_leave_the_bias() {
        if !available() {
            return;
        }
        let (input, output) = (5, 8);
        let packed = Int16Weights::pack(&vec![0.0; input * output], input, output).unwrap();
        let bias: Vec<f32> = (0..output).map(|o| o as f32 - 3.5).collect();
        let mut out = bias_rows(2, &bias);
        packed.multiply_add(&[0.0, 1.0, -2.0, 0.5, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0], 2, &mut out);
        assert_eq!(out, bias_rows(2, &bias));
    }
}
