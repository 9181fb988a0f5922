//! Text embeddings with a sentence-transformers BERT model (all-MiniLM-L6-v2 and its
//! kind) on candle: tokenise, run the encoder, mean-pool over real tokens, L2-normalise.
//!
//! Models load from a local folder (`config.json`, `model.safetensors`,
//! `tokenizer.json`, optionally `sentence_bert_config.json`); nothing is downloaded.

use std::path::{Path, PathBuf};

mod bert;
pub mod cross;
pub mod finetune;
mod kernels;

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
        // tokenizer.json may preset fixed padding and a short truncation: use the model's,
        // within its positions.
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_length(dir).min(config.max_position_embeddings),
                ..Default::default()
            }))
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
    ///
    /// Batches run data-parallel: one worker per thread of the current rayon pool, each
    /// running whole batches on one thread. A batch of short sentences is too small a
    /// matrix product to split across cores without the threads waiting on each other
    /// after every operation.
    pub fn embed_with_progress(
        &self,
        texts: &[&str],
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>, VectorError> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let batches: Vec<&[usize]> = order.chunks(BATCH).collect();
        let workers = rayon::current_num_threads().min(batches.len());
        let mut out = vec![Vec::new(); texts.len()];
        if workers <= 1 {
            for chunk in batches {
                place(&mut out, chunk, self.embed_chunk(texts, chunk)?);
                progress(chunk.len());
            }
            return Ok(out);
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failed = std::sync::atomic::AtomicBool::new(false);
        let (send, receive) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let (send, next, failed, batches) = (send.clone(), &next, &failed, &batches);
                scope.spawn(move || {
                    let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build();
                    let run = || {
                        while !failed.load(std::sync::atomic::Ordering::Relaxed) {
                            // Longest batches first, so that the last ones to finish are short.
                            let taken = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(b) = batches.len().checked_sub(taken + 1) else { break };
                            let result = self.embed_chunk(texts, batches[b]);
                            failed.fetch_or(result.is_err(), std::sync::atomic::Ordering::Relaxed);
                            if send.send((b, result)).is_err() {
                                break;
                            }
                        }
                    };
                    match one_thread {
                        Ok(pool) => pool.install(run),
                        Err(_) => run(),
                    }
                });
            }
            drop(send);
            for (b, result) in receive {
                place(&mut out, batches[b], result?);
                progress(batches[b].len());
            }
            Ok(out)
        })
    }

    /// The vectors of `texts[i]` for each `i` of `chunk`, in one forward pass.
    fn embed_chunk(&self, texts: &[&str], chunk: &[usize]) -> Result<Vec<Vec<f32>>, VectorError> {
        self.embed_batch(&chunk.iter().map(|&i| texts[i]).collect::<Vec<_>>())
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, VectorError> {
        let encodings =
            self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| VectorError::Tokenize(e.to_string()))?;
        let [ids, type_ids, mask] = cross::batch_tensors(&encodings, &self.device)?;
        let hidden = self.model.forward(&ids, &type_ids, &mask)?;
        let masks: Vec<&[u32]> = encodings.iter().map(|e| e.get_attention_mask()).collect();
        Ok(mean_pool_normalised(&hidden, &masks)?)
    }
}

/// Puts a batch's vectors at their texts' positions.
fn place(out: &mut [Vec<f32>], chunk: &[usize], vectors: Vec<Vec<f32>>) {
    for (&i, vector) in chunk.iter().zip(vectors) {
        out[i] = vector;
    }
}

/// Per row of `hidden` (`batch × tokens × dim`), the mean of the token vectors whose
/// `masks` entry is 1, scaled to unit length.
pub fn mean_pool_normalised(hidden: &Tensor, masks: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
    let (batch, tokens, dim) = hidden.dims3()?;
    if masks.len() != batch || masks.iter().any(|m| m.len() != tokens) {
        candle_core::bail!("{} masks for hidden states {:?}", masks.len(), hidden.shape());
    }
    let values = hidden.flatten_all()?.to_vec1::<f32>()?;
    Ok(values
        .chunks(tokens * dim)
        .zip(masks)
        .map(|(rows, mask)| {
            let mut mean = vec![0f32; dim];
            for (row, _) in rows.chunks(dim).zip(mask.iter()).filter(|(_, m)| **m != 0) {
                mean.iter_mut().zip(row).for_each(|(s, x)| *s += x);
            }
            let count = mask.iter().filter(|m| **m != 0).count().max(1) as f32;
            mean.iter_mut().for_each(|s| *s /= count);
            let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            mean.iter_mut().for_each(|s| *s /= norm);
            mean
        })
        .collect())
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
        let pooled = mean_pool_normalised(&hidden, &[&[1, 1, 0]]).unwrap();
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
