//! The f32 inner product HNSW traversal calls for every visited node.
//!
//! usearch's own f32 kernel (NumKong's) widens each product to f64 and keeps one chain of
//! multiply-adds: accurate to the last bit, and ~2x slower per query than hnswlib on
//! unit-length MiniLM rows, where an f32 sum is exact enough to rank (ADR-028). This one
//! keeps four independent f32 sums (the core starts two multiply-adds per cycle, each
//! takes ~4 to finish) and reduces them as a tree. One call is one short dot product, so
//! the kernel is chosen once per index, not tested for on every call.

/// `a · b` over `dim` values at each pointer.
pub type InnerProduct = unsafe fn(*const f32, *const f32, usize) -> f32;

/// The fastest kernel this CPU runs, and its name.
pub fn inner_product_kernel() -> (InnerProduct, &'static str) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") {
            return (x86::avx512, "avx512");
        }
        if has!("avx2") && has!("fma") {
            return (x86::avx2, "avx2");
        }
    }
    (portable, "portable")
}

/// # Safety
/// `a` and `b` each point to `dim` readable f32 values.
unsafe fn portable(a: *const f32, b: *const f32, dim: usize) -> f32 {
    // SAFETY: the caller's contract.
    let (a, b) = unsafe { (std::slice::from_raw_parts(a, dim), std::slice::from_raw_parts(b, dim)) };
    crate::dot(a, b)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU has AVX-512F; `a` and `b` each point to `dim` readable f32 values.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512(a: *const f32, b: *const f32, dim: usize) -> f32 {
        // SAFETY: the caller's contract (CPU features, `dim` readable values at each pointer).
        unsafe {
            let mut acc = [_mm512_setzero_ps(); 4];
            let mut i = 0;
            while i + 64 <= dim {
                for (j, sum) in acc.iter_mut().enumerate() {
                    let (x, y) = (_mm512_loadu_ps(a.add(i + 16 * j)), _mm512_loadu_ps(b.add(i + 16 * j)));
                    *sum = _mm512_fmadd_ps(x, y, *sum);
                }
                i += 64;
            }
            while i + 16 <= dim {
                acc[0] = _mm512_fmadd_ps(_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(b.add(i)), acc[0]);
                i += 16;
            }
            if i < dim {
                let mask: __mmask16 = (1u16 << (dim - i)) - 1; // masked lanes are not read
                let (x, y) = (_mm512_maskz_loadu_ps(mask, a.add(i)), _mm512_maskz_loadu_ps(mask, b.add(i)));
                acc[1] = _mm512_fmadd_ps(x, y, acc[1]);
            }
            _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])))
        }
    }

    /// # Safety
    /// The CPU has AVX2 and FMA; `a` and `b` each point to `dim` readable f32 values.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2(a: *const f32, b: *const f32, dim: usize) -> f32 {
        // SAFETY: the caller's contract (CPU features, `dim` readable values at each pointer).
        unsafe {
            let mut acc = [_mm256_setzero_ps(); 4];
            let mut i = 0;
            while i + 32 <= dim {
                for (j, sum) in acc.iter_mut().enumerate() {
                    let (x, y) = (_mm256_loadu_ps(a.add(i + 8 * j)), _mm256_loadu_ps(b.add(i + 8 * j)));
                    *sum = _mm256_fmadd_ps(x, y, *sum);
                }
                i += 32;
            }
            while i + 8 <= dim {
                acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(i)), _mm256_loadu_ps(b.add(i)), acc[0]);
                i += 8;
            }
            let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
            let half = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps(sum, 1));
            let pairs = _mm_add_ps(half, _mm_movehl_ps(half, half));
            let mut total = _mm_cvtss_f32(_mm_add_ss(pairs, _mm_shuffle_ps(pairs, pairs, 1)));
            while i < dim {
                total += *a.add(i) * *b.add(i);
                i += 1;
            }
            total
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
    }

    proptest! {
        /// Every kernel this CPU can run agrees with an f64 sum, at any length (tails
        /// and masks included), within f32 rounding of the magnitudes involved.
        #[test]
        fn every_kernel_matches_the_f64_dot_product(
            pairs in (0usize..200).prop_flat_map(|n| (
                prop::collection::vec(-1.0f32..1.0, n),
                prop::collection::vec(-1.0f32..1.0, n),
            ))
        ) {
            let (a, b) = pairs;
            let want = reference(&a, &b);
            let scale: f64 = a.iter().zip(&b).map(|(&x, &y)| (x as f64 * y as f64).abs()).sum::<f64>() + 1.0;
            let mut kernels: Vec<(InnerProduct, &str)> = vec![(portable, "portable"), inner_product_kernel()];
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                kernels.push((x86::avx2, "avx2"));
            }
            for (kernel, name) in kernels {
                // SAFETY: both vectors hold `a.len()` values; the kernel list holds only
                // kernels this CPU supports.
                let got = unsafe { kernel(a.as_ptr(), b.as_ptr(), a.len()) } as f64;
                prop_assert!((got - want).abs() <= 1e-5 * scale, "{name}: {got} vs {want}");
            }
        }
    }
}
