//! `recommend`, `search`, `similar`: run one request against the newest snapshot and
//! print a table, or with `--json` the same body as the HTTP API.

use funnel_engine::{Engine, EngineConfig, Request, Response};
use funnel_server::wire::SlateBody;
use funnel_store::DataDir;

use crate::cli::{RecommendArgs, SearchArgs, SimilarArgs, SlateArgs};

fn serve_one(data: &DataDir, config: &EngineConfig, slate: &SlateArgs, request: Request) -> anyhow::Result<()> {
    let mut engine = Engine::open_latest(&data.snapshots(), config)?;
    let dense = config.surfaces.get(&request.surface).is_some_and(|s| s.sources.iter().any(|s| s.name == "dense"));
    if dense && engine.snapshot().content.is_some() {
        engine = engine.with_query_embedder(crate::train::query_embedder(config));
    }
    if engine.reranks_for(&request) {
        engine = engine.with_reranker(crate::cross_encoder::serving_reranker(config));
    }
    let mut weights = std::collections::BTreeMap::new();
    for (source, weight) in &slate.weight {
        if weights.insert(source.clone(), *weight).is_some() {
            anyhow::bail!("--weight: `{source}` is given more than once");
        }
    }
    let request = Request { k: slate.k, explain: slate.explain, seed: slate.seed, weights, ..request };
    let response = engine.run(&request)?;
    if slate.json {
        out!("{}", serde_json::to_string_pretty(&SlateBody::new(response, request.seed))?);
    } else {
        print_table(&engine, &response);
    }
    Ok(())
}

pub fn recommend(data: &DataDir, config: &EngineConfig, args: RecommendArgs) -> anyhow::Result<()> {
    let context = args.context.into_iter().collect();
    let request = Request { surface: args.surface, user: args.user, context, ..Request::default() };
    serve_one(data, config, &args.slate, request)
}

pub fn search(data: &DataDir, config: &EngineConfig, args: SearchArgs) -> anyhow::Result<()> {
    let request = Request {
        surface: args.surface,
        user: args.user,
        query: Some(args.query.join(" ")),
        exact_query: args.exact,
        rerank_depth: args.rerank_depth,
        ..Request::default()
    };
    serve_one(data, config, &args.slate, request)
}

pub fn similar(data: &DataDir, config: &EngineConfig, args: SimilarArgs) -> anyhow::Result<()> {
    let request = Request { surface: args.surface, user: args.user, item: Some(args.item), ..Request::default() };
    serve_one(data, config, &args.slate, request)
}

fn print_table(engine: &Engine, response: &Response) {
    let catalog = &engine.snapshot().catalog;
    if let Some(corrected) = &response.did_you_mean {
        out!("showing results for: {corrected}   (--exact to search the query as typed)");
    }
    if response.items.is_empty() {
        out!("no items (snapshot {})", response.snapshot);
    }
    // The propensity column only when exploration made some placement uncertain.
    let explored = response.items.iter().any(|i| i.propensity < 1.0);
    let propensity_header = if explored { format!(" {:>10}", "propensity") } else { String::new() };
    out!("{:>4}  {:<16} {:>9}{propensity_header}  title", "#", "id", "score");
    for (rank, item) in response.items.iter().enumerate() {
        let title = catalog.index_of(&item.id).map(|i| catalog.get(i).title.as_str()).unwrap_or("");
        let propensity = if explored { format!(" {:>10.4}", item.propensity) } else { String::new() };
        out!("{:>4}  {:<16} {:>9.4}{propensity}  {}", rank + 1, item.id, item.score, title);
    }
    let Some(trace) = &response.trace else { return };
    out!("\ntrace (snapshot {}):", trace.snapshot);
    for stage in &trace.stages {
        out!(
            "  {:<10} {:<10} {:>5} -> {:<5} {:>8.3} ms",
            stage.stage,
            stage.component,
            stage.input,
            stage.output,
            stage.micros as f64 / 1000.0
        );
        if stage.stage == "rules" && stage.details["dropped"].as_u64().unwrap_or(0) > 0 {
            let ids: Vec<&str> =
                stage.details["ids"].as_array().into_iter().flatten().filter_map(|v| v.as_str()).take(8).collect();
            out!(
                "             dropped {} ({}): {}",
                stage.details["dropped"],
                stage.details["reason"].as_str().unwrap_or(""),
                ids.join(", ")
            );
        }
    }
    out!("(use --json for every score and detail)");
}
