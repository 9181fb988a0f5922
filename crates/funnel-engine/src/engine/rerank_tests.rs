//! The cross-encoder stage of search, with stand-in scorers.

use std::sync::Arc;

use funnel_core::Item;

use super::tests::engine_over;
use super::*;

/// Scores a passage 1 when it contains `word`, else 0; fails when `fail` is set.
struct Prefers {
    word: &'static str,
    fail: bool,
}

impl PairScorer for Prefers {
    fn name(&self) -> String {
        format!("prefers-{}", self.word)
    }

    fn score(&self, _query: &str, documents: &[&str]) -> Result<Vec<f32>, String> {
        if self.fail {
            return Err("model exploded".into());
        }
        Ok(documents.iter().map(|d| f32::from(u8::from(d.contains(self.word)))).collect())
    }
}

fn titled(id: &str, title: &str) -> Item {
    Item { title: title.into(), ..Item::bare(id) }
}

/// Four items matching `rust`; BM25 puts the short titles first.
fn engine(reranker: Option<Reranker>, keep_passages: bool) -> (tempfile::TempDir, Engine) {
    engine_with(reranker, keep_passages, |_| {})
}

fn engine_with(
    reranker: Option<Reranker>,
    keep_passages: bool,
    configure: impl FnOnce(&mut EngineConfig),
) -> (tempfile::TempDir, Engine) {
    let mut config = EngineConfig::default();
    configure(&mut config);
    if keep_passages {
        config.search.cross_encoder = "a-cross-encoder-folder".into();
    }
    let items = vec![
        titled("c", "Rust compiler"),
        titled("a", "Rust web framework"),
        titled("g", "Rust game engine written in Rust"),
        titled("w", "Rust async web server for the web"),
    ];
    let (dir, engine) = engine_over(items, &config);
    (dir, engine.with_reranker(reranker))
}

fn search(engine: &Engine, depth: Option<usize>) -> Response {
    search_for(engine, "rust", depth)
}

fn search_for(engine: &Engine, query: &str, depth: Option<usize>) -> Response {
    let request = Request {
        surface: "search".into(),
        query: Some(query.into()),
        k: 10,
        explain: true,
        rerank_depth: depth,
        ..Request::default()
    };
    engine.run(&request).unwrap()
}

fn ids(response: &Response) -> Vec<&str> {
    response.items.iter().map(|i| i.id.as_str()).collect()
}

fn rerank_stage(response: &Response) -> Option<&funnel_core::StageTrace> {
    response.trace.as_ref().unwrap().stages.iter().find(|s| s.stage == "rerank")
}

#[test]
fn the_cross_encoder_reorders_the_top_and_keeps_the_score_range() {
    let (_plain_dir, plain) = engine(None, true);
    let before = search(&plain, None);
    let web: Reranker = Arc::new(Prefers { word: "web", fail: false });
    let (_dir, engine) = engine(Some(web), true);
    assert!(engine.reranks());
    let after = search(&engine, None);
    let (old, new) = (ids(&before), ids(&after));
    assert_eq!(old.len(), 4, "{old:?}");
    // The passages with `web` move up, each group keeping the ranker's order.
    let expected: Vec<&str> = old
        .iter()
        .filter(|id| ["a", "w"].contains(id))
        .chain(old.iter().filter(|id| !["a", "w"].contains(id)))
        .copied()
        .collect();
    assert_eq!(new, expected);
    assert_ne!(new, old, "the fixture must make the reranker change something");
    // The scores are the ranker's, handed out in the new order.
    let scores = |r: &Response| r.items.iter().map(|i| i.score).collect::<Vec<_>>();
    assert_eq!(scores(&after), scores(&before));
    let stage = rerank_stage(&after).expect("a rerank stage in the trace");
    assert_eq!(stage.component, "cross-encoder");
    assert_eq!(stage.details["model"], "prefers-web");
    assert_eq!(stage.details["top"][0]["id"], new[0]);
    assert_eq!(stage.details["top"][0]["cross_encoder_score"], 1.0);
    let rank_before = old.iter().position(|id| *id == new[0]).unwrap() + 1;
    assert_eq!(stage.details["top"][0]["rank_before"], rank_before);
}

#[test]
fn a_request_sets_the_depth_and_zero_turns_it_off() {
    let (_plain_dir, plain) = engine(None, true);
    let old = ids(&search(&plain, None)).into_iter().map(str::to_owned).collect::<Vec<_>>();
    let web: Reranker = Arc::new(Prefers { word: "web", fail: false });
    let (_dir, engine) = engine(Some(web), true);
    let off = search(&engine, Some(0));
    assert_eq!(ids(&off), old);
    assert!(rerank_stage(&off).is_none());
    // Depth 2 reorders only the first two.
    let two = search(&engine, Some(2));
    let mut top_two: Vec<&str> = old[..2].iter().map(String::as_str).collect();
    top_two.sort_by_key(|id| !["a", "w"].contains(id));
    assert_eq!(ids(&two)[..2], top_two[..]);
    assert_eq!(ids(&two)[2..], old[2..]);
    assert_eq!(rerank_stage(&two).unwrap().input, 2);
    let err = engine
        .run(&Request {
            surface: "search".into(),
            query: Some("rust".into()),
            k: 10,
            rerank_depth: Some(MAX_RERANK_DEPTH + 1),
            ..Request::default()
        })
        .unwrap_err();
    assert!(matches!(err, EngineError::BadRequest { field: "rerank_depth", .. }), "{err}");
}

#[test]
fn a_failing_cross_encoder_leaves_the_rankers_order() {
    let (_plain_dir, plain) = engine(None, true);
    let old = ids(&search(&plain, None)).into_iter().map(str::to_owned).collect::<Vec<_>>();
    let failing: Reranker = Arc::new(Prefers { word: "web", fail: true });
    let (_dir, engine) = engine(Some(failing), true);
    let response = search(&engine, None);
    assert_eq!(ids(&response), old);
    assert_eq!(rerank_stage(&response).unwrap().details["error"], "model exploded");
}

#[test]
fn without_passages_in_the_snapshot_there_is_no_reranking() {
    let web: Reranker = Arc::new(Prefers { word: "web", fail: false });
    let (_dir, engine) = engine(Some(web), false);
    assert!(engine.snapshot().passages.is_none());
    assert!(!engine.reranks());
    assert!(rerank_stage(&search(&engine, Some(4))).is_none());
}

#[test]
fn a_request_cannot_rerank_deeper_than_its_surface() {
    let web: Reranker = Arc::new(Prefers { word: "web", fail: false });
    let (_dir, engine) = engine_with(Some(web), true, |c| {
        c.surfaces.get_mut("search").unwrap().rerank.cross_encoder_depth = 1;
    });
    let response = search(&engine, Some(4));
    assert_eq!(rerank_stage(&response).unwrap().input, 1);
    assert!(!engine.reranks_for(&Request { rerank_depth: Some(0), ..request_for("rust") }));
    assert!(engine.reranks_for(&request_for("rust")));
}

fn request_for(query: &str) -> Request {
    Request { surface: "search".into(), query: Some(query.into()), k: 10, ..Request::default() }
}

#[test]
fn a_navigational_query_keeps_its_item_first() {
    let web: Reranker = Arc::new(Prefers { word: "web", fail: false });
    let (_dir, engine) = engine(Some(web), true);
    // The whole query is item c's title; the stand-in model prefers every other passage.
    let response = search_for(&engine, "rust compiler", None);
    assert_eq!(ids(&response)[0], "c");
    let stage = rerank_stage(&response).expect("the rest is still reranked");
    assert_eq!(stage.details["kept_navigational_first"], true);
    assert_eq!(stage.details["top"][0]["id"], ids(&response)[1]);
    assert!(stage.details["top"].as_array().unwrap().iter().all(|t| t["rank_before"].as_u64().unwrap() >= 2));
}

/// Scores every passage NaN but one.
struct NanExceptLast;

impl PairScorer for NanExceptLast {
    fn name(&self) -> String {
        "nan".into()
    }

    fn score(&self, _query: &str, documents: &[&str]) -> Result<Vec<f32>, String> {
        Ok((0..documents.len()).map(|i| if i + 1 == documents.len() { 0.0 } else { f32::NAN }).collect())
    }
}

#[test]
fn nan_scores_rank_below_numbers() {
    let (_plain_dir, plain) = engine(None, true);
    let old = ids(&search(&plain, None)).into_iter().map(str::to_owned).collect::<Vec<_>>();
    let (_dir, engine) = engine(Some(Arc::new(NanExceptLast)), true);
    let new = ids(&search(&engine, None)).into_iter().map(str::to_owned).collect::<Vec<_>>();
    let expected: Vec<String> = old[old.len() - 1..].iter().chain(&old[..old.len() - 1]).cloned().collect();
    assert_eq!(new, expected);
}

#[test]
fn a_weight_below_one_blends_the_model_with_the_rankers_order() {
    let (_plain_dir, plain) = engine(None, true);
    let before = search(&plain, None);
    let web = || -> Reranker { Arc::new(Prefers { word: "web", fail: false }) };
    let weighted = |weight: f32| {
        engine_with(Some(web()), true, |c| c.surfaces.get_mut("search").unwrap().rerank.cross_encoder_weight = weight)
    };
    // At 0 the ranker's scores alone order the block: nothing moves.
    let (_dir, ranker_only) = weighted(0.0);
    let kept = search(&ranker_only, None);
    assert_eq!(ids(&kept), ids(&before));
    assert_eq!(rerank_stage(&kept).unwrap().details["weight"], 0.0);
    // The trace shows the blended score that ordered the block, best first.
    let top = rerank_stage(&kept).unwrap().details["top"].as_array().unwrap().clone();
    let blended: Vec<f64> = top.iter().map(|t| t["blended_score"].as_f64().unwrap()).collect();
    assert!(blended.windows(2).all(|w| w[0] >= w[1]), "{blended:?}");
    // At 1 the model alone, as without the setting.
    let (_dir, model_only) = weighted(1.0);
    let (_dir, default) = engine(Some(web()), true);
    assert_eq!(ids(&search(&model_only, None)), ids(&search(&default, None)));
    assert_ne!(ids(&search(&default, None)), ids(&before));

    let mut config = crate::EngineConfig::default();
    config.surfaces.get_mut("search").unwrap().rerank.cross_encoder_weight = 1.5;
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("cross_encoder_weight"), "{err}");
}
