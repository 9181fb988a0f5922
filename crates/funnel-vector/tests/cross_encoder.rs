//! The cross-encoder against transformers' `BertForSequenceClassification` on a tiny,
//! randomly initialised checkpoint (`scripts/reference/cross_encoder.py` writes it and
//! the expected logits).

use std::path::{Path, PathBuf};

use funnel_vector::CrossEncoder;
use serde_json::Value;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-cross-encoder")
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture().join("expected.json")).unwrap()).unwrap()
}

#[test]
fn cross_encoder_matches_transformers() {
    let model = CrossEncoder::load(&fixture()).unwrap();
    let expected = expected();
    assert_eq!(model.max_length() as u64, expected["max_length"].as_u64().unwrap());
    let cases = expected["cases"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for case in cases {
        let (query, document) = (case["query"].as_str().unwrap(), case["document"].as_str().unwrap());
        let ids: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(model.token_ids(query, document).unwrap(), ids, "{query:?} / {document:?}");
    }
    // All documents of one query in one call, and each pair alone: padding must not matter.
    for case in cases {
        let query = case["query"].as_str().unwrap();
        let want = case["logits"][0].as_f64().unwrap();
        let alone = model.score(query, &[case["document"].as_str().unwrap()]).unwrap()[0];
        assert!((f64::from(alone) - want).abs() < 1e-4, "{query:?}: {alone} vs transformers {want}");
    }
    let query = "wing flutter";
    let same: Vec<&Value> = cases.iter().filter(|c| c["query"] == query).collect();
    let documents: Vec<&str> = same.iter().map(|c| c["document"].as_str().unwrap()).collect();
    let scores = model.score(query, &documents).unwrap();
    for (case, score) in same.iter().zip(scores) {
        let want = case["logits"][0].as_f64().unwrap();
        assert!((f64::from(score) - want).abs() < 1e-4, "batched: {score} vs transformers {want}");
    }
}

#[test]
fn a_bi_encoder_folder_is_not_a_cross_encoder() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["config.json", "tokenizer.json"] {
        std::fs::copy(fixture().join(name), dir.path().join(name)).unwrap();
    }
    // Weights without a classifier head.
    std::fs::write(dir.path().join("model.safetensors"), b"\x02\x00\x00\x00\x00\x00\x00\x00{}").unwrap();
    let err = CrossEncoder::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("model.safetensors") && err.contains("classifier"), "{err}");
}

#[test]
fn the_training_graph_computes_what_inference_does() {
    use candle_core::{DType, Device};
    use funnel_vector::Mode;
    use funnel_vector::cross::{PairModel, batch_tensors, pair_tokenizer, read_config};

    let dir = fixture();
    let config = read_config(&dir).unwrap();
    let device = Device::Cpu;
    let tokenizer = pair_tokenizer(&dir, 24).unwrap();
    let expected = expected();
    let cases = expected["cases"].as_array().unwrap();
    let pairs: Vec<tokenizers::EncodeInput> =
        cases.iter().map(|c| (c["query"].as_str().unwrap(), c["document"].as_str().unwrap()).into()).collect();
    let encodings = tokenizer.encode_batch(pairs, true).unwrap();
    let [ids, type_ids, mask] = batch_tensors(&encodings, &device).unwrap();
    let weights = [dir.join("model.safetensors")];
    let vb = candle_nn::VarBuilder::from_buffered_safetensors(std::fs::read(&weights[0]).unwrap(), DType::F32, &device)
        .unwrap();
    let model = PairModel::load(vb, &config, Mode::Training).unwrap();
    let scores = model.forward(&ids, &type_ids, &mask).unwrap().squeeze(1).unwrap().to_vec1::<f32>().unwrap();
    for (case, score) in cases.iter().zip(scores) {
        let want = case["logits"][0].as_f64().unwrap();
        assert!((f64::from(score) - want).abs() < 1e-4, "training graph: {score} vs transformers {want}");
    }
}

#[test]
fn fine_tuning_learns_the_labels_and_writes_a_loadable_checkpoint() {
    use funnel_vector::finetune::{FineTuneOptions, LabelledPair, fine_tune};

    let pair = |query: &str, document: &str, label: f32| LabelledPair {
        query: query.into(),
        document: document.into(),
        label,
    };
    let pairs = vec![
        pair("wing flutter", "flutter of a swept wing", 1.0),
        pair("wing flutter", "heat transfer in a laminar boundary layer", 0.0),
        pair("shell buckling", "buckling of thin cylindrical shells", 1.0),
        pair("shell buckling", "supersonic flow over a cone", 0.0),
    ];
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("tuned");
    let options =
        FineTuneOptions { epochs: 30, batch_size: 4, learning_rate: 3e-3, max_length: 24, ..Default::default() };
    let mut steps = 0;
    let report = fine_tune(&fixture(), &pairs, &options, &target, &mut |_, _, _| steps += 1).unwrap();
    assert_eq!((report.steps, steps), (30, 30));
    assert!(!report.new_head, "the fixture has a classifier");
    let (first, last) = (report.epoch_losses[0], *report.epoch_losses.last().unwrap());
    assert!(last < first * 0.5, "loss {first} -> {last}");
    let tuned = CrossEncoder::load(&target).unwrap();
    for query in ["wing flutter", "shell buckling"] {
        let docs: Vec<&str> = pairs.iter().filter(|p| p.query == query).map(|p| p.document.as_str()).collect();
        let scores = tuned.score(query, &docs).unwrap();
        assert!(scores[0] > scores[1], "{query}: relevant {} vs not {}", scores[0], scores[1]);
    }
    // Only the finished folder is left beside it.
    let names: Vec<String> =
        std::fs::read_dir(out.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["tuned"]);
}

#[test]
fn fine_tuning_a_bi_encoder_adds_a_head() {
    use candle_core::Device;
    use funnel_vector::finetune::{FineTuneOptions, LabelledPair, fine_tune};

    // The fixture's encoder as a bi-encoder stores it: no `bert.` prefix, no pooler, no
    // classifier.
    let base = tempfile::tempdir().unwrap();
    for name in ["config.json", "tokenizer.json"] {
        std::fs::copy(fixture().join(name), base.path().join(name)).unwrap();
    }
    let weights = candle_core::safetensors::load(fixture().join("model.safetensors"), &Device::Cpu).unwrap();
    let encoder: std::collections::HashMap<String, candle_core::Tensor> = weights
        .into_iter()
        .filter_map(|(name, t)| Some((name.strip_prefix("bert.")?.to_owned(), t)))
        .filter(|(name, _)| !name.starts_with("pooler."))
        .collect();
    candle_core::safetensors::save(&encoder, base.path().join("model.safetensors")).unwrap();
    assert!(CrossEncoder::load(base.path()).is_err(), "a bi-encoder is not a cross-encoder");

    let pairs: Vec<LabelledPair> =
        [("wing flutter", "flutter of a swept wing", 1.0), ("wing flutter", "heat transfer", 0.0)]
            .into_iter()
            .map(|(q, d, label)| LabelledPair { query: q.into(), document: d.into(), label })
            .collect();
    let out = tempfile::tempdir().unwrap();
    let options = FineTuneOptions {
        epochs: 40,
        batch_size: 2,
        learning_rate: 3e-3,
        head_learning_rate: 1e-2,
        warmup: 0.0,
        ..Default::default()
    };
    let report = fine_tune(base.path(), &pairs, &options, &out.path().join("ce"), &mut |_, _, _| {}).unwrap();
    assert!(report.new_head);
    let (first, last) = (report.epoch_losses[0], *report.epoch_losses.last().unwrap());
    assert!(last < first * 0.5, "loss {first} -> {last}");
    let tuned = CrossEncoder::load(&out.path().join("ce")).unwrap();
    let scores = tuned.score("wing flutter", &["flutter of a swept wing", "heat transfer"]).unwrap();
    assert!(scores[0] > scores[1], "{scores:?}");
    // Same seed, same model.
    let again = fine_tune(base.path(), &pairs, &options, &out.path().join("ce2"), &mut |_, _, _| {}).unwrap();
    assert_eq!(again.epoch_losses, report.epoch_losses);
}

#[test]
fn fine_tuning_without_pairs_is_a_clear_error() {
    use funnel_vector::finetune::{FineTuneOptions, fine_tune};
    let out = tempfile::tempdir().unwrap();
    let err = fine_tune(&fixture(), &[], &FineTuneOptions::default(), &out.path().join("x"), &mut |_, _, _| {});
    assert!(err.unwrap_err().to_string().contains("needs pairs"));
    assert!(!out.path().join("x").exists());
}

#[test]
fn training_gradients_match_finite_differences() {
    use candle_core::{DType, Device, Var};
    use candle_nn::{VarBuilder, VarMap};
    use funnel_vector::Mode;
    use funnel_vector::cross::{PairModel, batch_tensors, pair_tokenizer, read_config};

    let dir = fixture();
    let config = read_config(&dir).unwrap();
    let device = Device::Cpu;
    let varmap = VarMap::new();
    for (name, tensor) in candle_core::safetensors::load(dir.join("model.safetensors"), &device).unwrap() {
        let tensor = tensor.to_dtype(DType::F64).unwrap();
        varmap.data().lock().unwrap().insert(name, Var::from_tensor(&tensor).unwrap());
    }
    let model =
        PairModel::load(VarBuilder::from_varmap(&varmap, DType::F64, &device), &config, Mode::Training).unwrap();
    let tokenizer = pair_tokenizer(&dir, 24).unwrap();
    let pairs: Vec<tokenizers::EncodeInput> = vec![
        ("wing flutter", "flutter of a swept wing").into(),
        ("shock waves", "heat transfer in a laminar flow").into(),
    ];
    let encodings = tokenizer.encode_batch(pairs, true).unwrap();
    let [ids, type_ids, mask] = batch_tensors(&encodings, &device).unwrap();
    let loss = || model.forward(&ids, &type_ids, &mask).unwrap().sum_all().unwrap();
    let gradients = loss().backward().unwrap();
    for name in [
        "classifier.weight",
        "bert.pooler.dense.weight",
        "bert.encoder.layer.1.output.dense.weight",
        "bert.encoder.layer.0.attention.self.query.weight",
        "bert.encoder.layer.0.intermediate.dense.weight",
        "bert.embeddings.LayerNorm.weight",
        "bert.embeddings.word_embeddings.weight",
    ] {
        let var = varmap.data().lock().unwrap()[name].clone();
        let grad = gradients.get(&var).unwrap_or_else(|| panic!("no gradient for {name}"));
        let flat_grad = grad.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let original = var.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        // The element with the largest gradient (a zero one proves nothing).
        let at = (0..flat_grad.len()).max_by(|&a, &b| flat_grad[a].abs().total_cmp(&flat_grad[b].abs())).unwrap();
        let eps = 1e-5;
        let nudged = |delta: f64| {
            let mut values = original.clone();
            values[at] += delta;
            var.set(&candle_core::Tensor::from_vec(values, var.shape(), &device).unwrap()).unwrap();
            loss().to_scalar::<f64>().unwrap()
        };
        let numeric = (nudged(eps) - nudged(-eps)) / (2.0 * eps);
        nudged(0.0);
        assert!(flat_grad[at].abs() > 1e-6, "{name}: gradient {}", flat_grad[at]);
        assert!(
            (numeric - flat_grad[at]).abs() < 1e-4 * (1.0 + numeric.abs()),
            "{name}: backprop {} vs numeric {numeric}",
            flat_grad[at]
        );
    }
}

#[test]
fn listwise_fine_tuning_ranks_each_relevant_document_above_its_negatives() {
    use funnel_vector::finetune::{FineTuneOptions, PairGroup, fine_tune_listwise};

    let group = |query: &str, positive: &str, negatives: [&str; 2]| PairGroup {
        query: query.into(),
        positive: positive.into(),
        negatives: negatives.iter().map(|n| n.to_string()).collect(),
    };
    let groups = vec![
        group("wing flutter", "flutter of a swept wing", ["heat transfer in a laminar layer", "supersonic cone flow"]),
        group("shell buckling", "buckling of thin cylindrical shells", ["flutter of a swept wing", "heat transfer"]),
    ];
    let out = tempfile::tempdir().unwrap();
    let options =
        FineTuneOptions { epochs: 30, batch_size: 6, learning_rate: 3e-3, max_length: 24, ..Default::default() };
    let mut steps = 0;
    let report =
        fine_tune_listwise(&fixture(), &groups, &options, &out.path().join("ce"), &mut |_, _, _| steps += 1).unwrap();
    // Two groups of three pairs fill a batch of six: one step an epoch.
    assert_eq!((report.steps, steps), (30, 30));
    let (first, last) = (report.epoch_losses[0], *report.epoch_losses.last().unwrap());
    assert!(last < first * 0.5, "loss {first} -> {last}");
    let tuned = CrossEncoder::load(&out.path().join("ce")).unwrap();
    for g in &groups {
        let documents: Vec<&str> = std::iter::once(&g.positive).chain(&g.negatives).map(String::as_str).collect();
        let scores = tuned.score(&g.query, &documents).unwrap();
        assert!(scores[1..].iter().all(|&s| s < scores[0]), "{}: {scores:?}", g.query);
    }

    let mut uneven = groups.clone();
    uneven[1].negatives.pop();
    let err = fine_tune_listwise(&fixture(), &uneven, &options, &out.path().join("x"), &mut |_, _, _| {});
    assert!(err.unwrap_err().to_string().contains("same number of negatives"));
    assert!(!out.path().join("x").exists());
}
