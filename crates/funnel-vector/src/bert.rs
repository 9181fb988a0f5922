//! The BERT encoder (Hugging Face `BertModel` layout) on candle: embeddings, then
//! `num_hidden_layers` of self-attention and feed-forward blocks with post-layer-norm.
//!
//! Our own rather than candle-transformers' so that inference runs its elementwise work in
//! fused kernels ([`crate::kernels`]: bias with activation or residual, masked softmax,
//! embedding sum) on the caller's rayon pool, leaving candle only the matrix products and
//! layer norms; training keeps candle's differentiable operations. It also spares the
//! build the whole candle-transformers model zoo.

use candle_core::{D, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use serde::Deserialize;

use crate::kernels::{self, Activation};

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

impl Activation {
    fn parse(name: &str) -> candle_core::Result<Self> {
        match name {
            "gelu" => Ok(Self::Gelu { exact: true }),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Self::Gelu { exact: false }),
            "relu" => Ok(Self::Relu),
            other => candle_core::bail!("hidden_act `{other}` is not supported (gelu, gelu_new, relu)"),
        }
    }

    /// The activation in candle's operations, which have gradients (training).
    fn apply(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::Gelu { exact: true } => x.gelu_erf(),
            Self::Gelu { exact: false } => x.gelu(),
            Self::Relu => x.relu(),
        }
    }
}

/// A dense layer as each mode runs it. Training: candle's `Linear` (differentiable, on
/// the weight as stored, `out × in`). Inference: the weight transposed once at load (`in ×
/// out`, contiguous), which the matrix product reads as it lies; on the stored layout it
/// repacked every weight on every call, three quarters of the time of embedding one short
/// query. The bias is added by the fused kernel that follows the product.
enum Dense {
    Training(Linear),
    Inference { weight: Tensor, bias: Tensor },
}

impl Dense {
    fn new(linear: Linear, mode: Mode) -> candle_core::Result<Self> {
        if mode == Mode::Training {
            return Ok(Self::Training(linear));
        }
        let bias =
            linear.bias().cloned().ok_or_else(|| candle_core::Error::Msg("a dense layer without a bias".into()))?;
        Ok(Self::Inference { weight: linear.weight().t()?.contiguous()?, bias })
    }

    /// `activation(x · Wᵀ + b)` over the last dimension of `x`.
    fn activated(&self, x: &Tensor, activation: Option<Activation>) -> candle_core::Result<Tensor> {
        match self {
            Self::Training(linear) => {
                let y = linear.forward(x)?;
                match activation {
                    Some(activation) => activation.apply(&y),
                    None => Ok(y),
                }
            }
            Self::Inference { weight, bias } => kernels::bias_activation(&product(weight, x)?, bias, activation),
        }
    }

    /// `x · Wᵀ + b + residual`.
    fn with_residual(&self, x: &Tensor, residual: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::Training(linear) => linear.forward(x)? + residual,
            Self::Inference { weight, bias } => kernels::bias_residual(&product(weight, x)?, bias, residual),
        }
    }
}

/// `x · weight` over the last dimension of `x` (`weight`: `in × out`), leading dimensions
/// kept.
fn product(weight: &Tensor, x: &Tensor) -> candle_core::Result<Tensor> {
    let mut dims = x.dims().to_vec();
    let inputs = dims.pop().unwrap_or(1);
    let y = x.reshape((x.elem_count() / inputs.max(1), inputs))?.matmul(weight)?;
    dims.push(y.dim(1)?);
    y.reshape(dims)
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
    Fused(Dense),
    Separate([Linear; 3]),
}

impl Qkv {
    /// Queries, keys and values, each `batch × tokens × hidden`.
    fn forward(&self, x: &Tensor, hidden: usize) -> candle_core::Result<[Tensor; 3]> {
        match self {
            Self::Fused(dense) => {
                let qkv = dense.activated(x, None)?;
                Ok([qkv.narrow(2, 0, hidden)?, qkv.narrow(2, hidden, hidden)?, qkv.narrow(2, 2 * hidden, hidden)?])
            }
            Self::Separate([q, k, v]) => Ok([q.forward(x)?, k.forward(x)?, v.forward(x)?]),
        }
    }
}

struct Layer {
    qkv: Qkv,
    attention_out: Dense,
    attention_norm: LayerNorm,
    intermediate: Dense,
    output: Dense,
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
            // The attention's 1/√(head size) is folded into the query projection.
            let scale = 1.0 / ((h / c.num_attention_heads) as f64).sqrt();
            let weight = Tensor::cat(&[&(q.weight() * scale)?, k.weight(), v.weight()], 0)?;
            let bias = match (q.bias(), k.bias(), v.bias()) {
                (Some(q), Some(k), Some(v)) => Some(Tensor::cat(&[&(q * scale)?, k, v], 0)?),
                _ => candle_core::bail!("query, key and value need biases"),
            };
            Qkv::Fused(Dense::new(Linear::new(weight, bias), mode)?)
        };
        Ok(Self {
            qkv,
            attention_out: Dense::new(candle_nn::linear(h, h, attention.pp("output.dense"))?, mode)?,
            attention_norm: layer_norm(h, c.layer_norm_eps, attention.pp("output.LayerNorm"))?,
            intermediate: Dense::new(candle_nn::linear(h, i, vb.pp("intermediate.dense"))?, mode)?,
            output: Dense::new(candle_nn::linear(i, h, vb.pp("output.dense"))?, mode)?,
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
        let tokens = ids.dims2()?.1;
        if tokens > self.max_positions {
            candle_core::bail!("{tokens} tokens is over the model's {} positions", self.max_positions);
        }
        let positions = Tensor::arange(0u32, tokens as u32, ids.device())?;
        let [words, types, positions] =
            [self.words.forward(ids)?, self.token_types.forward(type_ids)?, self.positions.forward(&positions)?];
        let x = match self.mode {
            Mode::Inference => kernels::embedding_sum(&words, &types, &positions)?,
            Mode::Training => words.add(&types)?.broadcast_add(&positions)?,
        };
        let mut x = self.norm(&self.embedding_norm, &x)?;
        // Padding gets a large negative score before the softmax: batch × tokens.
        let additive = ((mask.to_dtype(x.dtype())? - 1.0)? * 1e9)?;
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
        let weights = match self.mode {
            // The query projection carries the scale.
            Mode::Inference => kernels::masked_softmax(&q.matmul(&k.t()?)?, additive)?,
            Mode::Training => {
                let scores = (q.matmul(&k.t()?)? / (head_dim as f64).sqrt())?;
                candle_nn::ops::softmax(&scores.broadcast_add(&additive.reshape((batch, 1, 1, tokens))?)?, D::Minus1)?
            }
        };
        let context = weights.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((batch, tokens, hidden))?;
        let attended = self.norm(&layer.attention_norm, &layer.attention_out.with_residual(&context, x)?)?;
        let inner = layer.intermediate.activated(&attended, Some(self.activation))?;
        self.norm(&layer.output_norm, &layer.output.with_residual(&inner, &attended)?)
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
