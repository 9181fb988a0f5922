//! Cross-encoders: Hugging Face `BertForSequenceClassification` checkpoints that read a
//! query and a document together (`[CLS] query [SEP] document [SEP]`) and give one
//! relevance logit, for reranking the top of a result list.
//!
//! The folder holds `config.json`, `model.safetensors` (`bert.*`, `bert.pooler.dense`,
//! `classifier`) and `tokenizer.json`; `tokenizer_config.json`'s `model_max_length`
//! bounds the pair's length when present.

use std::path::Path;

use candle_core::{Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use tokenizers::{EncodeInput, PaddingParams, PaddingStrategy, Tokenizer, TruncationParams, TruncationStrategy};

use crate::bert::Mode;
pub use crate::read_config;
use crate::{BertConfig, BertEncoder, VectorError, json_setting, model_error, read_weights};

/// Pairs per forward pass (sorted by length first so that a batch pads little).
const BATCH: usize = 16;

/// The scoring part of a cross-encoder: encoder, pooler (tanh of a dense layer over the
/// `[CLS]` vector) and classifier.
pub struct PairModel {
    encoder: BertEncoder,
    pooler: Linear,
    classifier: Linear,
    labels: usize,
}

impl PairModel {
    /// Loads `bert.*`, `bert.pooler.dense.*` and `classifier.*` from `vb`.
    pub fn load(vb: VarBuilder, config: &BertConfig, mode: Mode) -> candle_core::Result<Self> {
        let h = config.hidden_size;
        let labels = match vb.get_unchecked("classifier.bias") {
            Ok(bias) => bias.dims1()?,
            Err(_) => 1,
        };
        if labels == 0 || labels > 2 {
            candle_core::bail!("the classifier has {labels} labels; a cross-encoder has 1 (a logit) or 2");
        }
        Ok(Self {
            encoder: BertEncoder::load_for(vb.pp("bert"), config, mode)?,
            pooler: candle_nn::linear(h, h, vb.pp("bert.pooler.dense"))?,
            classifier: candle_nn::linear(h, labels, vb.pp("classifier"))?,
            labels,
        })
    }

    /// One relevance score per row of the batch (`batch` × 1): the logit, or with two
    /// labels the second's log-odds over the first.
    pub fn forward(&self, ids: &Tensor, type_ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let hidden = self.encoder.forward(ids, type_ids, mask)?;
        let first = hidden.narrow(1, 0, 1)?.squeeze(1)?;
        let pooled = self.pooler.forward(&first)?.tanh()?;
        let logits = self.classifier.forward(&pooled)?;
        if self.labels == 2 { logits.narrow(1, 1, 1)? - logits.narrow(1, 0, 1)? } else { Ok(logits) }
    }
}

/// Token ids, type ids and attention mask of a batch of encodings, each `batch × tokens`.
pub fn batch_tensors(encodings: &[tokenizers::Encoding], device: &Device) -> candle_core::Result<[Tensor; 3]> {
    let rows = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> candle_core::Result<Tensor> {
        let rows: Vec<Tensor> = encodings.iter().map(|e| Tensor::new(f(e), device)).collect::<Result<_, _>>()?;
        Tensor::stack(&rows, 0)
    };
    Ok([rows(&|e| e.get_ids())?, rows(&|e| e.get_type_ids())?, rows(&|e| e.get_attention_mask())?])
}

/// The longest pair the folder's model takes: `tokenizer_config.json`'s
/// `model_max_length` when given (capped by the positions), else the positions.
pub fn max_pair_length(dir: &Path, config: &BertConfig) -> usize {
    let configured = json_setting(&dir.join("tokenizer_config.json"), "model_max_length").filter(|&n| n >= 8.0);
    configured.map_or(config.max_position_embeddings, |n| (n as usize).min(config.max_position_embeddings))
}

/// Reads a folder's tokenizer set for pairs: longest-first truncation to `max_length`,
/// padding to the longest in the batch.
pub fn pair_tokenizer(dir: &Path, max_length: usize) -> Result<Tokenizer, VectorError> {
    let path = dir.join("tokenizer.json");
    let mut tokenizer = Tokenizer::from_file(&path).map_err(|e| model_error(&path, e))?;
    let truncation = TruncationParams { max_length, strategy: TruncationStrategy::LongestFirst, ..Default::default() };
    tokenizer.with_truncation(Some(truncation)).map_err(|e| model_error(&path, e))?;
    tokenizer.with_padding(Some(PaddingParams { strategy: PaddingStrategy::BatchLongest, ..Default::default() }));
    Ok(tokenizer)
}

/// A cross-encoder loaded for inference.
pub struct CrossEncoder {
    model: PairModel,
    tokenizer: Tokenizer,
    device: Device,
    max_length: usize,
}

impl std::fmt::Debug for CrossEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrossEncoder").field("max_length", &self.max_length).finish_non_exhaustive()
    }
}

impl CrossEncoder {
    /// Loads a sequence-classification folder.
    pub fn load(dir: &Path) -> Result<Self, VectorError> {
        let config = read_config(dir)?;
        let device = Device::Cpu;
        let (vb, weights_path) = read_weights(dir, &device)?;
        if !vb.contains_tensor("classifier.weight") {
            return Err(model_error(&weights_path, "no `classifier.weight`: not a sequence-classification model"));
        }
        let model = PairModel::load(vb, &config, Mode::Inference).map_err(|e| model_error(&weights_path, e))?;
        let max_length = max_pair_length(dir, &config);
        let tokenizer = pair_tokenizer(dir, max_length)?;
        Ok(Self { model, tokenizer, device, max_length })
    }

    /// The longest pair in tokens; longer pairs are cut from their longer side.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Token ids of one pair as the model reads it (for tests and debugging).
    pub fn token_ids(&self, query: &str, document: &str) -> Result<Vec<u32>, VectorError> {
        let encoding =
            self.tokenizer.encode((query, document), true).map_err(|e| VectorError::Tokenize(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Relevance of each document to `query`, in order (higher is more relevant).
    pub fn score(&self, query: &str, documents: &[&str]) -> Result<Vec<f32>, VectorError> {
        let mut order: Vec<usize> = (0..documents.len()).collect();
        order.sort_by_key(|&i| documents[i].len());
        let mut out = vec![0f32; documents.len()];
        for chunk in order.chunks(BATCH) {
            let pairs: Vec<EncodeInput> = chunk.iter().map(|&i| (query, documents[i]).into()).collect();
            let encodings =
                self.tokenizer.encode_batch(pairs, true).map_err(|e| VectorError::Tokenize(e.to_string()))?;
            let [ids, type_ids, mask] = batch_tensors(&encodings, &self.device)?;
            let scores = self.model.forward(&ids, &type_ids, &mask)?.squeeze(1)?.to_vec1::<f32>()?;
            for (&i, score) in chunk.iter().zip(scores) {
                out[i] = score;
            }
        }
        Ok(out)
    }
}
