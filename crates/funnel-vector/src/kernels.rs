//! Fused inference kernels for the encoder. Each reads and writes the activations once and
//! splits its rows over the current rayon pool (the masked softmax splits by batch item):
//! all cores for a large batch, one thread inside each worker when [`crate::Embedder`]
//! runs batches side by side. candle's own
//! elementwise operations share one process-wide pool that runs a single operation at a
//! time, so two workers using them would take turns instead of running together.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

/// An activation after a dense layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Activation {
    /// x · Φ(x): exact (erf) or the tanh approximation.
    Gelu {
        exact: bool,
    },
    Relu,
}

/// About this many values per rayon task.
const TASK: usize = 16_384;

fn values<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else { candle_core::bail!("{op}: f32 only") };
    let Some((start, end)) = layout.contiguous_offsets() else { candle_core::bail!("{op}: contiguous input only") };
    Ok(&data[start..end])
}

/// `x + bias` over the last dimension, then `activation`, in one pass.
pub(crate) fn bias_activation(
    x: &Tensor,
    bias: &Tensor,
    activation: Option<Activation>,
) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op2_no_bwd(bias, &BiasActivation(activation))
}

/// `x + bias + residual` (bias over the last dimension), in one pass.
pub(crate) fn bias_residual(x: &Tensor, bias: &Tensor, residual: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op3_no_bwd(&residual.contiguous()?, bias, &PeriodicSum)
}

/// Softmax over the last dimension of attention scores (`batch × heads × queries × keys`)
/// after adding `additive` (`batch × keys`: 0 for tokens, a large negative for padding).
pub(crate) fn masked_softmax(scores: &Tensor, additive: &Tensor) -> candle_core::Result<Tensor> {
    scores.contiguous()?.apply_op2_no_bwd(&additive.contiguous()?, &MaskedSoftmax)
}

/// `words + types + positions`, the positions (`tokens × hidden`) broadcast over the batch.
pub(crate) fn embedding_sum(words: &Tensor, types: &Tensor, positions: &Tensor) -> candle_core::Result<Tensor> {
    words.contiguous()?.apply_op3_no_bwd(&types.contiguous()?, &positions.contiguous()?, &PeriodicSum)
}

/// Rows of `width` values per task, at least one.
fn rows_per_task(width: usize) -> usize {
    (TASK / width.max(1)).max(1)
}

struct BiasActivation(Option<Activation>);

impl CustomOp2 for BiasActivation {
    fn name(&self) -> &'static str {
        "bias-activation"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, bias) = (values(s1, l1, self.name())?, values(s2, l2, self.name())?);
        if bias.is_empty() || l1.dims().last() != Some(&bias.len()) || l2.dims().len() != 1 {
            candle_core::bail!("bias of {} values for rows of {:?}", bias.len(), l1.shape());
        }
        let mut out = vec![0f32; x.len()];
        let (arch, chunk) = (pulp::Arch::new(), bias.len() * rows_per_task(bias.len()));
        out.par_chunks_mut(chunk).zip(x.par_chunks(chunk)).for_each(|(out, x)| {
            arch.dispatch(Epilogue { x, bias, activation: self.0, out });
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Rows of `x` plus the bias, then an activation, compiled for the CPU's
/// widest SIMD (the loops vectorise, erf included).
struct Epilogue<'a> {
    x: &'a [f32],
    bias: &'a [f32],
    activation: Option<Activation>,
    out: &'a mut [f32],
}

impl pulp::WithSimd for Epilogue<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let width = self.bias.len();
        for (out, x) in self.out.chunks_mut(width).zip(self.x.chunks(width)) {
            for ((o, &x), &b) in out.iter_mut().zip(x).zip(self.bias) {
                *o = x + b;
            }
            match self.activation {
                None => {}
                Some(Activation::Relu) => out.iter_mut().for_each(|o| *o = o.max(0.0)),
                Some(Activation::Gelu { exact: true }) => {
                    out.iter_mut().for_each(|o| *o = 0.5 * *o * (1.0 + erf(*o * std::f32::consts::FRAC_1_SQRT_2)))
                }
                Some(Activation::Gelu { exact: false }) => out.iter_mut().for_each(|o| {
                    let inner = (2.0 / std::f32::consts::PI).sqrt() * (*o + 0.044_715 * *o * *o * *o);
                    *o = 0.5 * *o * (1.0 + inner.tanh());
                }),
            }
        }
    }
}

/// erf for f32 as a rational function of x on [-4, 4] (odd numerator of degree 13, even
/// denominator of degree 8; beyond ±4 erf is ±1 in f32). Branch-free, so the compiler
/// vectorises it (plain multiply-adds: `mul_add` would call a software fma on baseline
/// x86-64); within 1e-6 of libm's `erff` (tested).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    for c in [-2.101_024e-6, -5.692_506_4e-5, -7.349_906e-4, -2.9546e-3, -1.609_603_3e-2] {
        p = x2 * p + c;
    }
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    for c in [-1.682_827e-3, -7.373_329e-3, -1.426_473_9e-2] {
        q = x2 * q + c;
    }
    x * p / q
}

struct MaskedSoftmax;

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "masked-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (scores, additive) = (values(s1, l1, self.name())?, values(s2, l2, self.name())?);
        let (batch, heads, queries, keys) = l1.shape().dims4()?;
        if l2.shape().dims2()? != (batch, keys) {
            candle_core::bail!("masked-softmax: mask {:?} for scores {:?}", l2.shape(), l1.shape());
        }
        if scores.is_empty() {
            return Ok((CpuStorage::F32(Vec::new()), l1.shape().clone()));
        }
        let mut out = vec![0f32; scores.len()];
        let per_item = heads * queries * keys;
        out.par_chunks_mut(per_item).zip(scores.par_chunks(per_item)).enumerate().for_each(|(b, (out, scores))| {
            let mask = &additive[b * keys..(b + 1) * keys];
            for (out, row) in out.chunks_mut(keys).zip(scores.chunks(keys)) {
                let mut max = f32::NEG_INFINITY;
                for ((o, &s), &m) in out.iter_mut().zip(row).zip(mask) {
                    *o = s + m;
                    max = max.max(*o);
                }
                let mut sum = 0f32;
                for o in out.iter_mut() {
                    *o = (*o - max).exp();
                    sum += *o;
                }
                let scale = 1.0 / sum;
                out.iter_mut().for_each(|o| *o *= scale);
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// `a + b + c`, `a` and `b` of one shape, `c` repeating along them (a bias over rows,
/// positions over a batch).
struct PeriodicSum;

impl CustomOp3 for PeriodicSum {
    fn name(&self) -> &'static str {
        "periodic-sum"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (a, b, c) = (values(s1, l1, self.name())?, values(s2, l2, self.name())?, values(s3, l3, self.name())?);
        let (a_dims, c_dims) = (l1.dims(), l3.dims());
        let trailing = c_dims.len() <= a_dims.len() && a_dims.ends_with(c_dims);
        if l2.dims() != a_dims || c.is_empty() || !trailing {
            candle_core::bail!("{}: shapes {:?}, {:?}, {:?}", self.name(), l1.shape(), l2.shape(), l3.shape());
        }
        let mut out = vec![0f32; a.len()];
        let chunk = c.len() * rows_per_task(c.len());
        out.par_chunks_mut(chunk).zip(a.par_chunks(chunk)).zip(b.par_chunks(chunk)).for_each(|((out, a), b)| {
            for ((out, a), b) in out.chunks_mut(c.len()).zip(a.chunks(c.len())).zip(b.chunks(c.len())) {
                for (((o, &x), &y), &z) in out.iter_mut().zip(a).zip(b).zip(c) {
                    *o = x + y + z;
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn fast_erf_matches_libm() {
        let worst =
            (-600_000..=600_000).map(|i| i as f32 * 1e-5).map(|x| (erf(x) - libm::erff(x)).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-6, "largest difference {worst}");
        assert!((erf(10.0) - 1.0).abs() < 1e-6 && (erf(-10.0) + 1.0).abs() < 1e-6);
    }

    fn close(a: &Tensor, b: &Tensor) {
        let (a, b) =
            (a.flatten_all().unwrap().to_vec1::<f32>().unwrap(), b.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{a:?} vs {b:?}");
        }
    }

    fn random(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let mut state = seed;
        let data: Vec<f32> = (0..n)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 6.0
            })
            .collect();
        Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn fused_kernels_equal_candles_operations() {
        // Enough rows that several rayon tasks split them.
        let (x, bias, residual) = (random(&[3, 50, 384], 1), random(&[384], 2), random(&[3, 50, 384], 3));
        let plain = x.broadcast_add(&bias).unwrap();
        close(&bias_activation(&x, &bias, None).unwrap(), &plain);
        close(&bias_activation(&x, &bias, Some(Activation::Relu)).unwrap(), &plain.relu().unwrap());
        close(&bias_activation(&x, &bias, Some(Activation::Gelu { exact: true })).unwrap(), &plain.gelu_erf().unwrap());
        close(&bias_activation(&x, &bias, Some(Activation::Gelu { exact: false })).unwrap(), &plain.gelu().unwrap());
        close(&bias_residual(&x, &bias, &residual).unwrap(), &(plain + &residual).unwrap());

        let positions = random(&[50, 384], 4);
        close(
            &embedding_sum(&x, &residual, &positions).unwrap(),
            &(&x + &residual).unwrap().broadcast_add(&positions).unwrap(),
        );

        let scores = random(&[2, 3, 4, 5], 5);
        let mask = Tensor::new(&[[0f32, 0.0, 0.0, -1e9, -1e9], [0.0, 0.0, 0.0, 0.0, 0.0]], &Device::Cpu).unwrap();
        let expected =
            candle_nn::ops::softmax_last_dim(&scores.broadcast_add(&mask.reshape((2, 1, 1, 5)).unwrap()).unwrap())
                .unwrap();
        let ours = masked_softmax(&scores, &mask).unwrap();
        close(&ours, &expected);
        // Padding gets no weight at all.
        let first = ours.get(0).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(first.chunks(5).all(|row| row[3] == 0.0 && row[4] == 0.0), "{first:?}");
    }

    #[test]
    fn inputs_of_the_wrong_shape_are_errors() {
        let err = bias_activation(&random(&[2, 5], 1), &random(&[3], 2), None).unwrap_err().to_string();
        assert!(err.contains("bias of 3 values"), "{err}");
        // Dividing the element count is not enough: the bias runs along the last dimension.
        assert!(bias_activation(&random(&[2, 10], 1), &random(&[5], 2), None).is_err());
        assert!(bias_residual(&random(&[2, 4], 1), &random(&[4], 2), &random(&[4, 2], 3)).is_err());
        assert!(embedding_sum(&random(&[2, 3, 4], 1), &random(&[2, 3, 4], 2), &random(&[4, 3], 3)).is_err());
        let mask = random(&[2, 4], 4);
        assert!(masked_softmax(&random(&[2, 1, 4, 4], 5), &mask).is_ok());
        assert!(masked_softmax(&random(&[2, 1, 2, 2], 5), &random(&[2, 2, 1], 4)).is_err());
        assert!(masked_softmax(&random(&[1, 1, 4, 4], 5), &mask).is_err());
    }
}
