use std::time::Instant;

use anyhow::Context;
use funnel_engine::{EngineConfig, QueryEmbedder, TextEmbedder, TrainReport, train_with_embedder};
use funnel_store::import::parse_timestamp;
use funnel_store::{DataDir, LogReader};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::cli::TrainArgs;

pub fn run(data: &DataDir, config: &EngineConfig, args: &TrainArgs) -> anyhow::Result<()> {
    let as_of = args.as_of.as_deref().map(parse_timestamp).transpose().map_err(|e| anyhow::anyhow!("--as-of: {e}"))?;
    let started = Instant::now();
    let report = build(data, config, as_of, !args.json)?;
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        let body = json!({
            "snapshot": report.snapshot.to_string(), "as_of": report.as_of, "items": report.items,
            "users": report.users, "events": report.events, "terms": report.terms, "seconds": seconds,
            "content_vectors": {"embedded": report.content.embedded, "reused": report.content.reused},
            "phases": report.phases.iter().map(|(name, secs)| json!({"phase": name, "seconds": secs})).collect::<Vec<_>>(),
            "rankers": report.rankers,
            "intent": report.intent,
        });
        out!("{body}");
    } else {
        out!(
            "snapshot {} built in {seconds:.2} s: {} items, {} users, {} events, {} terms (as of {})",
            report.snapshot,
            report.items,
            report.users,
            report.events,
            report.terms,
            report.as_of
        );
        let phases: Vec<String> = report.phases.iter().map(|(name, secs)| format!("{name} {secs:.2} s")).collect();
        out!("  {}", phases.join(", "));
        for (surface, r) in &report.rankers {
            out!(
                "  ranker of `{surface}`: {} trees ({}, label {}) on {} requests ({} candidate rows), features as of {} \
                 ({} split); held-out requests: NDCG@10 {:.4} vs {:.4} for the merged score",
                r.trees,
                r.objective,
                r.label,
                r.train_groups,
                r.train_rows,
                r.features_as_of,
                r.split,
                r.valid_ndcg_model,
                r.valid_ndcg_merged
            );
            let top: Vec<String> =
                r.importance.iter().take(5).map(|(name, gain)| format!("{name} {gain:.0}")).collect();
            out!("    most used features (gain): {}", top.join(", "));
        }
        if let Some(intent) = &report.intent {
            let on = match intent.held_out {
                0 => "its own training labels (under 10 distinct queries: none held out)".to_owned(),
                n => format!("{n} held-out labels"),
            };
            out!(
                "  intent classifier from {} labelled queries: {:.1}% right on {on}, the rules {:.1}%",
                intent.labels,
                100.0 * intent.accuracy,
                100.0 * intent.rules_accuracy
            );
        }
        let content = report.content;
        if content.embedded + content.reused > 0 {
            out!(
                "  content vectors: {} embedded, {} unchanged from the previous snapshot",
                content.embedded,
                content.reused
            );
        }
    }
    Ok(())
}

/// Trains with a spinner that names the current phase.
pub fn build(data: &DataDir, config: &EngineConfig, as_of: Option<i64>, show: bool) -> anyhow::Result<TrainReport> {
    let spinner = if show { ProgressBar::new_spinner() } else { ProgressBar::hidden() };
    spinner.set_style(ProgressStyle::with_template("{spinner} training: {msg} ({elapsed})").expect("valid template"));
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let embedder = match config.content.model.as_str() {
        "" => None,
        model => {
            spinner.set_message(format!("loading the content model {model}"));
            Some(ContentModel::load(model).with_context(|| format!("content.model = {model}"))?)
        }
    };
    let reader = LogReader::new(data.log());
    let report = train_with_embedder(
        &reader,
        &data.snapshots(),
        config,
        as_of,
        embedder.as_ref().map(|e| e as &dyn TextEmbedder),
        &mut |phase| spinner.set_message(phase.to_owned()),
    );
    spinner.finish_and_clear();
    Ok(report?)
}

/// The models a server hands to its engines: the query embedder and the cross-encoder.
pub fn serving_models(config: &EngineConfig) -> funnel_engine::ServingModels {
    funnel_engine::ServingModels {
        query_embedder: query_embedder(config),
        reranker: crate::cross_encoder::serving_reranker(config),
    }
}

/// The configured content model as a query embedder, when a surface has a `dense` source
/// and `content.model` is set; a model that fails to load is a warning (dense retrieval
/// off), not an error, so BM25 search keeps working.
pub fn query_embedder(config: &EngineConfig) -> Option<QueryEmbedder> {
    let dense = config.surfaces.values().flat_map(|s| &s.sources).any(|s| s.name == "dense");
    if !dense || config.content.model.is_empty() {
        return None;
    }
    // Concurrent requests' queries share forward passes (up to 16, the model's batch).
    match ContentModel::load(&config.content.model)
        .and_then(|model| Ok(funnel_engine::BatchingEmbedder::new(std::sync::Arc::new(model), 16)?))
    {
        Ok(model) => Some(std::sync::Arc::new(model)),
        Err(error) => {
            tracing::warn!(model = %config.content.model, "query embedder not loaded, dense retrieval off: {error:#}");
            None
        }
    }
}

/// The MiniLM embedder as the engine's content model.
pub struct ContentModel {
    name: String,
    embedder: funnel_vector::Embedder,
}

impl ContentModel {
    pub fn load(model: &str) -> anyhow::Result<Self> {
        let dir = std::path::Path::new(model);
        let embedder = funnel_vector::Embedder::load(dir)?;
        // A checksum of the weights, tokenizer and configuration goes into the name, so a
        // different model put in the same folder does not inherit the previous snapshot's
        // vectors.
        let mut hasher = crc32fast::Hasher::new();
        for file in ["model.safetensors", "tokenizer.json", "config.json"] {
            let path = dir.join(file);
            hasher.update(&std::fs::read(&path).with_context(|| path.display().to_string())?);
        }
        Ok(Self { name: format!("{model} (checksum {:08x})", hasher.finalize()), embedder })
    }
}

impl TextEmbedder for ContentModel {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn embed(&self, texts: &[&str], progress: &mut dyn FnMut(usize)) -> Result<Vec<Vec<f32>>, String> {
        self.embedder.embed_with_progress(texts, progress).map_err(|e| e.to_string())
    }
}
