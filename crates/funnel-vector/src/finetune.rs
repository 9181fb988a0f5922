//! Fine-tuning a cross-encoder on labelled (query, document) pairs: from a bi-encoder's
//! weights (MiniLM: a fresh pooler-and-classifier head on top) or from a cross-encoder,
//! AdamW, linear warm-up and decay, no dropout (so that a seed fixes the result). Two
//! losses: pointwise, binary cross-entropy of each labelled pair's logit ([`fine_tune`]);
//! listwise, the softmax cross-entropy of a relevant document against the non-relevant
//! ones it is ranked with ([`fine_tune_listwise`]), which learns the order the reranker
//! is used for and needs no calibration to the share of relevant pairs.
//!
//! The output folder is a Hugging Face `BertForSequenceClassification` checkpoint that
//! [`crate::CrossEncoder`] (and transformers) load. It is written beside the target and
//! renamed into place, so a failed run leaves no half-written model.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, Normal};
use tokenizers::EncodeInput;

use crate::bert::Mode;
use crate::cross::{PairModel, batch_tensors, pair_tokenizer};
use crate::{VectorError, model_error, read_config};

/// One training example: `label` 1 for relevant, 0 for not.
#[derive(Debug, Clone)]
pub struct LabelledPair {
    pub query: String,
    pub document: String,
    pub label: f32,
}

/// A query's relevant document and non-relevant ones to rank below it (a listwise example).
#[derive(Debug, Clone)]
pub struct PairGroup {
    pub query: String,
    pub positive: String,
    pub negatives: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct FineTuneOptions {
    pub epochs: usize,
    pub batch_size: usize,
    /// Peak learning rate of the encoder.
    pub learning_rate: f64,
    /// Peak learning rate of the classifier. A new classifier on a bi-encoder's pooler
    /// starts with logits near 0 and gradients too small to reach the encoder; at the
    /// encoder's rate it barely moves in a few hundred steps. (The pooler stays at the
    /// encoder's rate: faster, its tanh saturates and every pair scores the same.)
    pub head_learning_rate: f64,
    /// Share of the steps over which the learning rate rises from 0.
    pub warmup: f64,
    pub weight_decay: f64,
    /// Longest pair in tokens (longer pairs are cut from their longer side).
    pub max_length: usize,
    pub seed: u64,
}

impl Default for FineTuneOptions {
    fn default() -> Self {
        Self {
            epochs: 1,
            batch_size: 16,
            learning_rate: 5e-5,
            head_learning_rate: 2e-3,
            warmup: 0.1,
            weight_decay: 0.01,
            max_length: 256,
            seed: 7,
        }
    }
}

/// What a fine-tuning run did.
#[derive(Debug, Clone)]
pub struct FineTuneReport {
    pub steps: usize,
    /// Mean training loss of each epoch.
    pub epoch_losses: Vec<f32>,
    /// Mean training loss of each tenth of the steps (fewer with fewer steps).
    pub loss_curve: Vec<f32>,
    /// Whether the classifier head started from random weights (a bi-encoder base).
    pub new_head: bool,
}

/// Fine-tunes the model in `base` on labelled `pairs` (pointwise) and writes the result to
/// `out`. `progress(step, steps, loss)` is called after each optimiser step.
pub fn fine_tune(
    base: &Path,
    pairs: &[LabelledPair],
    options: &FineTuneOptions,
    out: &Path,
    progress: &mut dyn FnMut(usize, usize, f32),
) -> Result<FineTuneReport, VectorError> {
    if pairs.is_empty() {
        return Err(VectorError::Input("fine-tuning needs pairs, a batch size and an epoch".into()));
    }
    train(base, pairs, options, out, progress)
}

/// Fine-tunes the model in `base` on `groups` (listwise: each group's relevant document
/// against its negatives, `batch_size / group size` groups a step) and writes the result
/// to `out`. Every group needs the same number of negatives, at least one.
pub fn fine_tune_listwise(
    base: &Path,
    groups: &[PairGroup],
    options: &FineTuneOptions,
    out: &Path,
    progress: &mut dyn FnMut(usize, usize, f32),
) -> Result<FineTuneReport, VectorError> {
    let Some(first) = groups.first() else {
        return Err(VectorError::Input("fine-tuning needs groups, a batch size and an epoch".into()));
    };
    let negatives = first.negatives.len();
    if negatives == 0 || groups.iter().any(|g| g.negatives.len() != negatives) {
        return Err(VectorError::Input("every group needs the same number of negatives, at least one".into()));
    }
    train(base, groups, options, out, progress)
}

/// Training examples: how many go in a step, their (query, document) inputs, and the loss
/// of a batch from its logits (one per input, in input order).
trait Examples {
    fn count(&self) -> usize;
    fn per_step(&self, batch_size: usize) -> usize;
    fn inputs(&self, batch: &[usize]) -> Vec<(&str, &str)>;
    fn loss(&self, batch: &[usize], logits: &Tensor) -> candle_core::Result<Tensor>;
}

impl Examples for [LabelledPair] {
    fn count(&self) -> usize {
        self.len()
    }

    fn per_step(&self, batch_size: usize) -> usize {
        batch_size
    }

    fn inputs(&self, batch: &[usize]) -> Vec<(&str, &str)> {
        batch.iter().map(|&i| (self[i].query.as_str(), self[i].document.as_str())).collect()
    }

    fn loss(&self, batch: &[usize], logits: &Tensor) -> candle_core::Result<Tensor> {
        let labels: Vec<f32> = batch.iter().map(|&i| self[i].label).collect();
        bce_with_logits(logits, &Tensor::new(labels.as_slice(), logits.device())?)
    }
}

impl Examples for [PairGroup] {
    fn count(&self) -> usize {
        self.len()
    }

    fn per_step(&self, batch_size: usize) -> usize {
        (batch_size / (1 + self[0].negatives.len())).max(1)
    }

    fn inputs(&self, batch: &[usize]) -> Vec<(&str, &str)> {
        let mut inputs = Vec::new();
        for group in batch.iter().map(|&i| &self[i]) {
            let documents = std::iter::once(&group.positive).chain(&group.negatives);
            inputs.extend(documents.map(|d| (group.query.as_str(), d.as_str())));
        }
        inputs
    }

    fn loss(&self, batch: &[usize], logits: &Tensor) -> candle_core::Result<Tensor> {
        listwise_loss(&logits.reshape((batch.len(), 1 + self[0].negatives.len()))?)
    }
}

fn train<E: Examples + ?Sized>(
    base: &Path,
    examples: &E,
    options: &FineTuneOptions,
    out: &Path,
    progress: &mut dyn FnMut(usize, usize, f32),
) -> Result<FineTuneReport, VectorError> {
    if options.batch_size == 0 || options.epochs == 0 {
        return Err(VectorError::Input("fine-tuning needs pairs, a batch size and an epoch".into()));
    }
    let config = read_config(base)?;
    let device = Device::Cpu;
    let weights_path = base.join("model.safetensors");
    let mut weights =
        candle_core::safetensors::load(&weights_path, &device).map_err(|e| model_error(&weights_path, e))?;
    let new_head = add_head(&mut weights, config.hidden_size, options.seed)?;
    let varmap = VarMap::new();
    {
        let mut data = varmap.data().lock().expect("the var map is only used here");
        for (name, tensor) in weights.into_iter().filter(|(_, t)| t.dtype() == DType::F32) {
            data.insert(name, Var::from_tensor(&tensor)?);
        }
    }
    let model = PairModel::load(VarBuilder::from_varmap(&varmap, DType::F32, &device), &config, Mode::Training)
        .map_err(|e| model_error(&weights_path, e))?;
    let max_length = options.max_length.min(config.max_position_embeddings);
    let tokenizer = pair_tokenizer(base, max_length)?;

    let per_step = examples.per_step(options.batch_size);
    let steps = examples.count().div_ceil(per_step) * options.epochs;
    let (head, encoder) = split_vars(&varmap);
    let params = |lr: f64| ParamsAdamW { lr, weight_decay: options.weight_decay, ..Default::default() };
    let mut encoder_optimiser = AdamW::new(encoder, params(options.learning_rate))?;
    let mut head_optimiser = AdamW::new(head, params(options.head_learning_rate))?;
    let mut order: Vec<usize> = (0..examples.count()).collect();
    let mut epoch_losses = Vec::with_capacity(options.epochs);
    let mut step = 0;
    let mut step_losses = Vec::with_capacity(steps);
    for epoch in 0..options.epochs {
        order.shuffle(&mut StdRng::seed_from_u64(options.seed.wrapping_add(epoch as u64)));
        let mut total = 0f32;
        for batch in order.chunks(per_step) {
            let factor = schedule(step, steps, options.warmup);
            encoder_optimiser.set_learning_rate(options.learning_rate * factor);
            head_optimiser.set_learning_rate(options.head_learning_rate * factor);
            let inputs: Vec<EncodeInput> = examples.inputs(batch).into_iter().map(EncodeInput::from).collect();
            let encodings = tokenizer.encode_batch(inputs, true).map_err(|e| VectorError::Tokenize(e.to_string()))?;
            let [ids, type_ids, mask] = batch_tensors(&encodings, &device)?;
            let logits = model.forward(&ids, &type_ids, &mask)?.squeeze(1)?;
            let loss = examples.loss(batch, &logits)?;
            let gradients = loss.backward()?;
            encoder_optimiser.step(&gradients)?;
            head_optimiser.step(&gradients)?;
            let loss = loss.to_scalar::<f32>()?;
            total += loss * batch.len() as f32;
            step_losses.push(loss);
            step += 1;
            progress(step, steps, loss);
        }
        epoch_losses.push(total / examples.count() as f32);
    }
    save(base, &varmap, max_length, out)?;
    let tenth = steps.div_ceil(10);
    let loss_curve = step_losses.chunks(tenth).map(|c| c.iter().sum::<f32>() / c.len() as f32).collect();
    Ok(FineTuneReport { steps, epoch_losses, loss_curve, new_head })
}

/// The learning rate's share of its peak at `step`: linear warm-up over `warmup` of the
/// steps, then linear decay to 0.
fn schedule(step: usize, steps: usize, warmup: f64) -> f64 {
    let warmup = (warmup * steps as f64).ceil().max(1.0);
    let step = step as f64;
    let factor =
        if step < warmup { (step + 1.0) / warmup } else { (steps as f64 - step) / (steps as f64 - warmup).max(1.0) };
    factor.clamp(0.0, 1.0)
}

/// The classifier's variables and the rest (encoder and pooler), in name order.
fn split_vars(varmap: &VarMap) -> (Vec<Var>, Vec<Var>) {
    let data = varmap.data().lock().expect("the var map is only used here");
    let mut named: Vec<(&String, &Var)> = data.iter().collect();
    named.sort_by_key(|(name, _)| name.as_str());
    let is_head = |name: &str| name.starts_with("classifier.");
    let head = named.iter().filter(|(n, _)| is_head(n)).map(|(_, v)| (*v).clone()).collect();
    let encoder = named.iter().filter(|(n, _)| !is_head(n)).map(|(_, v)| (*v).clone()).collect();
    (head, encoder)
}

/// Mean binary cross-entropy of `logits` against 0/1 `labels`, in the stable form
/// max(z, 0) − z·y + ln(1 + e^−|z|).
fn bce_with_logits(logits: &Tensor, labels: &Tensor) -> candle_core::Result<Tensor> {
    let softplus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    (logits.relu()? - (logits * labels)?)?.add(&softplus)?.mean_all()
}

/// Mean over the rows of `logits` (groups × documents, the relevant one first) of the
/// relevant document's negative log-softmax.
fn listwise_loss(logits: &Tensor) -> candle_core::Result<Tensor> {
    candle_nn::ops::log_softmax(logits, 1)?.narrow(1, 0, 1)?.neg()?.mean_all()
}

/// Puts the weights under `bert.` (a bi-encoder stores them without) and adds a pooler
/// and a one-logit classifier where missing, drawn from N(0, 0.02²) with `seed` as
/// BERT initialises them. Returns whether the classifier is new.
fn add_head(weights: &mut HashMap<String, Tensor>, hidden: usize, seed: u64) -> Result<bool, VectorError> {
    if !weights.keys().any(|k| k.starts_with("bert.")) {
        *weights = std::mem::take(weights).into_iter().map(|(k, v)| (format!("bert.{k}"), v)).collect();
    }
    if let Some(bias) = weights.get("classifier.bias")
        && bias.dims1()? != 1
    {
        return Err(VectorError::Input("fine-tuning takes a one-logit cross-encoder or a bi-encoder".into()));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0f32, 0.02).expect("a valid deviation");
    let mut draw = |rows: usize, cols: usize| -> candle_core::Result<Tensor> {
        let values: Vec<f32> = (0..rows * cols).map(|_| normal.sample(&mut rng)).collect();
        Tensor::from_vec(values, (rows, cols), &Device::Cpu)
    };
    if !weights.contains_key("bert.pooler.dense.weight") {
        weights.insert("bert.pooler.dense.weight".into(), draw(hidden, hidden)?);
        weights.insert("bert.pooler.dense.bias".into(), Tensor::zeros(hidden, DType::F32, &Device::Cpu)?);
    }
    let new_head = !weights.contains_key("classifier.weight");
    if new_head {
        weights.insert("classifier.weight".into(), draw(1, hidden)?);
        weights.insert("classifier.bias".into(), Tensor::zeros(1, DType::F32, &Device::Cpu)?);
    }
    Ok(new_head)
}

/// Writes the checkpoint (weights, a sequence-classification config, the tokenizer)
/// into a fresh folder beside `out`, then renames it into place.
fn save(base: &Path, varmap: &VarMap, max_length: usize, out: &Path) -> Result<(), VectorError> {
    let io = |path: &Path, e: &dyn std::fmt::Display| model_error(path, e);
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io(parent, &e))?;
    let staging = tempfile::Builder::new().prefix(".cross-encoder-").tempdir_in(parent).map_err(|e| io(parent, &e))?;
    let dir = staging.path();
    varmap.save(dir.join("model.safetensors")).map_err(|e| io(&dir.join("model.safetensors"), &e))?;
    let config_path = base.join("config.json");
    let text = std::fs::read_to_string(&config_path).map_err(|e| io(&config_path, &e))?;
    let mut config: serde_json::Value = serde_json::from_str(&text).map_err(|e| io(&config_path, &e))?;
    config["architectures"] = serde_json::json!(["BertForSequenceClassification"]);
    config["id2label"] = serde_json::json!({ "0": "LABEL_0" });
    config["label2id"] = serde_json::json!({ "LABEL_0": 0 });
    let config_text = serde_json::to_string_pretty(&config).expect("JSON values serialise");
    std::fs::write(dir.join("config.json"), config_text).map_err(|e| io(dir, &e))?;
    // The base's tokenizer settings, with the length the model was trained at.
    let mut tokenizer_config = std::fs::read_to_string(base.join("tokenizer_config.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .filter(serde_json::Value::is_object)
        .unwrap_or_else(|| serde_json::json!({}));
    tokenizer_config["model_max_length"] = serde_json::json!(max_length);
    let tokenizer_config = serde_json::to_string_pretty(&tokenizer_config).expect("JSON values serialise");
    std::fs::write(dir.join("tokenizer_config.json"), tokenizer_config).map_err(|e| io(dir, &e))?;
    for name in ["tokenizer.json", "vocab.txt", "special_tokens_map.json"] {
        let from = base.join(name);
        if from.exists() {
            std::fs::copy(&from, dir.join(name)).map_err(|e| io(&from, &e))?;
        }
    }
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(|e| io(out, &e))?;
    }
    let kept = staging.keep();
    std::fs::rename(&kept, out).map_err(|e| io(out, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_learning_rate_warms_up_then_decays_to_zero() {
        let factors: Vec<f64> = (0..10).map(|step| schedule(step, 10, 0.2)).collect();
        assert_eq!(factors[0], 0.5);
        assert_eq!(factors[1], 1.0);
        assert!(factors[2..].windows(2).all(|w| w[1] < w[0]), "{factors:?}");
        assert!(factors[9] > 0.0 && factors[9] < 0.2);
    }

    #[test]
    fn binary_cross_entropy_is_stable_for_large_logits() {
        let logits = Tensor::new(&[100f32, -100.0, 0.0], &Device::Cpu).unwrap();
        let labels = Tensor::new(&[1f32, 0.0, 1.0], &Device::Cpu).unwrap();
        let loss = bce_with_logits(&logits, &labels).unwrap().to_scalar::<f32>().unwrap();
        // Two confident right answers (≈ 0) and one coin flip (ln 2), averaged.
        assert!((loss - std::f32::consts::LN_2 / 3.0).abs() < 1e-6, "{loss}");
    }

    #[test]
    fn listwise_loss_is_the_relevant_documents_negative_log_softmax() {
        // Row 1: four equal logits, −ln ¼. Row 2: relevant far ahead, ≈ 0.
        let logits = Tensor::new(&[[0f32, 0.0, 0.0, 0.0], [50.0, 0.0, 0.0, 0.0]], &Device::Cpu).unwrap();
        let loss = listwise_loss(&logits).unwrap().to_scalar::<f32>().unwrap();
        assert!((loss - 4f32.ln() / 2.0).abs() < 1e-6, "{loss}");
        let behind = Tensor::new(&[[0f32, 3.0]], &Device::Cpu).unwrap();
        let loss = listwise_loss(&behind).unwrap().to_scalar::<f32>().unwrap();
        assert!((loss - (1.0 + 3f32.exp()).ln()).abs() < 1e-5, "{loss}");
    }
}
