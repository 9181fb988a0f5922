//! The few dense-vector kernels the factor models need, written so that the compiler
//! vectorises them (plain loops over equal-length slices). They are always inlined, so
//! that inside a `pulp` dispatch they are vectorised for the CPU's widest SIMD; the
//! lanes are explicit, so every CPU computes the same sums in the same order.

/// a · b
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    // Eight partial sums break the dependency chain and let LLVM use SIMD lanes.
    let mut acc = [0f32; 8];
    let chunks = a.len() / 8 * 8;
    for (x, y) in a[..chunks].chunks_exact(8).zip(b[..chunks].chunks_exact(8)) {
        for lane in 0..8 {
            acc[lane] += x[lane] * y[lane];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in a[chunks..].iter().zip(&b[chunks..]) {
        sum += x * y;
    }
    sum
}

/// y += alpha · x
#[inline(always)]
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len(), y.len());
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// out = G · x for a symmetric f × f matrix G stored row-major.
#[inline(always)]
pub fn symv(g: &[f32], x: &[f32], out: &mut [f32]) {
    let f = x.len();
    for (row, o) in g.chunks_exact(f).zip(out.iter_mut()) {
        *o = dot(row, x);
    }
}

/// Gram matrix Σ_i y_i y_iᵀ (+ reg · I) of the rows of `factors` (n × f, row-major).
pub fn gram(factors: &[f32], f: usize, reg: f32) -> Vec<f32> {
    use rayon::prelude::*;
    let arch = pulp::Arch::new();
    let partial = factors
        .par_chunks(f * 1024)
        .map(|block| {
            let mut g = vec![0f32; f * f];
            arch.dispatch(GramBlock { block, f, g: &mut g });
            g
        })
        .reduce(
            || vec![0f32; f * f],
            |mut a, b| {
                axpy(1.0, &b, &mut a);
                a
            },
        );
    let mut g = partial;
    for d in 0..f {
        g[d * f + d] += reg;
    }
    g
}

/// Adds Σ y yᵀ over the rows of `block` to `g`, compiled for the CPU's widest SIMD.
struct GramBlock<'a> {
    block: &'a [f32],
    f: usize,
    g: &'a mut [f32],
}

impl pulp::WithSimd for GramBlock<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let f = self.f;
        for y in self.block.chunks_exact(f) {
            for (a, &ya) in y.iter().enumerate() {
                axpy(ya, y, &mut self.g[a * f..(a + 1) * f]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_agree_with_naive_loops() {
        let a: Vec<f32> = (0..13).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..13).map(|i| 1.0 - i as f32 * 0.25).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-4);
        let rows = [1.0, 2.0, 3.0, 4.0]; // two rows of f = 2
        assert_eq!(gram(&rows, 2, 0.5), [1.0 + 9.0 + 0.5, 2.0 + 12.0, 2.0 + 12.0, 4.0 + 16.0 + 0.5]);
        let mut out = [0.0; 2];
        symv(&[2.0, 1.0, 1.0, 3.0], &[1.0, 1.0], &mut out);
        assert_eq!(out, [3.0, 4.0]);
    }
}
