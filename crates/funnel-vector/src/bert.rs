//! The BERT encoder (Hugging Face `BertModel` layout) on candle: embeddings, then
//! `num_hidden_layers` of self-attention and feed-forward blocks with post-layer-norm.
//!
//! Our own rather than candle-transformers' so that the feed-forward activation runs on
//! every core: candle applies a unary op on one thread, and the exact (erf) GELU over the
//! `batch × tokens × 1536` intermediate was a quarter of the wall time of embedding on two
//! cores. It also spares the build the whole candle-transformers model zoo.

use candle_core::{CpuStorage, CustomOp1, Layout, Module, Shape, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use rayon::prelude::*;
use serde::Deserialize;

/// The fields of `config.json` the encoder reads.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}

/// GELU, x · Φ(x), elementwise on all cores: exact (erf) or the tanh approximation.
struct Gelu {
    exact: bool,
}

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        if self.exact { "gelu-erf-parallel" } else { "gelu-tanh-parallel" }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else { candle_core::bail!("gelu: f32 only") };
        let Some((start, end)) = layout.contiguous_offsets() else { candle_core::bail!("gelu: contiguous input only") };
        let input = &data[start..end];
        let mut out = vec![0f32; input.len()];
        let (exact, arch) = (self.exact, pulp::Arch::new());
        out.par_chunks_mut(8192).zip(input.par_chunks(8192)).for_each(|(out, input)| {
            arch.dispatch(GeluChunk { exact, input, out });
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// One chunk of [`Gelu`], compiled for the CPU's widest SIMD (the erf loop vectorises).
struct GeluChunk<'a> {
    exact: bool,
    input: &'a [f32],
    out: &'a mut [f32],
}

impl pulp::WithSimd for GeluChunk<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let pairs = self.out.iter_mut().zip(self.input);
        if self.exact {
            for (o, &x) in pairs {
                *o = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
            }
        } else {
            for (o, &x) in pairs {
                let inner = (2.0 / std::f32::consts::PI).sqrt() * (x + 0.044_715 * x * x * x);
                *o = 0.5 * x * (1.0 + inner.tanh());
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

#[derive(Debug, Clone, Copy)]
enum Activation {
    Gelu { exact: bool },
    Relu,
}

impl Activation {
    fn parse(name: &str) -> candle_core::Result<Self> {
        match name {
            "gelu" => Ok(Self::Gelu { exact: true }),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Self::Gelu { exact: false }),
            "relu" => Ok(Self::Relu),
            other => candle_core::bail!("hidden_act `{other}` is not supported (gelu, gelu_new, relu)"),
        }
    }

    /// The activation; `differentiable` picks candle's own ops, which have gradients
    /// (the all-cores GELU has none).
    fn apply(self, x: &Tensor, differentiable: bool) -> candle_core::Result<Tensor> {
        match self {
            Self::Gelu { exact: true } if differentiable => x.gelu_erf(),
            Self::Gelu { exact: false } if differentiable => x.gelu(),
            Self::Gelu { exact } => x.contiguous()?.apply_op1_no_bwd(&Gelu { exact }),
            Self::Relu => x.relu(),
        }
    }
}

fn layer_norm(size: usize, eps: f64, vb: VarBuilder) -> candle_core::Result<LayerNorm> {
    Ok(LayerNorm::new(vb.get(size, "weight")?, vb.get(size, "bias")?, eps))
}

/// How inference or training runs the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Fused query/key/value product and all-cores kernels without gradients.
    Inference,
    /// Every operation has a gradient and reads the weights it was given (a fused matrix
    /// would be a copy that an optimiser's in-place updates never reach).
    Training,
}

/// The attention's query, key and value projections.
enum Qkv {
    /// One matrix (one product instead of three).
    Fused(Linear),
    Separate([Linear; 3]),
}

impl Qkv {
    /// Queries, keys and values, each `batch × tokens × hidden`.
    fn forward(&self, x: &Tensor, hidden: usize) -> candle_core::Result<[Tensor; 3]> {
        match self {
            Self::Fused(linear) => {
                let qkv = linear.forward(x)?;
                Ok([qkv.narrow(2, 0, hidden)?, qkv.narrow(2, hidden, hidden)?, qkv.narrow(2, 2 * hidden, hidden)?])
            }
            Self::Separate([q, k, v]) => Ok([q.forward(x)?, k.forward(x)?, v.forward(x)?]),
        }
    }
}

struct Layer {
    qkv: Qkv,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

impl Layer {
    fn load(c: &BertConfig, vb: VarBuilder, mode: Mode) -> candle_core::Result<Self> {
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let attention = vb.pp("attention");
        let [q, k, v] =
            ["self.query", "self.key", "self.value"].map(|name| candle_nn::linear(h, h, attention.pp(name)));
        let (q, k, v) = (q?, k?, v?);
        let qkv = if mode == Mode::Training {
            Qkv::Separate([q, k, v])
        } else {
            let weight = Tensor::cat(&[q.weight(), k.weight(), v.weight()], 0)?;
            let bias = match (q.bias(), k.bias(), v.bias()) {
                (Some(q), Some(k), Some(v)) => Some(Tensor::cat(&[q, k, v], 0)?),
                _ => candle_core::bail!("query, key and value need biases"),
            };
            Qkv::Fused(Linear::new(weight, bias))
        };
        Ok(Self {
            qkv,
            attention_out: candle_nn::linear(h, h, attention.pp("output.dense"))?,
            attention_norm: layer_norm(h, c.layer_norm_eps, attention.pp("output.LayerNorm"))?,
            intermediate: candle_nn::linear(h, i, vb.pp("intermediate.dense"))?,
            output: candle_nn::linear(i, h, vb.pp("output.dense"))?,
            output_norm: layer_norm(h, c.layer_norm_eps, vb.pp("output.LayerNorm"))?,
        })
    }
}

/// A BERT encoder: token ids → one hidden vector per token.
pub struct BertEncoder {
    words: Embedding,
    positions: Embedding,
    token_types: Embedding,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    eps: f64,
    activation: Activation,
    max_positions: usize,
    mode: Mode,
}

impl BertEncoder {
    /// Loads the weights under `embeddings.*` and `encoder.layer.N.*` (or with a `bert.`
    /// prefix, as sequence-classification checkpoints store them), for inference.
    pub fn load(vb: VarBuilder, c: &BertConfig) -> candle_core::Result<Self> {
        Self::load_for(vb, c, Mode::Inference)
    }

    /// [`BertEncoder::load`] for inference or training.
    pub fn load_for(vb: VarBuilder, c: &BertConfig, mode: Mode) -> candle_core::Result<Self> {
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") { vb.pp("bert") } else { vb };
        if c.num_attention_heads == 0 || !c.hidden_size.is_multiple_of(c.num_attention_heads) {
            candle_core::bail!("hidden_size must be a multiple of num_attention_heads");
        }
        let e = vb.pp("embeddings");
        let h = c.hidden_size;
        Ok(Self {
            words: candle_nn::embedding(c.vocab_size, h, e.pp("word_embeddings"))?,
            positions: candle_nn::embedding(c.max_position_embeddings, h, e.pp("position_embeddings"))?,
            token_types: candle_nn::embedding(c.type_vocab_size, h, e.pp("token_type_embeddings"))?,
            embedding_norm: layer_norm(h, c.layer_norm_eps, e.pp("LayerNorm"))?,
            layers: (0..c.num_hidden_layers)
                .map(|n| Layer::load(c, vb.pp(format!("encoder.layer.{n}")), mode))
                .collect::<candle_core::Result<_>>()?,
            heads: c.num_attention_heads,
            eps: c.layer_norm_eps,
            activation: Activation::parse(&c.hidden_act)?,
            max_positions: c.max_position_embeddings,
            mode,
        })
    }

    /// Hidden states (`batch × tokens × hidden`) for `ids` and `type_ids` (`batch ×
    /// tokens`, u32); `mask` is 1 for real tokens and 0 for padding.
    pub fn forward(&self, ids: &Tensor, type_ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (batch, tokens) = ids.dims2()?;
        if tokens > self.max_positions {
            candle_core::bail!("{tokens} tokens is over the model's {} positions", self.max_positions);
        }
        let positions = Tensor::arange(0u32, tokens as u32, ids.device())?;
        let x = self
            .words
            .forward(ids)?
            .add(&self.token_types.forward(type_ids)?)?
            .broadcast_add(&self.positions.forward(&positions)?)?;
        let mut x = self.norm(&self.embedding_norm, &x)?;
        // Padding gets a large negative score before the softmax: batch × 1 × 1 × tokens.
        let additive = ((mask.to_dtype(x.dtype())? - 1.0)? * 1e9)?.reshape((batch, 1, 1, tokens))?;
        for layer in &self.layers {
            x = self.layer(layer, &x, &additive)?;
        }
        Ok(x)
    }

    fn layer(&self, layer: &Layer, x: &Tensor, additive: &Tensor) -> candle_core::Result<Tensor> {
        let (batch, tokens, hidden) = x.dims3()?;
        let head_dim = hidden / self.heads;
        let heads = |part: Tensor| -> candle_core::Result<Tensor> {
            part.reshape((batch, tokens, self.heads, head_dim))?.transpose(1, 2)?.contiguous()
        };
        let [q, k, v] = layer.qkv.forward(x, hidden)?.map(heads);
        let (q, k, v) = (q?, k?, v?);
        let scores = (q.matmul(&k.t()?)? / (head_dim as f64).sqrt())?.broadcast_add(additive)?;
        let weights = match self.mode {
            Mode::Inference => candle_nn::ops::softmax_last_dim(&scores)?,
            Mode::Training => candle_nn::ops::softmax(&scores, candle_core::D::Minus1)?,
        };
        let context = weights.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((batch, tokens, hidden))?;
        let attended = self.norm(&layer.attention_norm, &(layer.attention_out.forward(&context)? + x)?)?;
        let inner = self.activation.apply(&layer.intermediate.forward(&attended)?, self.mode == Mode::Training)?;
        self.norm(&layer.output_norm, &(layer.output.forward(&inner)? + attended)?)
    }

    /// Layer normalisation: candle's fused kernel, or for training the same arithmetic in
    /// differentiable operations.
    fn norm(&self, norm: &LayerNorm, x: &Tensor) -> candle_core::Result<Tensor> {
        match (self.mode, norm.bias()) {
            (Mode::Training, Some(bias)) => candle_nn::ops::layer_norm_slow(x, norm.weight(), bias, self.eps as f32),
            _ => norm.forward(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_erf_matches_libm() {
        let worst =
            (-600_000..=600_000).map(|i| i as f32 * 1e-5).map(|x| (erf(x) - libm::erff(x)).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-6, "largest difference {worst}");
        assert!((erf(10.0) - 1.0).abs() < 1e-6 && (erf(-10.0) + 1.0).abs() < 1e-6);
    }
}
