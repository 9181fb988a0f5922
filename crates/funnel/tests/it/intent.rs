//! `search.intent_labels`: `funnel train` learns an intent classifier from labelled
//! queries, reports it, and search traces say the model chose the intent; a bad labels
//! file fails training with its line and field.

use funnel_core::Item;
use serde_json::Value;

use crate::{failed, funnel, ok};

#[test]
fn train_learns_intent_from_labels_and_search_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let labels = dir.path().join("intents.tsv");
    std::fs::write(data.join("funnel.toml"), format!("[search]\nintent_labels = {:?}\n", labels.display().to_string()))
        .unwrap();
    let items: Vec<String> = ["fast json reader", "python", "tiny web server"]
        .iter()
        .enumerate()
        .map(|(n, t)| serde_json::to_string(&Item { title: (*t).into(), ..Item::bare(format!("i{n}")) }).unwrap())
        .collect();
    let file = dir.path().join("items.jsonl");
    std::fs::write(&file, items.join("\n")).unwrap();
    ok(&funnel(&data, &["import", "items", file.to_str().unwrap()]));

    std::fs::write(&labels, "query\tintent\npython\texploratory\njson\tsomething\n").unwrap();
    let stderr = failed(&funnel(&data, &["train"]));
    assert!(stderr.contains("intents.tsv:3: intent") && stderr.contains("`something`"), "{stderr}");

    std::fs::write(&labels, "python\texploratory\nfast json reader\tnavigational\ntiny web server\tnavigational\n")
        .unwrap();
    let report: Value = serde_json::from_str(&ok(&funnel(&data, &["train", "--json"]))).unwrap();
    assert_eq!(report["intent"]["labels"], 3, "{report}");
    let body: Value = serde_json::from_str(&ok(&funnel(&data, &["search", "python", "--explain", "--json"]))).unwrap();
    let stages = body["trace"]["stages"].as_array().unwrap();
    let entities = stages.iter().find(|s| s["component"] == "entities").expect("an entities stage");
    let by = &entities["details"]["intent_by"]["model"];
    let total: f64 = ["navigational", "filtered", "exploratory"].iter().map(|k| by[k].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-4, "{entities}");
}
