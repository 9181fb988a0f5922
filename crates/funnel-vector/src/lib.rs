//! Text embeddings with a sentence-transformers BERT model (all-MiniLM-L6-v2 and its
//! kind) on candle: tokenise, run the encoder, mean-pool over real tokens, L2-normalise.
//!
//! Models load from a local folder (`config.json`, `model.safetensors`,
//! `tokenizer.json`, optionally `sentence_bert_config.json`); nothing is downloaded.

use std::path::{Path, PathBuf};

mod bert;
pub mod cross;
pub mod finetune;

pub use bert::{BertConfig, BertEncoder, Mode};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
pub use cross::CrossEncoder;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    #[error("{}: {reason}", path.display())]
    Model { path: PathBuf, reason: String },
    /// A request the caller can fix (empty training data, an unsupported head).
    #[error("{0}")]
    Input(String),
    #[error("tokenizing: {0}")]
    Tokenize(String),
    #[error("running the model: {0}")]
    Run(#[from] candle_core::Error),
}

/// Sentences per forward pass; inputs are sorted by length first so that a batch pads
/// little.
const BATCH: usize = 16;

pub struct Embedder {
    model: BertEncoder,
    tokenizer: Tokenizer,
    device: Device,
    dim: usize,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").field("dim", &self.dim).finish_non_exhaustive()
    }
}

pub(crate) fn model_error(path: &Path, reason: impl ToString) -> VectorError {
    VectorError::Model { path: path.to_owned(), reason: reason.to_string() }
}

/// A number from an optional JSON settings file of a model folder (absent file or key: None).
pub(crate) fn json_setting(path: &Path, key: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str::<serde_json::Value>(&text).ok()?[key].as_f64()
}

/// The longest input the model was trained for (sentence-transformers' max_seq_length).
fn max_seq_length(dir: &Path) -> usize {
    json_setting(&dir.join("sentence_bert_config.json"), "max_seq_length").map_or(256, |n| n as usize)
}

/// Reads a model folder's `config.json`.
pub fn read_config(dir: &Path) -> Result<BertConfig, VectorError> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| model_error(&path, e))?;
    serde_json::from_str(&text).map_err(|e| model_error(&path, e))
}

/// Reads a model folder's `model.safetensors` into memory (candle's mmap loader is
/// `unsafe`); returns the weights and the file's path for error messages.
pub(crate) fn read_weights(dir: &Path, device: &Device) -> Result<(VarBuilder<'static>, PathBuf), VectorError> {
    let path = dir.join("model.safetensors");
    let weights = std::fs::read(&path).map_err(|e| model_error(&path, e))?;
    let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, device).map_err(|e| model_error(&path, e))?;
    Ok((vb, path))
}

impl Embedder {
    /// Loads a sentence-transformers folder.
    pub fn load(dir: &Path) -> Result<Self, VectorError> {
        let config = read_config(dir)?;
        let dim = config.hidden_size;
        let device = Device::Cpu;
        let (vb, weights_path) = read_weights(dir, &device)?;
        let model = BertEncoder::load(vb, &config).map_err(|e| model_error(&weights_path, e))?;
        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| model_error(&tokenizer_path, e))?;
        // tokenizer.json may preset fixed padding and a short truncation: use the model's.
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_seq_length(dir), ..Default::default() }))
            .map_err(|e| model_error(&tokenizer_path, e))?;
        tokenizer.with_padding(Some(PaddingParams { strategy: PaddingStrategy::BatchLongest, ..Default::default() }));
        Ok(Self { model, tokenizer, device, dim })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Unit-length embeddings of `texts`, in order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, VectorError> {
        self.embed_with_progress(texts, |_| {})
    }

    /// [`Embedder::embed`], calling `progress(n)` after each batch of `n` texts.
    pub fn embed_with_progress(
        &self,
        texts: &[&str],
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>, VectorError> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(BATCH) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            for (&i, vector) in chunk.iter().zip(self.embed_batch(&batch)?) {
                out[i] = vector;
            }
            progress(chunk.len());
        }
        Ok(out)
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, VectorError> {
        let encodings =
            self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| VectorError::Tokenize(e.to_string()))?;
        let [ids, type_ids, mask] = cross::batch_tensors(&encodings, &self.device)?;
        let hidden = self.model.forward(&ids, &type_ids, &mask)?;
        Ok(mean_pool_normalised(&hidden, &mask)?.to_vec2::<f32>()?)
    }
}

/// Mean of the token vectors where `mask` is 1, scaled to unit length.
pub fn mean_pool_normalised(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
    let mean = summed.broadcast_div(&counts)?;
    let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
    mean.broadcast_div(&norms)
}

/// Cosine similarity of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b)).max(1e-12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_ignores_padding_and_normalises() {
        // Batch of one, three tokens of dimension 2; the third is padding.
        let hidden = Tensor::new(&[[[1f32, 0.0], [3.0, 4.0], [100.0, 100.0]]], &Device::Cpu).unwrap();
        let mask = Tensor::new(&[[1u32, 1, 0]], &Device::Cpu).unwrap();
        let pooled = mean_pool_normalised(&hidden, &mask).unwrap().to_vec2::<f32>().unwrap();
        // mean = (2, 2) → (1/√2, 1/√2)
        let expected = std::f32::consts::FRAC_1_SQRT_2;
        assert!((pooled[0][0] - expected).abs() < 1e-6 && (pooled[0][1] - expected).abs() < 1e-6, "{pooled:?}");
    }

    #[test]
    fn a_missing_model_folder_names_the_file() {
        let err = Embedder::load(Path::new("/nonexistent-model")).unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
    }

    #[test]
    fn cosine_of_parallel_vectors_is_one() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-6);
    }
}
