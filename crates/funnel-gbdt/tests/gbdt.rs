//! Training on seeded synthetic data whose relevance is a known function of the features.

use funnel_gbdt::{Dataset, GbdtError, Model, Objective, Params, mean_ndcg, train};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const WIDTH: usize = 8;

/// Queries of 20 documents; the label (0–4) rises with feature 0 and falls with feature 1
/// in interaction with feature 2; features 3.. are noise, and half of feature 4 is zero.
fn synthetic(queries: usize, seed: u64) -> Dataset {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut features, mut labels) = (Vec::new(), Vec::new());
    for _ in 0..queries * 20 {
        let row: Vec<f32> = (0..WIDTH)
            .map(|f| if f == 4 && rng.random_bool(0.5) { 0.0 } else { (rng.random_range(0..100) as f32) / 100.0 })
            .collect();
        let signal = 2.5 * row[0] - 1.5 * row[1] * row[2] + 0.3 * rng.random::<f32>();
        labels.push(f64::from((signal * 2.0).clamp(0.0, 4.0).floor()));
        features.extend(row);
    }
    Dataset::new(features, WIDTH, labels, vec![20; queries]).unwrap()
}

fn ndcg10(model: &Model, data: &Dataset) -> f64 {
    mean_ndcg(&data.labels, &data.groups, &model.predict_rows(&data.features, data.width), 10)
}

fn best_single_feature(data: &Dataset) -> f64 {
    (0..WIDTH)
        .flat_map(|f| {
            let scores: Vec<f64> = (0..data.rows()).map(|r| f64::from(data.row(r)[f])).collect();
            let negated: Vec<f64> = scores.iter().map(|s| -s).collect();
            [mean_ndcg(&data.labels, &data.groups, &scores, 10), mean_ndcg(&data.labels, &data.groups, &negated, 10)]
        })
        .fold(0.0, f64::max)
}

#[test]
fn every_objective_learns_beyond_the_best_single_feature() {
    for objective in [Objective::LambdaRank, Objective::RankNet, Objective::Binary, Objective::Regression] {
        let (mut train_set, mut test_set) = (synthetic(60, 1), synthetic(30, 2));
        if objective == Objective::Binary {
            // Clicks rather than grades: the top two grades are positives.
            for data in [&mut train_set, &mut test_set] {
                data.labels.iter_mut().for_each(|l| *l = f64::from(*l >= 3.0));
            }
        }
        let floor = best_single_feature(&test_set);
        let params = Params { objective, trees: 60, leaves: 15, ..Params::default() };
        let (model, report) = train(&train_set, None, &params, &mut |_, _| {}).unwrap();
        assert_eq!(report.trees_kept, 60, "{objective:?}");
        let ndcg = ndcg10(&model, &test_set);
        assert!(ndcg > floor + 0.02, "{objective:?}: test NDCG@10 {ndcg:.4} vs best single feature {floor:.4}");
    }
}

#[test]
fn the_model_does_not_depend_on_the_thread_count() {
    let data = synthetic(200, 3);
    // rows_per_thread 1: with several threads the features are cut into parts, one per
    // thread, and the gradients are computed in parallel.
    let fit = |threads, objective| {
        let params = Params { trees: 20, threads: Some(threads), rows_per_thread: 1, objective, ..Params::default() };
        train(&data, None, &params, &mut |_, _| {}).unwrap().0
    };
    for objective in [Objective::LambdaRank, Objective::Binary] {
        let one = fit(1, objective);
        assert_eq!(one, fit(2, objective), "{objective:?}");
        assert_eq!(one, fit(3, objective), "{objective:?}");
        assert!(one.trees.iter().all(|t| t.leaves() == 31));
    }
}

#[test]
fn early_stopping_keeps_the_best_validation_round() {
    let (train_set, valid) = (synthetic(40, 4), synthetic(20, 5));
    let params = Params { trees: 400, leaves: 31, min_data_in_leaf: 5, early_stopping: Some(10), ..Params::default() };
    let mut heard = 0;
    let (model, report) = train(&train_set, Some(&valid), &params, &mut |_, metric| {
        assert!(metric.is_some());
        heard += 1;
    })
    .unwrap();
    assert!(report.stopped.is_some(), "400 trees on 800 rows should overfit before the end");
    assert_eq!(heard, report.valid_metric.len());
    let best = report.valid_metric.iter().copied().fold(f64::MIN, f64::max);
    assert_eq!(model.trees.len(), report.valid_metric.iter().position(|&m| m == best).unwrap() + 1);
    assert!((ndcg10(&model, &valid) - best).abs() < 1e-12);

    // Patience not used up: the model is still the best round, not the last.
    let params = Params { trees: 100, early_stopping: Some(1000), ..params };
    let (model, report) = train(&train_set, Some(&valid), &params, &mut |_, _| {}).unwrap();
    let best = report.valid_metric.iter().copied().fold(f64::MIN, f64::max);
    assert_eq!(model.trees.len(), report.valid_metric.iter().position(|&m| m == best).unwrap() + 1);
    assert!(report.stopped.is_none() && model.trees.len() < 100, "best after {} of 100", model.trees.len());
    let zero = Params { early_stopping: Some(0), ..Params::default() };
    assert!(matches!(train(&train_set, Some(&valid), &zero, &mut |_, _| {}), Err(GbdtError::Input(_))));
}

#[test]
fn saved_models_predict_the_same_and_damaged_files_are_refused() {
    let data = synthetic(20, 6);
    let (model, _) = train(&data, None, &Params { trees: 10, ..Params::default() }, &mut |_, _| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.json");
    model.save(&path).unwrap();
    let loaded = Model::load(&path).unwrap();
    assert_eq!(Model::read(&path).unwrap().1, funnel_gbdt::ModelFile::Funnel);
    assert_eq!(loaded.predict_rows(&data.features, WIDTH), model.predict_rows(&data.features, WIDTH));
    assert!(!model.importance().is_empty() && model.importance()[0].feature == 0);

    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("\"left\":[", "\"left\":[99,", 1)).unwrap();
    assert!(matches!(Model::load(&path), Err(GbdtError::Format { .. })));
    // Two nodes sharing a child would make walks repeat: refused.
    let mut graph = model.clone();
    if graph.trees[0].feature.len() >= 3 {
        let shared = graph.trees[0].left[0];
        graph.trees[0].right[0] = shared;
        graph.save(&path).unwrap();
        assert!(Model::load(&path).unwrap_err().to_string().contains("node 0 has child"));
    }
    std::fs::write(&path, "{}").unwrap();
    assert!(Model::load(&path).unwrap_err().to_string().contains("model.json"));
}

#[test]
fn bad_input_is_a_user_error() {
    assert!(matches!(Dataset::new(vec![0.0; 4], 2, vec![1.0], vec![1]), Err(GbdtError::Input(_))));
    assert!(matches!(Dataset::new(vec![0.0; 2], 2, vec![1.0], vec![2]), Err(GbdtError::Input(_))));
    assert!(matches!(Dataset::new(vec![0.0; 2], 2, vec![-1.0], vec![1]), Err(GbdtError::Input(_))));
    assert!(
        Dataset::new(vec![0.0, f32::INFINITY], 2, vec![1.0], vec![1]).unwrap_err().to_string().contains("feature 2")
    );
    assert!(Dataset::new(vec![0.0, f32::NAN], 2, vec![1.0], vec![1]).is_ok());
    let data = synthetic(5, 7);
    let params = Params { leaves: 1, ..Params::default() };
    assert!(matches!(train(&data, None, &params, &mut |_, _| {}), Err(GbdtError::Input(_))));
}

#[test]
fn the_compiled_forest_scores_exactly_as_the_trees() {
    let data = synthetic(30, 8);
    // 31 leaves: scored by QuickScorer; 40: by walking the trees.
    for leaves in [31, 40] {
        let params = Params { trees: 30, leaves, min_data_in_leaf: 2, ..Params::default() };
        let (model, _) = train(&data, None, &params, &mut |_, _| {}).unwrap();
        let largest = model.trees.iter().map(|t| t.leaves()).max().unwrap();
        assert!(if leaves > 32 { largest > 32 } else { largest > 20 }, "trees of {largest} leaves");
        let forest = model.compile();
        let mut rows = data.features.clone();
        rows[3] = f32::NAN; // NaN counts as 0
        rows[WIDTH + 1] = f32::INFINITY;
        rows[2 * WIDTH + 2] = f32::NEG_INFINITY;
        // Values at, just below and just above thresholds.
        for (r, tree) in (3..).zip(model.trees.iter().take(60)) {
            let at = tree.threshold[0] as f32;
            let value = [at, at.next_down(), at.next_up()][r % 3];
            rows[r * WIDTH + tree.feature[0] as usize] = value;
        }
        let plain: Vec<f64> = rows.chunks(WIDTH).map(|row| model.predict(row)).collect();
        assert_eq!(forest.predict_rows(&rows, WIDTH), plain);
        // A number of rows that fills no SIMD register, and single rows.
        assert_eq!(forest.predict_rows(&rows[..13 * WIDTH], WIDTH), plain[..13]);
        for r in [0, 1, 2, 17] {
            assert_eq!(forest.predict_rows(&rows[r * WIDTH..(r + 1) * WIDTH], WIDTH), [plain[r]]);
        }
        // Rows narrower than the model's: the missing features are 0.
        let narrow: Vec<f32> = rows.chunks(WIDTH).flat_map(|r| r[..5].to_vec()).collect();
        let expected: Vec<f64> = narrow.chunks(5).map(|row| model.predict(row)).collect();
        assert_eq!(forest.predict_rows(&narrow, 5), expected);
    }
    // A NaN threshold routes rows one way in a walk and the other in QuickScorer: refused.
    let (mut model, _) = train(&data, None, &Params { trees: 2, ..Params::default() }, &mut |_, _| {}).unwrap();
    model.trees[1].threshold[0] = f64::NAN;
    assert!(model.validate().unwrap_err().contains("NaN threshold"));
}

#[test]
fn lightgbm_models_load_and_predict_as_lightgbm() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lightgbm");
    let (model, kind) = Model::read(&dir.join("model.txt")).unwrap();
    assert_eq!(kind, funnel_gbdt::ModelFile::LightGbm);
    assert_eq!((model.objective, model.width, model.trees.len()), (Objective::LambdaRank, 6, 8));
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let rows: Vec<f32> = expected["rows"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().map_or(f32::NAN, |v| v as f32)))
        .collect();
    let want: Vec<f64> = expected["scores"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let got = model.predict_rows(&rows, 6);
    assert_eq!(got.len(), want.len());
    for (i, (got, want)) in got.iter().zip(&want).enumerate() {
        assert!((got - want).abs() < 1e-12, "row {i}: {got} vs LightGBM's {want}");
    }

    // What cannot be read is refused with the line and the reason.
    let text = std::fs::read_to_string(dir.join("model.txt")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("model.txt");
    std::fs::write(&path, text.replacen("decision_type=2 ", "decision_type=9 ", 1)).unwrap();
    let error = Model::load(&path).unwrap_err().to_string();
    assert!(error.contains("model.txt: cannot read this model: line ") && error.contains("decision type 9"), "{error}");
    std::fs::write(&path, text.replacen("left_child=2 ", "left_child=0 ", 1)).unwrap();
    assert!(Model::load(&path).unwrap_err().to_string().contains("tree 0: node 0 has child 0"));
    std::fs::write(&path, text.replacen("decision_type=2 2 2 2 2 2", "decision_type=2", 1)).unwrap();
    assert!(Model::load(&path).unwrap_err().to_string().contains("1 decision types for 6 nodes"));
    std::fs::write(&path, text.replacen("Tree=0", "average_output\n\nTree=0", 1)).unwrap();
    assert!(Model::load(&path).unwrap_err().to_string().contains("average_output"));

    // Renumbered for rows whose first column the model calls feature 1.
    let mut shifted = model.clone();
    assert!(shifted.shift_features(1).is_err(), "the fixture splits on feature 0");
    let mut wider = model.clone();
    wider.trees.iter_mut().for_each(|t| t.feature.iter_mut().for_each(|f| *f += 1));
    wider.width += 1;
    wider.shift_features(1).unwrap();
    assert_eq!(wider, model);
}

/// Clicks logged under position bias: each query's documents were shown in the order of a
/// logging score (feature 1) unrelated to relevance; a user examines position k (0-based)
/// with probability 1 / (k + 1) and clicks an examined document with probability equal to
/// its relevance (feature 0). Trained on the clicks alone, LambdaMART learns the logging
/// score too; weighting each click by 1 / its position's propensity removes that.
#[test]
fn inverse_propensity_weights_undo_position_bias() {
    let mut rng = StdRng::seed_from_u64(21);
    let (queries, per_query) = (2000, 10);
    // With `biased` false every position is examined with the same, mean probability: as
    // many clicks, no bias.
    let mean_propensity = (1..=per_query).map(|k| 1.0 / k as f64).sum::<f64>() / per_query as f64;
    let sample = |rng: &mut StdRng, queries: usize, biased: bool| {
        let mut features = Vec::new();
        let (mut clicks, mut weights, mut truth) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..queries {
            let rows: Vec<[f32; 4]> =
                (0..per_query).map(|_| [rng.random(), rng.random(), rng.random(), rng.random()]).collect();
            let mut shown: Vec<usize> = (0..per_query).collect();
            shown.sort_by(|&a, &b| rows[b][1].total_cmp(&rows[a][1]));
            let mut position = vec![0; per_query];
            for (k, &d) in shown.iter().enumerate() {
                position[d] = k;
            }
            for (d, row) in rows.iter().enumerate() {
                let propensity = if biased { 1.0 / (position[d] as f64 + 1.0) } else { mean_propensity };
                let click = rng.random::<f64>() < propensity && rng.random::<f32>() < row[0];
                clicks.push(f64::from(u8::from(click)));
                weights.push(if click { 1.0 / propensity } else { 1.0 });
                truth.push(f64::from((row[0] * 4.0).floor()));
                features.extend_from_slice(row);
            }
        }
        (features, clicks, weights, truth)
    };
    let (features, clicks, weights, _) = sample(&mut rng, queries, true);
    let naive = Dataset::new(features, 4, clicks, vec![per_query; queries]).unwrap();
    let weighted = naive.clone().with_weights(weights).unwrap();
    let (features, _, _, truth) = sample(&mut rng, 500, true);
    let test = Dataset::new(features, 4, truth, vec![per_query; 500]).unwrap();

    // The ceiling: as many clicks logged without position bias.
    let (features, clicks, _, _) = sample(&mut StdRng::seed_from_u64(22), queries, false);
    let unbiased = Dataset::new(features, 4, clicks, vec![per_query; queries]).unwrap();
    // LambdaRank's normalisation rescales each query's lambdas to log2(1 + Σλ) / Σλ, which
    // undoes most of what the weights do: it is turned off (see `Dataset::with_weights`).
    let base = Params { trees: 40, leaves: 7, min_data_in_leaf: 50, ..Params::default() };
    for params in [
        Params { normalize: false, ..base.clone() },
        Params { objective: Objective::RankNet, ..base.clone() },
        Params { objective: Objective::Binary, ..base.clone() },
    ] {
        let fit = |data: &Dataset| ndcg10(&train(data, None, &params, &mut |_, _| {}).unwrap().0, &test);
        let (naive, weighted, ceiling) = (fit(&naive), fit(&weighted), fit(&unbiased));
        eprintln!("{:?}: naive {naive:.4}, weighted {weighted:.4}, unbiased clicks {ceiling:.4}", params.objective);
        assert!(
            weighted - naive > 0.5 * (ceiling - naive),
            "{:?}: NDCG@10 on true relevance: naive {naive:.4}, weighted {weighted:.4}, unbiased clicks {ceiling:.4}",
            params.objective
        );
    }
}

#[test]
fn training_grows_lightgbms_trees() {
    // LightGBM's binning, split search (hessian-estimated leaf counts, thresholds scanned
    // from the top) and LambdaMART gradients (its sigmoid grid, single precision): on one
    // thread the same data and settings grow the same trees.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lightgbm");
    let (lightgbm, _) = Model::read(&dir.join("model.txt")).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let train_spec = &expected["train"];
    let numbers =
        |key: &str| -> Vec<f64> { train_spec[key].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect() };
    let rows: Vec<f32> = train_spec["rows"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32))
        .collect();
    let groups = numbers("groups").into_iter().map(|g| g as usize).collect();
    let data = Dataset::new(rows, 6, numbers("labels"), groups).unwrap();
    let setting = |key: &str| train_spec[key].as_f64().unwrap();
    let params = Params {
        trees: setting("trees") as usize,
        leaves: setting("leaves") as usize,
        min_data_in_leaf: setting("min_data_in_leaf") as usize,
        learning_rate: setting("learning_rate"),
        threads: Some(1),
        ..Params::default()
    };
    let (model, _) = train(&data, None, &params, &mut |_, _| {}).unwrap();
    assert_eq!(model.trees.len(), lightgbm.trees.len());
    for (t, (ours, theirs)) in model.trees.iter().zip(&lightgbm.trees).enumerate() {
        assert_eq!(ours.feature, theirs.feature, "tree {t}: split features");
        assert_eq!(ours.threshold, theirs.threshold, "tree {t}: thresholds");
        assert_eq!((&ours.left, &ours.right), (&theirs.left, &theirs.right), "tree {t}: shape");
        for (a, b) in ours.leaf_value.iter().zip(&theirs.leaf_value) {
            assert!((a - b).abs() <= 1e-9 * b.abs().max(1e-3), "tree {t}: leaf value {a} vs LightGBM's {b}");
        }
    }
}
