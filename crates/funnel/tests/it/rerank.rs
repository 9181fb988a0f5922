//! `funnel search` with a cross-encoder configured (`search.cross_encoder`): the tiny
//! random checkpoint of funnel-vector's fixture reorders the top of the results, by the
//! scores the model itself gives.

use std::path::Path;

use funnel_core::Item;
use serde_json::Value;

use crate::{funnel, ok};

fn fixture() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../funnel-vector/tests/fixtures/tiny-cross-encoder");
    dir.canonicalize().unwrap().display().to_string()
}

#[test]
fn search_reranks_its_top_with_the_configured_cross_encoder() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let model = fixture();
    std::fs::write(data.join("funnel.toml"), format!("[search]\ncross_encoder = {model:?}\n")).unwrap();
    let titles = [
        "rust compiler",
        "rust web framework",
        "rust game engine",
        "rust async runtime",
        "rust book for beginners",
        "a rust linter",
        "python web framework",
    ];
    let items: Vec<Item> =
        titles.iter().enumerate().map(|(i, t)| Item { title: (*t).into(), ..Item::bare(format!("i{i}")) }).collect();
    let lines: Vec<String> = items.iter().map(|i| serde_json::to_string(i).unwrap()).collect();
    let file = dir.path().join("items.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    ok(&funnel(&data, &["import", "items", file.to_str().unwrap()]));
    ok(&funnel(&data, &["train"]));

    let body: Value = serde_json::from_str(&ok(&funnel(&data, &["search", "rust", "--explain", "--json"]))).unwrap();
    let stages = body["trace"]["stages"].as_array().unwrap();
    let stage = stages.iter().find(|s| s["stage"] == "rerank").expect("a rerank stage");
    assert_eq!(stage["details"]["model"], model.as_str());
    let top = stage["details"]["top"].as_array().unwrap();
    assert_eq!(top.len(), 6, "every item matching `rust`: {top:?}");
    // The served order is the model's, and its scores are what the model gives each passage.
    let served: Vec<&str> = body["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    let reranked: Vec<&str> = top.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(served, reranked);
    let scorer = funnel_vector::CrossEncoder::load(Path::new(&model)).unwrap();
    let passages: Vec<String> =
        reranked.iter().map(|id| funnel_engine::content_text(items.iter().find(|i| i.id == *id).unwrap())).collect();
    let expected = scorer.score("rust", &passages.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
    for (t, e) in top.iter().zip(&expected) {
        assert!((t["cross_encoder_score"].as_f64().unwrap() - f64::from(*e)).abs() < 1e-5, "{t} vs {e}");
    }
    assert!(expected.windows(2).all(|w| w[0] >= w[1]), "best first: {expected:?}");

    let off: Value =
        serde_json::from_str(&ok(&funnel(&data, &["search", "rust", "--rerank-depth", "0", "--explain", "--json"])))
            .unwrap();
    assert!(off["trace"]["stages"].as_array().unwrap().iter().all(|s| s["stage"] != "rerank"));
}
