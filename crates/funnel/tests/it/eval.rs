//! `funnel eval` and `funnel split` as a user runs them, on generated files.

use std::path::Path;

use serde_json::Value;

use crate::{failed, funnel, ok};

/// 60 users × 12 ratings on 40 items with a popularity skew; the last 3 per user are test.
fn write_split(dir: &Path) -> (String, String) {
    let (mut train, mut test) = (String::new(), String::new());
    for user in 0..60 {
        for n in 0..12 {
            let item = (user * 7 + n * n) % 40 / (1 + n % 3);
            let rating = 1 + (user + n) % 5;
            let line = format!("{user}\t{item}\t{rating}\t{}\n", 880_000_000 + n);
            if n < 9 { train.push_str(&line) } else { test.push_str(&line) }
        }
    }
    let (train_path, test_path) = (dir.join("u9.base"), dir.join("u9.test"));
    std::fs::write(&train_path, train).unwrap();
    std::fs::write(&test_path, test).unwrap();
    (train_path.display().to_string(), test_path.display().to_string())
}

#[test]
fn eval_recs_prints_the_documented_json_the_same_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = write_split(dir.path());
    let run = dir.path().join("pop.run");
    let args = [
        "eval",
        "recs",
        "--train",
        &train,
        "--test",
        &test,
        "--format",
        "movielens",
        "--models",
        "pop,random",
        "--k",
        "5,10",
        "--min-relevance",
        "3",
        "--baseline",
        "pop",
        "--json",
        "--run",
        run.to_str().unwrap(),
    ];
    let first = ok(&funnel(dir.path(), &args));
    let reports: Vec<Value> = first.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(reports.len(), 2);
    for key in ["task", "dataset", "system", "params", "metrics", "n_evaluated", "n_skipped", "timing"] {
        assert!(reports[0].get(key).is_some(), "missing {key}: {}", reports[0]);
    }
    for key in ["fit_s", "index_s", "eval_s", "qps"] {
        assert!(reports[0]["timing"].get(key).is_some(), "missing timing.{key}");
    }
    assert!(reports[0]["metrics"]["ndcg@10"].as_f64().unwrap() > 0.0);
    let comparison = &reports[1]["comparison"]["ndcg@10"];
    assert!(comparison["ci95"].as_array().unwrap().len() == 2 && comparison["p_value"].is_number());

    let second = ok(&funnel(dir.path(), &args));
    let metrics = |text: &str| {
        text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["metrics"].clone()).collect::<Vec<_>>()
    };
    assert_eq!(metrics(&first), metrics(&second), "same seed, same numbers");

    let run_text = std::fs::read_to_string(dir.path().join("pop.run.pop")).unwrap();
    let line: Vec<&str> = run_text.lines().next().unwrap().split(' ').collect();
    assert_eq!((line.len(), line[1], line[3], line[5]), (6, "Q0", "1", "pop"));
    assert!(dir.path().join("pop.run.random").exists());

    let table = ok(&funnel(dir.path(), &args[..args.len() - 3]));
    assert!(table.contains("random vs pop") && table.contains("ndcg@10"), "{table}");
}

#[test]
fn eval_search_scores_a_beir_folder() {
    let dir = tempfile::tempdir().unwrap();
    let beir = dir.path().join("tiny");
    std::fs::create_dir_all(beir.join("qrels")).unwrap();
    std::fs::write(beir.join("corpus.jsonl"), concat!(
        "{\"_id\": \"d1\", \"title\": \"wing flutter\", \"text\": \"flutter of a wing in supersonic flow\"}\n",
        "{\"_id\": \"d2\", \"title\": \"boundary layer\", \"text\": \"heat transfer in a laminar boundary layer\"}\n",
        "{\"_id\": \"d3\", \"title\": \"shell buckling\", \"text\": \"buckling of thin cylindrical shells\"}\n")).unwrap();
    std::fs::write(beir.join("queries.jsonl"), "{\"_id\": \"1\", \"text\": \"wing flutter\"}\n{\"_id\": \"2\", \"text\": \"laminar heat transfer\"}\n{\"_id\": \"3\", \"text\": \"nothing judged\"}\n").unwrap();
    std::fs::write(beir.join("qrels/test.tsv"), "query-id\tcorpus-id\tscore\n1\td1\t2\n2\td2\t1\n3\td3\t0\n").unwrap();
    let report: Value =
        serde_json::from_str(&ok(&funnel(dir.path(), &["eval", "search", "--beir", beir.to_str().unwrap(), "--json"])))
            .unwrap();
    assert_eq!((report["n_evaluated"].as_u64(), report["n_skipped"].as_u64()), (Some(2), Some(1)));
    assert_eq!(report["metrics"]["ndcg@10"], 1.0);
    let stderr = failed(&funnel(dir.path(), &["eval", "search", "--beir", beir.to_str().unwrap(), "--mode", "dense"]));
    assert!(stderr.contains("need an embedding model"), "{stderr}");
    let stderr = failed(&funnel(dir.path(), &["eval", "search", "--beir", beir.to_str().unwrap(), "--mode", "magic"]));
    assert!(stderr.contains("unknown --mode `magic`"), "{stderr}");
    let stderr = failed(&funnel(dir.path(), &["eval", "search", "--beir", dir.path().to_str().unwrap()]));
    assert!(stderr.contains("corpus.jsonl"), "{stderr}");
}

#[test]
fn split_writes_files_that_eval_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let (train, _) = write_split(dir.path());
    let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
    let out = ok(&funnel(
        dir.path(),
        &[
            "split",
            &train,
            "--format",
            "movielens",
            "--method",
            "last-n",
            "--n",
            "2",
            "--train",
            a.to_str().unwrap(),
            "--test",
            b.to_str().unwrap(),
        ],
    ));
    assert!(out.contains("test:  120 events of 60 users"), "{out}");
    let report: Value = serde_json::from_str(&ok(&funnel(
        dir.path(),
        &["eval", "recs", "--train", a.to_str().unwrap(), "--test", b.to_str().unwrap(), "--json"],
    )))
    .unwrap();
    assert_eq!(report["n_evaluated"], 60);
    let stderr = failed(&funnel(
        dir.path(),
        &["eval", "recs", "--train", a.to_str().unwrap(), "--test", b.to_str().unwrap(), "--models", "magic"],
    ));
    assert!(stderr.contains("unknown model `magic`"), "{stderr}");
}

#[test]
fn eval_ltr_reads_svmlight_with_query_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("rank.train");
    std::fs::write(&data, "2 1:0.9 2:0.1\n0 1:0.1 2:0.5\n1 1:0.7\n0 2:0.9\n").unwrap();
    std::fs::write(dir.path().join("rank.train.query"), "2\n2\n").unwrap();
    let model = dir.path().join("model.json");
    let out = ok(&funnel(
        dir.path(),
        &[
            "eval",
            "ltr",
            "--train",
            data.to_str().unwrap(),
            "--test",
            data.to_str().unwrap(),
            "--min-data-in-leaf",
            "1",
            "--save-model",
            model.to_str().unwrap(),
            "--json",
        ],
    ));
    let reports: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(reports[0]["system"], "best-feature");
    assert_eq!(reports[0]["params"]["feature"], 1);
    assert_eq!(reports[0]["metrics"]["ndcg@10"], 1.0);
    assert_eq!((&reports[1]["system"], &reports[1]["baseline"]), (&"gbdt".into(), &"best-feature".into()));
    assert_eq!(reports[1]["metrics"]["ndcg@10"], 1.0);
    assert!(funnel_gbdt::Model::load(&model).unwrap().trees.len() > 1);
    let stderr = failed(&funnel(
        dir.path(),
        &["eval", "ltr", "--train", data.to_str().unwrap(), "--test", data.to_str().unwrap(), "--model", "forest"],
    ));
    assert!(stderr.contains("unknown --model `forest`"), "{stderr}");

    // A LightGBM model file (6 features) must say how it numbers features.
    let lightgbm =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../funnel-gbdt/tests/fixtures/lightgbm/model.txt");
    let six = dir.path().join("six.txt");
    std::fs::write(&six, "2 qid:1 1:0.9 2:0.5 3:0.5 4:0.1\n0 qid:1 1:0.1 2:0.2 3:0.9 4:0.8\n").unwrap();
    let args =
        ["eval", "ltr", "--train", six.to_str().unwrap(), "--test", six.to_str().unwrap(), "--model", "best-feature"];
    let with_file = |extra: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--model-file", lightgbm.to_str().unwrap(), "--json"]);
        all.extend_from_slice(extra);
        funnel(dir.path(), &all)
    };
    assert!(failed(&with_file(&[])).contains("--lightgbm-indices"));
    let out = ok(&with_file(&["--lightgbm-indices", "columns"]));
    let last: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!((&last["system"], &last["metrics"]["ndcg@10"]), (&"model.txt".into(), &1.0.into()));
    assert!(failed(&with_file(&["--lightgbm-indices", "file"])).contains("splits on feature 0"));
    std::fs::remove_file(dir.path().join("rank.train.query")).unwrap();
    let stderr = failed(&funnel(
        dir.path(),
        &["eval", "ltr", "--train", data.to_str().unwrap(), "--test", data.to_str().unwrap()],
    ));
    assert!(stderr.contains("rank.train.query"), "{stderr}");
}

#[test]
fn eval_engine_scores_the_trained_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = write_split(dir.path());
    let data = dir.path().join("data");
    ok(&funnel(&data, &["import", "events", &train, "--format", "movielens"]));
    ok(&funnel(&data, &["train"]));
    let report: Value = serde_json::from_str(&ok(&funnel(
        &data,
        &["eval", "engine", "--test", &test, "--format", "movielens", "--min-relevance", "3", "--json"],
    )))
    .unwrap();
    assert_eq!(report["system"], "engine:home");
    assert!(report["params"]["cf_model"].as_str().unwrap().starts_with("ease"), "{report}");
    assert!(report["n_evaluated"].as_u64().unwrap() > 30);
}

#[test]
fn eval_propensity_reads_randomised_impressions_and_names_bad_fields() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs.csv");
    let rows: String =
        (0..300).map(|i| format!("{i},{},{}\n", i % 3 + 1, u8::from(i % 3 == 0 || i % 9 == 1))).collect();
    std::fs::write(&logs, format!("round,position,click\n{rows}")).unwrap();
    let out = ok(&funnel(dir.path(), &["eval", "propensity", "--logs", logs.to_str().unwrap(), "--json"]));
    let report: Value = serde_json::from_str(&out).unwrap();
    let positions = report["positions"].as_array().unwrap();
    assert_eq!(positions.len(), 3);
    // Position 1 is clicked in all its 100 rows, position 2 in 34 (i % 9 == 1), position 3 never.
    let propensities: Vec<f64> = positions.iter().map(|p| p["propensity"].as_f64().unwrap()).collect();
    assert_eq!(propensities.len(), 3);
    assert!((propensities[1] - 0.34).abs() < 1e-12 && propensities[2] == 0.0, "{propensities:?}");

    std::fs::write(&logs, "round,position,click\n0,1,1\n1,2,yes\n").unwrap();
    let stderr = failed(&funnel(dir.path(), &["eval", "propensity", "--logs", logs.to_str().unwrap()]));
    assert!(stderr.contains("logs.csv:3") && stderr.contains("field `click`"), "{stderr}");
    let stderr = failed(&funnel(
        dir.path(),
        &["eval", "propensity", "--logs", logs.to_str().unwrap(), "--click-column", "clicked"],
    ));
    assert!(stderr.contains("no `clicked` column"), "{stderr}");
}
