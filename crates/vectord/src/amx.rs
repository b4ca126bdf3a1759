//! `out += x · Wᵀ` on Intel AMX tiles, for the bf16-packed weights of [`crate::bf16`].
//!
//! One `tdpbf16ps` multiplies a tile of up to 16 token rows × 32 bf16 inputs by 32 inputs ×
//! 16 outputs and accumulates 16 × 16 f32 sums: 8,192 multiply-adds per instruction, where
//! the AVX-512 kernel's `vdpbf16ps` does 32. The weights need no new layout: the bf16
//! packing (per 16-output block, per input pair, 16 lanes of the pair) is exactly the
//! pair-interleaved layout AMX reads its second operand in, 16 pairs (64 bytes) per tile
//! row; an activation row packed as bf16 pairs is the first operand's row as it stands.
//!
//! Tiles: the sums of up to four 16-output blocks (tmm0–tmm3), the activations (tmm4),
//! the weights of one block (tmm5). Tile registers are configured per task (a thread's
//! tile state is its own) and released after, so the OS has no tile data to save when the
//! thread is switched out. The instructions are written as `asm!`: Rust has no stable
//! AMX intrinsics.
//!
//! Linux hands tile data to a process only once asked (`arch_prctl(ARCH_REQ_XCOMP_PERM)`);
//! [`available`] asks once and says no if the CPU, the OS or that request does.

use std::sync::OnceLock;

use rayon::prelude::*;

use crate::SharedOut;

/// Outputs per tile (16 f32 sums per row).
const LANES: usize = 16;
/// Input pairs per tile row (64 bytes of bf16).
const PAIRS_PER_STEP: usize = 16;
/// Token rows per tile.
const TILE_ROWS: usize = 16;
/// Output blocks whose sums stay in tiles at once (tmm0–tmm3).
const BLOCKS_PER_TASK: usize = 4;

/// Whether this process can run AMX-BF16: the CPU has it, the OS saves tile state, and
/// the kernel granted this process tile data.
pub fn available() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            cpu_and_os_support() && request_tile_data()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// Whether a product with `pairs` input pairs can run here (whole tile rows only).
pub fn fits(pairs: usize) -> bool {
    pairs % PAIRS_PER_STEP == 0 && available()
}

#[cfg(target_arch = "x86_64")]
fn cpu_and_os_support() -> bool {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    // leaf 7 is read on every CPU but trusted only when the maximum leaf reaches it
    let (max_leaf, leaf1, leaf7) = (__cpuid(0).eax, __cpuid(1), __cpuid_count(7, 0));
    let amx_bf16 = leaf7.edx & (1 << 22) != 0;
    let amx_tile = leaf7.edx & (1 << 24) != 0;
    let osxsave = leaf1.ecx & (1 << 27) != 0;
    if max_leaf < 7 || !amx_bf16 || !amx_tile || !osxsave {
        return false;
    }
    let (low, _high): (u32, u32);
    // SAFETY: XGETBV is available when OSXSAVE is set (checked above).
    unsafe { std::arch::asm!("xgetbv", in("ecx") 0u32, out("eax") low, out("edx") _high, options(nomem, nostack)) };
    (low >> 17) & 0b11 == 0b11 // XTILECFG and XTILEDATA state enabled by the OS
}

#[cfg(target_arch = "x86_64")]
fn request_tile_data() -> bool {
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    let ret: i64;
    // SAFETY: a plain Linux system call; it reads no memory of ours and clobbers only
    // what the syscall ABI says (rcx, r11).
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        )
    };
    ret == 0
}

/// The 64-byte tile configuration `ldtilecfg` reads (palette 1).
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    bytes_per_row: [u16; 16],
    rows: [u8; 16],
}

impl TileConfig {
    /// tmm0–tmm4 hold `rows` rows (sums and activations), tmm5 16 rows (weights); 64 bytes each.
    fn for_rows(rows: usize) -> Self {
        let mut config = Self { palette: 1, start_row: 0, reserved: [0; 14], bytes_per_row: [0; 16], rows: [0; 16] };
        for tile in 0..=5 {
            config.bytes_per_row[tile] = 64;
            config.rows[tile] = if tile == 5 { PAIRS_PER_STEP as u8 } else { rows as u8 };
        }
        config
    }
}

/// `out += x · Wᵀ` where `weights` is the bf16 packing of W (`output` / 16 blocks, each
/// `pairs` × 16 lanes × 2), `x` is `rows` rows of `pairs` packed activation pairs, and
/// `out` is `rows` × `output` (pre-filled with the bias). Callers check [`fits`] first.
pub(crate) fn multiply_add(weights: &[u16], pairs: usize, output: usize, x: &[u32], rows: usize, out: &mut [f32]) {
    assert!(fits(pairs), "the AMX path needs AMX-BF16 and whole tile rows");
    assert_eq!(weights.len(), output * pairs * 2);
    assert_eq!(x.len(), rows * pairs);
    assert_eq!(out.len(), rows * output);
    let blocks = output / LANES;
    let groups = blocks.div_ceil(BLOCKS_PER_TASK);
    let row_tiles = rows.div_ceil(TILE_ROWS);
    let target = SharedOut(out.as_mut_ptr());
    (0..row_tiles * groups).into_par_iter().with_min_len(crate::parallel::min_len()).for_each(|task| {
        let (row_tile, group) = (task / groups, task % groups);
        let first_row = row_tile * TILE_ROWS;
        let tile_rows = TILE_ROWS.min(rows - first_row);
        let first_block = group * BLOCKS_PER_TASK;
        let task_blocks = BLOCKS_PER_TASK.min(blocks - first_block);
        // SAFETY: `fits` checked the CPU and the permission; every tile load and store
        // stays inside its buffer: rows first_row..+tile_rows of x and out, the task's own
        // output blocks (disjoint from every other task's), and whole 64-byte weight rows.
        unsafe {
            tile_task(
                weights.as_ptr().add(first_block * pairs * LANES * 2),
                pairs,
                x.as_ptr().add(first_row * pairs),
                tile_rows,
                task_blocks,
                target.at(first_row * output + first_block * LANES),
                output,
            )
        };
    });
}

/// One task: `rows` (≤ 16) token rows × `blocks` (≤ 4) output blocks, over every input.
///
/// # Safety
/// AMX must be [`available`]; `w` points at the first of `blocks` packed blocks of
/// `pairs` pairs each, `x` at `rows` rows of `pairs` u32, `out` at a `rows` × `blocks`·16
/// region of rows `output` floats long.
#[cfg(target_arch = "x86_64")]
unsafe fn tile_task(w: *const u16, pairs: usize, x: *const u32, rows: usize, blocks: usize, out: *mut f32, output: usize) {
    use std::arch::asm;

    let config = TileConfig::for_rows(rows);
    let out_stride = output * 4; // bytes between output rows
    let x_stride = pairs * 4; // bytes between activation rows
    let block_bytes = pairs * LANES * 2 * 2; // bytes per packed 16-output block
    // Each statement names its tile register: asm! cannot take one as an operand.
    macro_rules! each_block {
        ($body:ident) => {
            if blocks > 0 { $body!(0, "tmm0"); }
            if blocks > 1 { $body!(1, "tmm1"); }
            if blocks > 2 { $body!(2, "tmm2"); }
            if blocks > 3 { $body!(3, "tmm3"); }
        };
    }
    // SAFETY: forwarded from this function's contract.
    unsafe {
        asm!("ldtilecfg [{}]", in(reg) &config, options(nostack, readonly));
        macro_rules! load_sums {
            ($i:literal, $t:literal) => {
                asm!(concat!("tileloadd ", $t, ", [{base} + {stride}*1]"), base = in(reg) out.add($i * LANES), stride = in(reg) out_stride, options(nostack, readonly));
            };
        }
        each_block!(load_sums);
        for step in 0..pairs / PAIRS_PER_STEP {
            let activations = x.add(step * PAIRS_PER_STEP);
            asm!("tileloadd tmm4, [{base} + {stride}*1]", base = in(reg) activations, stride = in(reg) x_stride, options(nostack, readonly));
            let weights = (w as *const u8).add(step * PAIRS_PER_STEP * LANES * 4);
            macro_rules! multiply {
                ($i:literal, $t:literal) => {
                    asm!("tileloadd tmm5, [{base} + {stride}*1]", base = in(reg) weights.add($i * block_bytes), stride = in(reg) 64usize, options(nostack, readonly));
                    asm!(concat!("tdpbf16ps ", $t, ", tmm4, tmm5"), options(nostack, nomem));
                };
            }
            each_block!(multiply);
        }
        macro_rules! store_sums {
            ($i:literal, $t:literal) => {
                asm!(concat!("tilestored [{base} + {stride}*1], ", $t), base = in(reg) out.add($i * LANES), stride = in(reg) out_stride, options(nostack));
            };
        }
        each_block!(store_sums);
        asm!("tilerelease", options(nostack, nomem));
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn tile_task(_: *const u16, _: usize, _: *const u32, _: usize, _: usize, _: *mut f32, _: usize) {
    unreachable!("the AMX path is only chosen on x86-64 CPUs that have it")
}
