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
}

#[test]
fn saved_models_predict_the_same_and_damaged_files_are_refused() {
    let data = synthetic(20, 6);
    let (model, _) = train(&data, None, &Params { trees: 10, ..Params::default() }, &mut |_, _| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.json");
    model.save(&path).unwrap();
    let loaded = Model::load(&path).unwrap();
    assert_eq!(loaded.predict_rows(&data.features, WIDTH), model.predict_rows(&data.features, WIDTH));
    assert!(!model.importance().is_empty() && model.importance()[0].feature == 0);

    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("\"left\":[", "\"left\":[99,", 1)).unwrap();
    assert!(matches!(Model::load(&path), Err(GbdtError::Format { .. })));
    std::fs::write(&path, "{}").unwrap();
    assert!(Model::load(&path).unwrap_err().to_string().contains("model.json"));
}

#[test]
fn bad_input_is_a_user_error() {
    assert!(matches!(Dataset::new(vec![0.0; 4], 2, vec![1.0], vec![1]), Err(GbdtError::Input(_))));
    assert!(matches!(Dataset::new(vec![0.0; 2], 2, vec![1.0], vec![2]), Err(GbdtError::Input(_))));
    assert!(matches!(Dataset::new(vec![0.0; 2], 2, vec![-1.0], vec![1]), Err(GbdtError::Input(_))));
    let data = synthetic(5, 7);
    let params = Params { leaves: 1, ..Params::default() };
    assert!(matches!(train(&data, None, &params, &mut |_, _| {}), Err(GbdtError::Input(_))));
}

#[test]
fn the_compiled_forest_scores_exactly_as_the_trees() {
    let data = synthetic(30, 8);
    let params = Params { trees: 30, min_data_in_leaf: 3, ..Params::default() };
    let (model, _) = train(&data, None, &params, &mut |_, _| {}).unwrap();
    let forest = model.compile();
    let mut rows = data.features.clone();
    rows[3] = f32::NAN; // NaN counts as 0
    rows[WIDTH + 1] = f32::INFINITY;
    let plain: Vec<f64> = rows.chunks(WIDTH).map(|row| model.predict(row)).collect();
    assert_eq!(forest.predict_rows(&rows, WIDTH), plain);
    // Rows narrower than the model's: the missing features are 0.
    let narrow: Vec<f32> = rows.chunks(WIDTH).flat_map(|r| r[..5].to_vec()).collect();
    let expected: Vec<f64> = narrow.chunks(5).map(|row| model.predict(row)).collect();
    assert_eq!(forest.predict_rows(&narrow, 5), expected);
}
