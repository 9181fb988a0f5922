//! `funnel train cross-encoder` (fine-tuning on a BEIR collection's judgments) and the
//! cross-encoder as the engine's and the evaluator's [`PairScorer`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use funnel_engine::{EngineConfig, PairScorer, build_text_index, content_text};
use funnel_store::import::{Format, Qrel, read_beir_queries, read_items, read_qrels};
use funnel_vector::CrossEncoder;
use funnel_vector::finetune::{FineTuneOptions, LabelledPair, fine_tune};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::cli::TrainCrossEncoderArgs;

/// BM25 results per training query from which hard negatives are drawn.
const NEGATIVE_POOL: usize = 50;

/// A cross-encoder folder, named by its path in reports.
pub struct CrossEncoderScorer {
    name: String,
    model: CrossEncoder,
}

impl CrossEncoderScorer {
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        Ok(Self { name: dir.display().to_string(), model: CrossEncoder::load(dir)? })
    }
}

impl PairScorer for CrossEncoderScorer {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn score(&self, query: &str, documents: &[&str]) -> Result<Vec<f32>, String> {
        self.model.score(query, documents).map_err(|e| e.to_string())
    }
}

/// `search.cross_encoder` loaded for serving, when set; a model that fails to load is a
/// warning (search answers without reranking), not an error.
pub fn serving_reranker(config: &EngineConfig) -> Option<funnel_engine::Reranker> {
    let dir = config.search.cross_encoder.as_str();
    if dir.is_empty() {
        return None;
    }
    match CrossEncoderScorer::load(Path::new(dir)) {
        Ok(scorer) => Some(std::sync::Arc::new(scorer)),
        Err(error) => {
            tracing::warn!(model = dir, "cross-encoder not loaded, search results are not reranked: {error:#}");
            None
        }
    }
}

pub fn train(config: &EngineConfig, args: &TrainCrossEncoderArgs) -> anyhow::Result<()> {
    if !(0.0..1.0).contains(&args.held_out) {
        anyhow::bail!("--held-out must be in [0, 1), got {}", args.held_out);
    }
    let base = match &args.base {
        Some(base) => base.clone(),
        None if !config.content.model.is_empty() => PathBuf::from(&config.content.model),
        None => anyhow::bail!("no model to start from: give --base DIR (or set content.model)"),
    };
    let data = read_collection(&args.beir, &args.split)?;
    let (train_queries, held_out) = split_queries(&data.qrels, args.held_out, args.seed);
    let pairs = training_pairs(&data, &train_queries, config, args);
    if pairs.is_empty() {
        anyhow::bail!("{}: no judged-relevant documents for the training queries", args.beir.display());
    }
    let options = FineTuneOptions {
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.learning_rate,
        head_learning_rate: args.head_learning_rate,
        max_length: args.max_length,
        seed: args.seed,
        ..Default::default()
    };
    let bar = if args.json { ProgressBar::hidden() } else { ProgressBar::new(0) };
    bar.set_style(
        ProgressStyle::with_template("fine-tuning {bar:30} {pos}/{len} steps, loss {msg}, {elapsed} (eta {eta})")
            .expect("static template"),
    );
    let started = Instant::now();
    let mut recent = Vec::new();
    let report = fine_tune(&base, &pairs, &options, &args.out, &mut |step, steps, loss| {
        bar.set_length(steps as u64);
        bar.set_position(step as u64);
        recent.push(loss);
        let window = &recent[recent.len().saturating_sub(20)..];
        bar.set_message(format!("{:.4}", window.iter().sum::<f32>() / window.len() as f32));
    })
    .with_context(|| format!("fine-tuning {}", base.display()))?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let held_out_path = args.out.join("held-out.tsv");
    write_qrels(&held_out_path, &data.qrels, &held_out)?;
    let positives = pairs.iter().filter(|p| p.label > 0.0).count();
    let summary = json!({
        "out": args.out.display().to_string(), "base": base.display().to_string(),
        "train_queries": train_queries.len(), "held_out_queries": held_out.len(),
        "held_out_qrels": held_out_path.display().to_string(),
        "pairs": pairs.len(), "positives": positives, "negatives": pairs.len() - positives,
        "epochs": args.epochs, "steps": report.steps, "new_head": report.new_head,
        "epoch_losses": report.epoch_losses, "loss_curve": report.loss_curve, "seconds": seconds,
        "pairs_per_second": (pairs.len() * args.epochs) as f64 / seconds.max(1e-9),
    });
    std::fs::write(args.out.join("training.json"), serde_json::to_string_pretty(&summary)?)
        .with_context(|| format!("writing {}", args.out.join("training.json").display()))?;
    if args.json {
        out!("{summary}");
    } else {
        let losses: Vec<String> = report.epoch_losses.iter().map(|l| format!("{l:.4}")).collect();
        out!(
            "fine-tuned {} on {} pairs ({positives} relevant) from {} queries in {seconds:.0} s; loss per epoch {}\n\
             wrote {}; {} held-out queries in {}",
            base.display(),
            pairs.len(),
            train_queries.len(),
            losses.join(" → "),
            args.out.display(),
            held_out.len(),
            held_out_path.display()
        );
    }
    Ok(())
}

/// A BEIR collection: documents, queries by id, judgments.
struct Collection {
    items: Vec<funnel_core::Item>,
    queries: BTreeMap<String, String>,
    qrels: Vec<Qrel>,
}

fn read_collection(dir: &Path, split: &str) -> anyhow::Result<Collection> {
    let items = read_items(&dir.join("corpus.jsonl"), Format::Beir)?;
    let queries = read_beir_queries(&dir.join("queries.jsonl"))?.into_iter().map(|q| (q.id, q.text)).collect();
    let qrels = read_qrels(&dir.join("qrels").join(format!("{split}.tsv")))?;
    Ok(Collection { items, queries, qrels })
}

/// Queries with a relevant judgment, split into (training, held out) by a seeded shuffle.
fn split_queries(qrels: &[Qrel], held_out: f64, seed: u64) -> (BTreeSet<String>, BTreeSet<String>) {
    let judged: BTreeSet<&str> = qrels.iter().filter(|q| q.grade > 0).map(|q| q.query.as_str()).collect();
    let mut queries: Vec<&str> = judged.into_iter().collect();
    queries.shuffle(&mut StdRng::seed_from_u64(seed));
    let n_held = (queries.len() as f64 * held_out).round() as usize;
    let held = queries[..n_held].iter().map(|q| q.to_string()).collect();
    let train = queries[n_held..].iter().map(|q| q.to_string()).collect();
    (train, held)
}

/// Relevant documents of each training query (label 1) and, per relevant one,
/// `args.negatives` documents of its BM25 top 50 not judged relevant and
/// `args.random_negatives` from the whole collection (label 0).
fn training_pairs(
    data: &Collection,
    train_queries: &BTreeSet<String>,
    config: &EngineConfig,
    args: &TrainCrossEncoderArgs,
) -> Vec<LabelledPair> {
    let index = build_text_index(&data.items, &config.search);
    let position: HashMap<&str, usize> = data.items.iter().enumerate().map(|(n, i)| (i.id.as_str(), n)).collect();
    let mut relevant: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
    for qrel in data.qrels.iter().filter(|q| q.grade > 0 && train_queries.contains(&q.query)) {
        if let Some(&doc) = position.get(qrel.doc.as_str()) {
            relevant.entry(qrel.query.as_str()).or_default().insert(doc);
        }
    }
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut pairs = Vec::new();
    for (query, docs) in relevant {
        let Some(text) = data.queries.get(query) else { continue };
        let pair = |doc: usize, label: f32| LabelledPair {
            query: text.clone(),
            document: content_text(&data.items[doc]),
            label,
        };
        pairs.extend(docs.iter().map(|&doc| pair(doc, 1.0)));
        let pool: Vec<usize> = index
            .search(text, NEGATIVE_POOL, &|_| true)
            .iter()
            .map(|hit| hit.doc as usize)
            .filter(|doc| !docs.contains(doc))
            .collect();
        let wanted = (docs.len() * args.negatives).min(pool.len());
        pairs.extend(pool.choose_multiple(&mut rng, wanted).map(|&doc| pair(doc, 0.0)));
        for _ in 0..docs.len() * args.random_negatives {
            let doc = rng.random_range(0..data.items.len());
            if !docs.contains(&doc) {
                pairs.push(pair(doc, 0.0));
            }
        }
    }
    pairs
}

/// Writes the judgments of `queries` in BEIR's qrels layout.
fn write_qrels(path: &Path, qrels: &[Qrel], queries: &BTreeSet<String>) -> anyhow::Result<()> {
    let mut file =
        std::io::BufWriter::new(std::fs::File::create(path).with_context(|| format!("writing {}", path.display()))?);
    writeln!(file, "query-id\tcorpus-id\tscore")?;
    for qrel in qrels.iter().filter(|q| queries.contains(&q.query)) {
        writeln!(file, "{}\t{}\t{}", qrel.query, qrel.doc, qrel.grade)?;
    }
    file.flush().with_context(|| format!("writing {}", path.display()))
}
