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
use funnel_vector::finetune::{FineTuneOptions, LabelledPair, PairGroup, fine_tune, fine_tune_listwise};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::cli::{CrossEncoderLoss, TrainCrossEncoderArgs};

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
    if args.loss == CrossEncoderLoss::Listwise && args.negatives + args.random_negatives == 0 {
        anyhow::bail!("--loss listwise needs negatives: give --negatives or --random-negatives above 0");
    }
    let canonical = |dir: &Path| std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if let Some(dir) = args.also.iter().find(|dir| canonical(dir) == canonical(&args.beir)) {
        anyhow::bail!("--also {} is the --beir collection: its held-out queries would train", dir.display());
    }
    let data = read_collection(&args.beir, &args.split)?;
    let (train_queries, held_out) = split_queries(&data.qrels, args.held_out, args.seed);
    let negatives = [args.negatives, args.random_negatives];
    let mut groups = training_groups(&data, &train_queries, config, negatives, args.seed);
    let title_queries =
        if args.title_queries { title_groups(&data.items, config, negatives, args.seed) } else { Vec::new() };
    let title_query_count = title_queries.len();
    groups.extend(title_queries);
    let mut other_queries = 0;
    for dir in &args.also {
        let other = read_collection(dir, &args.split)?;
        let judged: BTreeSet<String> = other.qrels.iter().filter(|q| q.grade > 0).map(|q| q.query.clone()).collect();
        other_queries += judged.len();
        groups.extend(training_groups(&other, &judged, config, negatives, args.seed));
    }
    if groups.is_empty() {
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
    let mut progress = |step: usize, steps: usize, loss: f32| {
        bar.set_length(steps as u64);
        bar.set_position(step as u64);
        recent.push(loss);
        let window = &recent[recent.len().saturating_sub(20)..];
        bar.set_message(format!("{:.4}", window.iter().sum::<f32>() / window.len() as f32));
    };
    let pair_count: usize = groups.iter().map(|g| 1 + g.negatives.len()).sum();
    let report = match args.loss {
        CrossEncoderLoss::Pointwise => {
            let pairs: Vec<LabelledPair> = groups.iter().flat_map(labelled_pairs).collect();
            fine_tune(&base, &pairs, &options, &args.out, &mut progress)
        }
        CrossEncoderLoss::Listwise => fine_tune_listwise(&base, &groups, &options, &args.out, &mut progress),
    }
    .with_context(|| format!("fine-tuning {}", base.display()))?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let held_out_path = args.out.join("held-out.tsv");
    write_qrels(&held_out_path, &data.qrels, &held_out)?;
    let positives = groups.len();
    let summary = json!({
        "out": args.out.display().to_string(), "base": base.display().to_string(),
        "train_queries": train_queries.len(), "held_out_queries": held_out.len(),
        "also": args.also.iter().map(|d| d.display().to_string()).collect::<Vec<_>>(),
        "also_queries": other_queries, "title_queries": title_query_count,
        "held_out_qrels": held_out_path.display().to_string(),
        "loss": format!("{:?}", args.loss).to_lowercase(),
        "pairs": pair_count, "positives": positives, "negatives": pair_count - positives,
        "epochs": args.epochs, "steps": report.steps, "new_head": report.new_head,
        "epoch_losses": report.epoch_losses, "loss_curve": report.loss_curve, "seconds": seconds,
        "pairs_per_second": (pair_count * args.epochs) as f64 / seconds.max(1e-9),
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
            pair_count,
            train_queries.len() + other_queries + title_query_count,
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

/// One group per relevant document of a training query: the document, `hard` documents
/// of the query's BM25 top 50 not judged relevant (topped up from the collection when
/// the top 50 has too few) and `random` more from the whole collection, none judged
/// relevant to the query.
fn training_groups(
    data: &Collection,
    train_queries: &BTreeSet<String>,
    config: &EngineConfig,
    [hard, random]: [usize; 2],
    seed: u64,
) -> Vec<PairGroup> {
    let index = build_text_index(&data.items, &config.search);
    let position: HashMap<&str, usize> = data.items.iter().enumerate().map(|(n, i)| (i.id.as_str(), n)).collect();
    let mut relevant: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
    for qrel in data.qrels.iter().filter(|q| q.grade > 0 && train_queries.contains(&q.query)) {
        if let Some(&doc) = position.get(qrel.doc.as_str()) {
            relevant.entry(qrel.query.as_str()).or_default().insert(doc);
        }
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut groups = Vec::new();
    for (query, docs) in relevant {
        let Some(text) = data.queries.get(query) else { continue };
        let pool: Vec<usize> = index
            .search(text, NEGATIVE_POOL, &|_| true)
            .iter()
            .map(|hit| hit.doc as usize)
            .filter(|doc| !docs.contains(doc))
            .collect();
        if docs.len() == data.items.len() {
            continue;
        }
        for &doc in &docs {
            let mut negatives: Vec<usize> = pool.choose_multiple(&mut rng, hard).copied().collect();
            while negatives.len() < hard + random {
                let other = rng.random_range(0..data.items.len());
                if !docs.contains(&other) {
                    negatives.push(other);
                }
            }
            groups.push(PairGroup {
                query: text.clone(),
                positive: content_text(&data.items[doc]),
                negatives: negatives.iter().map(|&n| content_text(&data.items[n])).collect(),
            });
        }
    }
    groups
}

/// Pseudo-queries from the corpus alone: each titled document's title as a query for the
/// rest of its text, against `hard` of the title's BM25 top 50 and `random` others, all
/// shown without their titles (which would give the answer away).
fn title_groups(
    items: &[funnel_core::Item],
    config: &EngineConfig,
    [hard, random]: [usize; 2],
    seed: u64,
) -> Vec<PairGroup> {
    let index = build_text_index(items, &config.search);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x7469_746c_6573);
    let mut groups = Vec::new();
    for (doc, item) in items.iter().enumerate() {
        let positive = untitled_text(item);
        if item.title.trim().is_empty() || positive.trim().is_empty() || items.len() < 2 {
            continue;
        }
        let pool: Vec<usize> = index
            .search(&item.title, NEGATIVE_POOL, &|_| true)
            .iter()
            .map(|h| h.doc as usize)
            .filter(|&d| d != doc)
            .collect();
        let mut negatives: Vec<usize> = pool.choose_multiple(&mut rng, hard).copied().collect();
        while negatives.len() < hard + random {
            let other = rng.random_range(0..items.len());
            if other != doc {
                negatives.push(other);
            }
        }
        let negatives = negatives.iter().map(|&n| untitled_text(&items[n])).collect();
        groups.push(PairGroup { query: item.title.clone(), positive, negatives });
    }
    groups
}

/// An item's text without its title (also where a field repeats it at its start).
fn untitled_text(item: &funnel_core::Item) -> String {
    let mut bare = item.clone();
    let title = std::mem::take(&mut bare.title);
    for value in bare.fields.values_mut() {
        if let Some(rest) = value.strip_prefix(title.trim()).filter(|_| !title.trim().is_empty()) {
            *value = rest.trim_start_matches([' ', '.']).to_string();
        }
    }
    content_text(&bare)
}

/// A group as pointwise pairs: the relevant document labelled 1, the negatives 0.
fn labelled_pairs(group: &PairGroup) -> Vec<LabelledPair> {
    let pair =
        |document: &String, label: f32| LabelledPair { query: group.query.clone(), document: document.clone(), label };
    std::iter::once(pair(&group.positive, 1.0)).chain(group.negatives.iter().map(|d| pair(d, 0.0))).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn collection() -> Collection {
        let texts =
            ["wing flutter tests", "flutter of wings", "wing loads", "heat transfer", "shell buckling", "cones"];
        let items = texts
            .iter()
            .enumerate()
            .map(|(n, text)| serde_json::from_value(json!({ "id": format!("d{n}"), "title": text })).unwrap())
            .collect();
        let qrel = |query: &str, doc: &str| Qrel { query: query.into(), doc: doc.into(), grade: 1 };
        Collection {
            items,
            queries: [("q1".to_string(), "wing flutter".to_string()), ("q2".into(), "buckling".into())].into(),
            qrels: vec![qrel("q1", "d0"), qrel("q1", "d1"), qrel("q2", "d4")],
        }
    }

    #[test]
    fn each_relevant_document_gets_a_group_of_unjudged_negatives() {
        let data = collection();
        let train: BTreeSet<String> = ["q1".to_string(), "q2".into()].into();
        let groups = training_groups(&data, &train, &EngineConfig::default(), [2, 1], 7);
        assert_eq!(groups.len(), 3);
        let text = |id: &str| content_text(data.items.iter().find(|i| i.id == id).unwrap());
        for group in &groups {
            assert_eq!(group.negatives.len(), 3, "{group:?}");
            let relevant: Vec<String> = match group.query.as_str() {
                "wing flutter" => vec![text("d0"), text("d1")],
                _ => vec![text("d4")],
            };
            assert!(relevant.contains(&group.positive));
            assert!(group.negatives.iter().all(|n| !relevant.contains(n)), "{group:?}");
        }
        // "wing flutter" has one unjudged BM25 match (d2); the second hard negative is topped up.
        let flutter = groups.iter().find(|g| g.query == "wing flutter").unwrap();
        assert!(flutter.negatives.contains(&text("d2")), "{flutter:?}");
        // Pointwise, a group is its relevant pair and its negatives.
        let pairs = labelled_pairs(flutter);
        let labels: Vec<f32> = pairs.iter().map(|p| p.label).collect();
        assert_eq!(labels, [1.0, 0.0, 0.0, 0.0]);
        // Only training queries give groups; the same seed gives the same groups.
        let q2_only = training_groups(&data, &["q2".to_string()].into(), &EngineConfig::default(), [2, 1], 7);
        assert!(q2_only.iter().all(|g| g.query == "buckling"));
        let again = training_groups(&data, &train, &EngineConfig::default(), [2, 1], 7);
        assert_eq!(format!("{groups:?}"), format!("{again:?}"));
    }

    #[test]
    fn titles_query_their_documents_without_giving_the_answer_away() {
        let item = |id: &str, title: &str, text: &str| -> funnel_core::Item {
            serde_json::from_value(json!({ "id": id, "title": title, "fields": { "text": text } })).unwrap()
        };
        let items = vec![
            item("a", "wing flutter", "wing flutter . tests of flutter on swept wings"),
            item("b", "shell buckling", "thin shells under load"),
            item("c", "", "untitled notes on wings"),
        ];
        let groups = title_groups(&items, &EngineConfig::default(), [1, 1], 7);
        // The untitled document asks nothing, but can be a negative.
        assert_eq!(groups.iter().map(|g| g.query.as_str()).collect::<Vec<_>>(), ["wing flutter", "shell buckling"]);
        assert_eq!(groups[0].positive, "tests of flutter on swept wings");
        assert_eq!(groups[1].positive, "thin shells under load");
        for group in &groups {
            assert_eq!(group.negatives.len(), 2);
            assert!(!group.negatives.contains(&group.positive), "{group:?}");
            assert!(group.negatives.iter().all(|n| !n.contains(&group.query)), "{group:?}");
        }
    }
}
