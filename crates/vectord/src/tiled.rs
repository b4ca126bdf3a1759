//! The schedule shared by the packed-weight products ([`crate::bf16`], [`crate::f16_weights`]):
//! `out += x · Wᵀ` computed tile by tile, a tile being up to [`TILE_ROWS`] token rows by
//! one group of output blocks, held in registers by the product's own micro-kernel.
//!
//! A query's few rows split the output groups across the cores. A batch splits into runs
//! of [`ROWS_PER_TASK`] rows, each task sweeping every output group over its own rows, so
//! its activations stay in L2 (sweeping all rows per output group re-read a batch's
//! activations from memory once per group: the f16 path measured that on Zen 3, and the
//! bf16 path ran that way until session 6).

use rayon::prelude::*;

use crate::{parallel, SharedOut};

/// Rows per tile (the micro-kernels are instantiated for 1..=6).
pub(crate) const TILE_ROWS: usize = 6;
/// Rows per task for a batch (a multiple of the tile): 48 rows of 1,536 f32 activations are
/// 288 KB, inside a core's L2 on every CPU this project has met.
pub(crate) const ROWS_PER_TASK: usize = 48;

/// `$kernel::<R, B>($tile)` for a tile of `$rows` rows (R = 1..=[`TILE_ROWS`]) and `$blocks`
/// output blocks (B = one of the listed counts, else `$last`): the micro-kernels are
/// instantiated per tile shape, so their row and block loops unroll.
macro_rules! dispatch_tile {
    ($kernel:ident, $tile:expr, $rows:expr, $blocks:expr, [$($b:literal),*], $last:literal) => {
        match $blocks {
            $($b => $crate::tiled::dispatch_rows!($kernel, $tile, $rows, $b),)*
            _ => $crate::tiled::dispatch_rows!($kernel, $tile, $rows, $last),
        }
    };
}

/// The row half of [`dispatch_tile`], for one block count `$b`.
macro_rules! dispatch_rows {
    ($kernel:ident, $tile:expr, $rows:expr, $b:literal) => {
        match $rows {
            1 => $kernel::<1, $b>($tile),
            2 => $kernel::<2, $b>($tile),
            3 => $kernel::<3, $b>($tile),
            4 => $kernel::<4, $b>($tile),
            5 => $kernel::<5, $b>($tile),
            _ => $kernel::<6, $b>($tile),
        }
    };
}
pub(crate) use {dispatch_rows, dispatch_tile};

/// A weight matrix packed for one micro-kernel.
pub(crate) trait TiledProduct: Sync {
    /// One activation element as the kernel reads it (f32, or a bf16 pair in a u32).
    type Activation: Sync;
    /// Outputs per block (one register) and blocks per output group.
    const LANES: usize;
    const TILE_BLOCKS: usize;

    fn output(&self) -> usize;

    /// `out[r][first_block·LANES ..] += x[r] · W[blocks]ᵀ` for `rows` rows.
    ///
    /// # Safety
    /// The CPU has the kernel's features; `x` points at `rows` activation rows of this
    /// product's row length; `out` at the first output of the tile, in a buffer whose rows
    /// are `output()` long; no other task writes those elements meanwhile.
    unsafe fn tile(&self, x: *const Self::Activation, rows: usize, first_block: usize, blocks: usize, out: *mut f32);
}

/// `out += x · Wᵀ`: `x` is `rows` activation rows of `row_len` elements, `out` is `rows` x
/// `output()` (pre-filled with the bias). The caller has checked the CPU's features.
pub(crate) fn multiply_add<P: TiledProduct>(product: &P, x: &[P::Activation], row_len: usize, rows: usize, out: &mut [f32]) {
    let output = product.output();
    assert_eq!(x.len(), rows * row_len);
    assert_eq!(out.len(), rows * output);
    let groups = output.div_ceil(P::LANES * P::TILE_BLOCKS);
    if rows <= ROWS_PER_TASK {
        let target = SharedOut(out.as_mut_ptr());
        (0..groups).into_par_iter().with_min_len(parallel::min_len()).for_each(|group| sweep(product, x, row_len, rows, target, group));
    } else {
        out.par_chunks_mut(ROWS_PER_TASK * output).zip(x.par_chunks(ROWS_PER_TASK * row_len)).with_min_len(parallel::min_len()).for_each(|(out, x)| {
            let target = SharedOut(out.as_mut_ptr());
            (0..groups).for_each(|group| sweep(product, x, row_len, x.len() / row_len, target, group));
        });
    }
}

/// Output group `group` of every row of `x`, tile by tile.
fn sweep<P: TiledProduct>(product: &P, x: &[P::Activation], row_len: usize, rows: usize, target: SharedOut, group: usize) {
    let output = product.output();
    let first_block = group * P::TILE_BLOCKS;
    let blocks = P::TILE_BLOCKS.min(output / P::LANES - first_block);
    let mut row = 0;
    while row < rows {
        let tile_rows = TILE_ROWS.min(rows - row);
        // SAFETY: `multiply_add`'s caller checked the features; the tile reads rows
        // row..row+tile_rows of x and writes only its own output columns of those rows of
        // `target` (rows x output): concurrent sweeps write disjoint columns or rows.
        unsafe {
            product.tile(x.as_ptr().add(row * row_len), tile_rows, first_block, blocks, target.at(row * output + first_block * P::LANES))
        };
        row += tile_rows;
    }
}

/// Inputs for the packed products' property tests.
#[cfg(test)]
pub(crate) mod test_cases {
    /// W (`output` x `input`), x (`rows` x `input`) and a bias, values in [-1, 1] from `seed`.
    pub(crate) fn random_product(seed: u64, rows: usize, input: usize, output: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let mut state = seed | 1;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 2001) as f32 / 1000.0 - 1.0
        };
        let weight = (0..input * output).map(|_| next()).collect();
        let x = (0..rows * input).map(|_| next()).collect();
        let bias = (0..output).map(|_| next()).collect();
        (weight, x, bias)
    }

    /// The output buffer a product starts from: `bias` on each of `rows` rows.
    pub(crate) fn bias_rows(rows: usize, bias: &[f32]) -> Vec<f32> {
        (0..rows).flat_map(|_| bias.iter().copied()).collect()
    }
}
