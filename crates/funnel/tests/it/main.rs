//! The `funnel` command end to end, as a user runs it.

mod crash;
mod eval;
mod intent;
mod rerank;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn funnel(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_funnel"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("FUNNEL_CONFIG")
        .output()
        .expect("the funnel binary runs")
}

fn ok(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn failed(output: &Output) -> String {
    assert!(!output.status.success(), "unexpectedly succeeded: {}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// A MovieLens-layout ratings file: 40 users, 30 items, user u rates items u..u+9.
fn ratings_file(dir: &Path) -> PathBuf {
    let mut text = String::new();
    for user in 0..40 {
        for offset in 0..10 {
            let item = (user + offset) % 30;
            text.push_str(&format!("{user}\t{item}\t4\t{}\n", 880_000_000 + user * 100 + offset));
        }
    }
    let path = dir.join("u.data");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn import_train_recommend_returns_unseen_items_with_a_trace() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ratings = ratings_file(dir.path());
    let report: Value = serde_json::from_str(&ok(&funnel(
        &data,
        &["import", "events", ratings.to_str().unwrap(), "--format", "movielens", "--json"],
    )))
    .unwrap();
    assert_eq!(report["records"], 400);
    let trained: Value = serde_json::from_str(&ok(&funnel(&data, &["train", "--json"]))).unwrap();
    assert_eq!((trained["items"].as_u64(), trained["events"].as_u64()), (Some(30), Some(400)));
    let body: Value =
        serde_json::from_str(&ok(&funnel(&data, &["recommend", "--user", "3", "--k", "10", "--explain", "--json"])))
            .unwrap();
    let ids: Vec<u64> =
        body["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().parse().unwrap()).collect();
    assert_eq!(ids.len(), 10);
    assert!(ids.iter().all(|&item| !(3..13).contains(&item)), "user 3 rated items 3..12: {ids:?}");
    assert!(body["trace"]["stages"].as_array().unwrap().len() >= 4);
    let table = ok(&funnel(&data, &["recommend", "--user", "3", "--k", "3"]));
    assert!(table.lines().count() >= 4, "{table}");
    let visitor = ok(&funnel(&data, &["recommend", "--context", "country=DE", "--k", "3", "--json"]));
    assert!(visitor.contains("\"items\""), "{visitor}");
    let stderr = failed(&funnel(&data, &["recommend", "--context", "DE"]));
    assert!(stderr.contains("not name=value"), "{stderr}");
}

#[test]
fn a_bad_line_fails_the_import_with_file_line_and_field_and_imports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, "{\"user\":\"a\",\"item\":\"b\",\"kind\":\"click\",\"timestamp\":1}\n{\"user\":\"a\",\"item\":\"c\",\"kind\":\"click\",\"timestamp\":\"x\"}\n").unwrap();
    let stderr = failed(&funnel(&data, &["import", "events", file.to_str().unwrap()]));
    assert!(stderr.contains("events.jsonl:2: field `timestamp`"), "{stderr}");
    let trained: Value = serde_json::from_str(&ok(&funnel(&data, &["train", "--json"]))).unwrap();
    assert_eq!(trained["events"], 0, "the failed import must leave nothing behind");

    let skipped: Value = serde_json::from_str(&ok(&funnel(
        &data,
        &["import", "events", file.to_str().unwrap(), "--skip-bad", "--json"],
    )))
    .unwrap();
    assert_eq!((skipped["records"].as_u64(), skipped["skipped"].as_u64()), (Some(1), Some(1)));
}

#[test]
fn non_utf8_csv_and_missing_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("items.csv");
    std::fs::write(&file, b"id,title\n1,Caf\xe9\n").unwrap();
    let stderr = failed(&funnel(&data, &["import", "items", file.to_str().unwrap()]));
    assert!(stderr.contains("items.csv:2") && stderr.contains("UTF-8"), "{stderr}");
    let stderr = failed(&funnel(&data, &["import", "items", "no-such-file.csv"]));
    assert!(stderr.contains("no-such-file.csv: not found"), "{stderr}");
}

#[test]
fn queries_without_a_snapshot_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = failed(&funnel(&dir.path().join("data"), &["recommend", "--user", "1"]));
    assert!(stderr.contains("funnel train"), "{stderr}");
}

#[test]
fn configuration_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("funnel.toml"),
        "[surfaces.home]\nsources = [{ name = \"popular\" }]\nranker = \"magic\"\n",
    )
    .unwrap();
    let stderr = failed(&funnel(&data, &["train"]));
    assert!(stderr.contains("funnel.toml") && stderr.contains("surfaces.home.ranker"), "{stderr}");
}

#[test]
fn quickstart_builds_a_demo_and_prints_requests_to_try() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = ok(&funnel(&data, &["quickstart", "--no-serve"]));
    assert!(out.contains("simulated 1000 items, 500 users"), "{out}");
    assert!(out.contains("curl 'http://127.0.0.1:8080/recommend?user="), "{out}");
    let again = ok(&funnel(&data, &["quickstart", "--no-serve"]));
    assert!(again.contains("reusing the store"), "{again}");
    let body: Value =
        serde_json::from_str(&ok(&funnel(&data, &["search", "haunted", "manor", "--json", "--k", "3"]))).unwrap();
    assert_eq!(body["items"].as_array().unwrap().len(), 3);
}
