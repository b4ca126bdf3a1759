//! `out += x · Wᵀ` in bfloat16 with f32 accumulation, for CPUs with AVX512-BF16 (AMD
//! Zen 4 and later, Intel Cooper Lake / Sapphire Rapids and later).
//!
//! One `vdpbf16ps` multiplies 32 bf16 pairs and accumulates into 16 f32 lanes: twice the
//! multiply-adds of an f32 FMA, from half the bytes. The encoder's weights are packed
//! once, at load, in exactly the order the instruction reads them; MiniLM's 42 MB of f32
//! weights become 21 MB, which fits this machine's L3, so a one-query forward pass no
//! longer streams its weights from memory. Activations are rounded to bf16 as each
//! product starts; sums stay f32. The cost is precision: about 3 significant digits per
//! product, which moves sentence vectors by a cosine of ~1e-4 (tested against the
//! reference vectors, which must stay >= 0.99; see `embed.rs`).
//!
//! The micro-kernel keeps a tile of up to 6 token rows x 64 outputs in 24 registers,
//! loads 4 weight vectors and broadcasts 6 activation pairs per input pair, and issues
//! 24 `vdpbf16ps`. [`crate::tiled`] schedules the tiles over the cores.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use rayon::prelude::*;

use crate::tiled::{self, TiledProduct};

/// Outputs per register (16 f32 lanes).
const LANES: usize = 16;
/// Registers per tile along the outputs.
const TILE_BLOCKS: usize = 4;

/// Whether this CPU can run the bf16 path.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// f32 -> bf16 with round-to-nearest-even (what `vcvtne2ps2bf16` does).
#[inline(always)]
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16; // stay a (quiet) NaN
    }
    ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

pub fn from_bf16(x: u16) -> f32 {
    f32::from_bits((x as u32) << 16)
}

/// A weight matrix W (`output` x `input`, row-major as PyTorch stores it) packed for
/// `vdpbf16ps`: per block of 16 outputs, per input pair (k, k+1), 16 lanes of
/// (W[o][k], W[o][k+1]). An odd input is padded with a zero column.
pub struct PackedWeights {
    data: Vec<u16>,
    input: usize,
    output: usize,
}

impl PackedWeights {
    /// None when `output` is not a multiple of 16 (then the caller keeps f32).
    pub fn pack(weight: &[f32], input: usize, output: usize) -> Option<Self> {
        if output % LANES != 0 || weight.len() != input * output {
            return None;
        }
        let pairs = input.div_ceil(2);
        let mut data = vec![0u16; output * pairs * 2];
        for block in 0..output / LANES {
            for pair in 0..pairs {
                for lane in 0..LANES {
                    let o = block * LANES + lane;
                    for half in 0..2 {
                        let k = 2 * pair + half;
                        let value = if k < input { weight[o * input + k] } else { 0.0 };
                        data[((block * pairs + pair) * LANES + lane) * 2 + half] = to_bf16(value);
                    }
                }
            }
        }
        Some(Self { data, input, output })
    }

    fn pairs(&self) -> usize {
        self.input.div_ceil(2)
    }

    /// `out += x · Wᵀ`: `x` is `rows` x `input`, `out` is `rows` x `output` (row-major;
    /// callers pre-fill `out` with the bias). Panics if the CPU lacks AVX512-BF16: check
    /// [`available`] first.
    pub fn multiply_add(&self, x: &[f32], rows: usize, out: &mut [f32]) {
        assert!(available(), "the bf16 path needs AVX512-BF16");
        assert_eq!(x.len(), rows * self.input);
        let activations = pack_activations(x, rows, self.input);
        if crate::amx::fits(self.pairs()) {
            // the same packing, 256 times the multiply-adds per instruction (see `amx`)
            crate::amx::multiply_add(&self.data, self.pairs(), self.output, &activations, rows, out);
            return;
        }
        tiled::multiply_add(self, &activations, self.pairs(), rows, out);
    }
}

impl TiledProduct for PackedWeights {
    type Activation = u32;
    const LANES: usize = LANES;
    const TILE_BLOCKS: usize = TILE_BLOCKS;

    fn output(&self) -> usize {
        self.output
    }

    unsafe fn tile(&self, x: *const u32, rows: usize, first_block: usize, blocks: usize, out: *mut f32) {
        let pairs = self.pairs();
        let w = self.data[first_block * pairs * LANES * 2..].as_ptr();
        // SAFETY: forwarded from `TiledProduct::tile`'s contract; `w` starts the packed
        // blocks first_block..first_block+blocks.
        unsafe { tile_dispatch(rows, blocks, Tile { x, w, pairs, out, out_stride: self.output }) }
    }
}

/// Rows of `x` rounded to bf16 and paired along the input: one u32 per (k, k+1), the
/// even k in the low half, as `vdpbf16ps` reads a broadcast pair.
fn pack_activations(x: &[f32], rows: usize, input: usize) -> Vec<u32> {
    let pairs = input.div_ceil(2);
    let mut packed = vec![0u32; rows * pairs];
    packed.par_chunks_mut(pairs * 64).zip(x.par_chunks(input * 64)).with_min_len(crate::parallel::min_len()).for_each(|(dst, src)| pack_rows(dst, src, input));
    packed
}

simd_dispatch!(fn pack_rows(dst: &mut [u32], src: &[f32], input: usize) => pack_rows_portable);

#[inline(always)]
fn pack_rows_portable(dst: &mut [u32], src: &[f32], input: usize) {
    let pairs = input.div_ceil(2);
    for (d, s) in dst.chunks_mut(pairs).zip(src.chunks(input)) {
        for (slot, pair) in d.iter_mut().zip(s.chunks(2)) {
            let lo = to_bf16(pair[0]) as u32;
            let hi = pair.get(1).map_or(0, |&v| to_bf16(v) as u32);
            *slot = lo | (hi << 16);
        }
    }
}

#[derive(Clone, Copy)]
struct Tile {
    x: *const u32,
    w: *const u16,
    pairs: usize,
    out: *mut f32,
    out_stride: usize,
}

/// Run the kernel instantiated for this tile's shape (rows 1..=6, blocks 1..=4).
///
/// # Safety
/// The CPU must have AVX512-BF16, and `tile` must describe live buffers of that shape.
unsafe fn tile_dispatch(rows: usize, blocks: usize, tile: Tile) {
    // SAFETY: forwarded from this function's contract.
    unsafe { tiled::dispatch_tile!(kernel, tile, rows, blocks, [1, 2, 3], 4) }
}

/// `R` rows x `B`·16 outputs: accumulators start from `out` (the bias), every input pair
/// adds one `vdpbf16ps` per accumulator, and the tile is stored back once.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn kernel<const R: usize, const B: usize>(t: Tile) {
    // SAFETY: `tile_dispatch`'s contract: the features are present and every pointer
    // plus offset below stays inside the buffers the tile describes.
    unsafe {
        let block_stride = t.pairs * LANES * 2; // u16s per 16-output block
        let mut acc = [[_mm512_setzero_ps(); B]; R];
        for (r, row) in acc.iter_mut().enumerate() {
            for (b, a) in row.iter_mut().enumerate() {
                *a = _mm512_loadu_ps(t.out.add(r * t.out_stride + b * LANES));
            }
        }
        for pair in 0..t.pairs {
            let mut w = [_mm512_setzero_si512(); B];
            for (b, v) in w.iter_mut().enumerate() {
                *v = _mm512_loadu_si512(t.w.add(b * block_stride + pair * LANES * 2) as *const _);
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(*t.x.add(r * t.pairs + pair) as i32));
                for (a, v) in row.iter_mut().zip(&w) {
                    *a = _mm512_dpbf16_ps(*a, x, std::mem::transmute::<__m512i, __m512bh>(*v));
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (b, a) in row.iter().enumerate() {
                _mm512_storeu_ps(t.out.add(r * t.out_stride + b * LANES), *a);
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn kernel<const R: usize, const B: usize>(_: Tile) {
    unreachable!("the bf16 path is only chosen on x86-64 with AVX512-BF16")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiled::test_cases::{bias_rows, random_product};
    use proptest::prelude::*;

    fn reference(weight: &[f32], x: &[f32], rows: usize, input: usize, output: usize, bias: &[f32]) -> Vec<f32> {
        let round = |v: f32| from_bf16(to_bf16(v)) as f64;
        let mut out = vec![0f32; rows * output];
        for r in 0..rows {
            for o in 0..output {
                let sum: f64 = (0..input).map(|k| round(x[r * input + k]) * round(weight[o * input + k])).sum();
                out[r * output + o] = (sum + bias[o] as f64) as f32;
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn the_packed_product_equals_the_bf16_rounded_reference(
            rows in 1usize..15,
            input in 1usize..70,
            blocks in 1usize..7,
            seed in any::<u64>(),
        ) {
            if !available() {
                // Nothing to check on a CPU without AVX512-BF16 (the encoder never packs
                // there). Not prop_assume!: rejecting every case fails the whole test.
                return Ok(());
            }
            let output = blocks * LANES;
            let (weight, x, bias) = random_product(seed, rows, input, output);
            let packed = PackedWeights::pack(&weight, input, output).unwrap();
            let mut out: Vec<f32> = bias_rows(rows, &bias);
            packed.multiply_add(&x, rows, &mut out);
            let expected = reference(&weight, &x, rows, input, output, &bias);
            for (got, want) in out.iter().zip(&expected) {
                prop_assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()) * input as f32, "{got} vs {want}");
            }
        }

        /// Whole tile rows (inputs in multiples of 32), up to three row tiles: the AMX
        /// product and the AVX-512 one both equal the bf16-rounded reference.
        #[test]
        fn the_amx_product_equals_the_bf16_rounded_reference_and_the_avx512_one(
            rows in 1usize..40,
            steps in 1usize..4,
            blocks in 1usize..7,
            seed in any::<u64>(),
        ) {
            if !crate::amx::available() {
                return Ok(()); // nothing to check on a CPU (or OS) without AMX
            }
            let (input, output) = (steps * 32, blocks * LANES);
            let (weight, x, bias) = random_product(seed, rows, input, output);
            let packed = PackedWeights::pack(&weight, input, output).unwrap();
            let activations = pack_activations(&x, rows, input);
            let mut amx: Vec<f32> = bias_rows(rows, &bias);
            crate::amx::multiply_add(&packed.data, packed.pairs(), output, &activations, rows, &mut amx);
            let mut avx512: Vec<f32> = bias_rows(rows, &bias);
            tiled::multiply_add(&packed, &activations, packed.pairs(), rows, &mut avx512);
            let expected = reference(&weight, &x, rows, input, output, &bias);
            for ((a, v), want) in amx.iter().zip(&avx512).zip(&expected) {
                prop_assert!((a - want).abs() <= 1e-4 * (1.0 + want.abs()) * input as f32, "amx {a} vs {want}");
                prop_assert!((v - want).abs() <= 1e-4 * (1.0 + want.abs()) * input as f32, "avx512 {v} vs {want}");
            }
        }

        #[test]
        fn rounding_to_bf16_is_to_nearest_even_and_round_trips(bits in any::<u32>()) {
            let x = f32::from_bits(bits);
            prop_assume!(x.is_finite());
            let back = from_bf16(to_bf16(x));
            if back.is_finite() {
                // Within half a bf16 ulp (8 bits of mantissa).
                prop_assert!((back - x).abs() <= x.abs() * 2f32.powi(-8) + f32::MIN_POSITIVE);
            }
            prop_assert_eq!(to_bf16(back), to_bf16(x), "a bf16 value rounds to itself");
        }
    }

    #[test]
    fn an_output_that_is_not_a_multiple_of_16_is_not_packed() {
        assert!(PackedWeights::pack(&[0.0; 3 * 17], 3, 17).is_none());
    }
}
