use std::fmt::Write as _;

use super::*;

/// A campaign folder and an action-distribution file in `dir`.
fn write(
    dir: &Path,
    items: usize,
    rounds: &[(u32, u32, f64, f64)],
    dist: &[(usize, u32, u32, f64)],
) -> (PathBuf, PathBuf) {
    let logs = dir.join("campaign");
    std::fs::create_dir_all(&logs).unwrap();
    let mut context = String::from(",item_id,item_feature_0\n");
    for i in 0..items {
        writeln!(context, "{i},{i},0.5").unwrap();
    }
    std::fs::write(logs.join("item_context.csv"), context).unwrap();
    let mut csv = String::from(",timestamp,item_id,position,click,propensity_score\n");
    for (t, (item, position, click, p)) in rounds.iter().enumerate() {
        writeln!(csv, "{t},2019-11-24,{item},{position},{click},{p}").unwrap();
    }
    std::fs::write(logs.join("all.csv"), csv).unwrap();
    let mut text = String::from("round,item,position,prob\n");
    for (round, item, position, prob) in dist {
        writeln!(text, "{round},{item},{position},{prob}").unwrap();
    }
    let dist_path = dir.join("dist.csv");
    std::fs::write(&dist_path, text).unwrap();
    (logs, dist_path)
}

fn run(logs: &Path, dist: &Path, options: &OpeOptions) -> Result<OpeReport, EvalError> {
    let logs = read_logs(logs)?;
    let dist = read_action_dist(dist, &logs)?;
    Ok(evaluate(&logs, &dist, options))
}

#[test]
fn estimators_follow_their_definitions() {
    let dir = tempfile::tempdir().unwrap();
    // Two items, one position, the logging policy uniform (p = 0.5); the target puts item
    // 0 first with probability 0.8.
    let rounds = [(0, 1, 1.0, 0.5), (1, 1, 0.0, 0.5), (0, 1, 0.0, 0.5), (1, 1, 1.0, 0.5)];
    let dist: Vec<(usize, u32, u32, f64)> = (0..4).flat_map(|t| [(t, 0, 0, 0.8), (t, 1, 0, 0.2)]).collect();
    let (logs, dist) = write(dir.path(), 2, &rounds, &dist);
    let options = OpeOptions { prior_strength: 2.0, bootstrap: 200, seed: 1 };
    let report = run(&logs, &dist, &options).unwrap();
    let w = [1.6, 0.4, 1.6, 0.4];
    let r = [1.0, 0.0, 0.0, 1.0];
    let ips = (0..4).map(|t| w[t] * r[t]).sum::<f64>() / 4.0;
    assert!((report.metrics["ips"] - ips).abs() < 1e-12, "{report:?}");
    assert!((report.metrics["snips"] - ips * 4.0 / 4.0).abs() < 1e-12, "Σw = 4");
    // Each item: 1 click in 2 rounds; the position rate 0.5: q̂ = (1 + 2·0.5) / (2 + 2) = 0.5.
    assert!((report.metrics["dm"] - 0.5).abs() < 1e-12);
    let dr = 0.5 + (0..4).map(|t| w[t] * (r[t] - 0.5)).sum::<f64>() / 4.0;
    assert!((report.metrics["dr"] - dr).abs() < 1e-12);
    assert!((report.metrics["sndr"] - dr).abs() < 1e-12, "mean weight 1: SNDR = DR");
    assert_eq!(report.weights.max, 1.6);
    let [low, high] = report.ci95["ips"];
    assert!(low <= ips && ips <= high, "{low} {high}");
    assert_eq!(report.by_position[&1]["ips"], ips);
}

#[test]
fn estimates_recover_a_policy_value_in_simulation() {
    // Uniform logging over 5 items at 2 positions (p = 0.2); click probability = item
    // appeal × position examination. The target always shows item 0 at either position.
    let appeal = [0.30, 0.10, 0.05, 0.05, 0.02];
    let examination = [1.0, 0.5];
    let mut rng = StdRng::seed_from_u64(3);
    let n = 40_000;
    let rounds: Vec<(u32, u32, f64, f64)> = (0..n)
        .map(|_| {
            let (item, position) = (rng.random_range(0..5u32), rng.random_range(0..2u32));
            let click = rng.random_bool(appeal[item as usize] * examination[position as usize]);
            (item, position + 1, f64::from(u8::from(click)), 0.2)
        })
        .collect();
    let dist: Vec<(usize, u32, u32, f64)> = (0..n)
        .flat_map(|t| (0..5).flat_map(move |a| (0..2).map(move |k| (t, a, k, f64::from(u8::from(a == 0))))))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let (logs, dist) = write(dir.path(), 5, &rounds, &dist);
    let report = run(&logs, &dist, &OpeOptions { bootstrap: 300, ..OpeOptions::default() }).unwrap();
    // Positions are logged uniformly, so the truth is item 0's mean over them.
    let truth = appeal[0] * (examination[0] + examination[1]) / 2.0;
    // DM's interval holds the reward model fixed (as obp's does), so it is narrower than
    // its error: only closeness is asked of it.
    assert!((report.metrics["dm"] - truth).abs() < 0.01, "dm: {} vs {truth}", report.metrics["dm"]);
    for name in ["ips", "snips", "dr", "sndr"] {
        // Within 1.5 half-widths of the 95% interval (about 3 standard errors): five
        // estimators on one sample would miss a bare 95% interval now and then.
        let (value, [low, high]) = (report.metrics[name], report.ci95[name]);
        let half = (high - low) / 2.0;
        assert!((value - truth).abs() <= 1.5 * half, "{name}: {value} [{low}, {high}] misses {truth}");
        assert!((value - truth).abs() < 0.02, "{name}: {value} vs {truth}");
    }
    let logged = appeal.iter().sum::<f64>() / 5.0 * 0.75;
    assert!((report.logged_value - logged).abs() < 0.01, "{} vs {logged}", report.logged_value);
    assert!((report.by_position[&1]["snips"] - appeal[0]).abs() < 0.03, "{:?}", report.by_position);
}

#[test]
fn bad_files_are_named_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let dist = [(0, 0, 0, 0.5), (0, 1, 0, 0.5)];
    let (logs, dist_path) = write(dir.path(), 2, &[(0, 1, 1.0, 0.5)], &dist);
    let error = run(&logs, &dist_path, &OpeOptions::default()).unwrap();
    assert_eq!(error.rounds, 1);

    let (logs, dist_path) = write(dir.path(), 2, &[(0, 1, 1.0, 0.5)], &[(0, 0, 0, 0.5)]);
    let error = run(&logs, &dist_path, &OpeOptions::default()).unwrap_err().to_string();
    assert!(error.contains("sum to 0.5") && error.contains("round 0"), "{error}");

    let (logs, dist_path) = write(dir.path(), 2, &[(0, 1, 1.0, 0.5)], &[(0, 7, 0, 1.0)]);
    let error = run(&logs, &dist_path, &OpeOptions::default()).unwrap_err().to_string();
    assert!(error.contains("dist.csv:2") && error.contains("field `item`"), "{error}");

    // Rows for positions the logs never reached are skipped, not refused.
    let (logs, dist_path) =
        write(dir.path(), 2, &[(0, 1, 1.0, 0.5)], &[(0, 0, 0, 0.5), (0, 1, 0, 0.5), (0, 0, 3, 1.0)]);
    assert_eq!(run(&logs, &dist_path, &OpeOptions::default()).unwrap().rounds, 1);

    // A target that never picks what was logged: the self-normalised estimates are undefined.
    let (logs, dist_path) = write(dir.path(), 2, &[(0, 1, 1.0, 0.5)], &[(0, 1, 0, 1.0)]);
    let report = run(&logs, &dist_path, &OpeOptions::default()).unwrap();
    assert!(report.metrics["snips"].is_nan() && report.metrics["sndr"].is_nan());
    assert_eq!(report.metrics["ips"], 0.0);

    let (logs, dist_path) = write(dir.path(), 2, &[(5, 1, 1.0, 0.5)], &dist);
    let error = run(&logs, &dist_path, &OpeOptions::default()).unwrap_err().to_string();
    assert!(error.contains("all.csv:2") && error.contains("item_id"), "{error}");

    let (logs, dist_path) = write(dir.path(), 2, &[(0, 0, 1.0, 0.5)], &dist);
    let error = run(&logs, &dist_path, &OpeOptions::default()).unwrap_err().to_string();
    assert!(error.contains("all.csv:2") && error.contains("from 1"), "{error}");

    let (logs, dist_path) = write(dir.path(), 2, &[(0, 1, 1.0, 0.0)], &dist);
    let error = run(&logs, &dist_path, &OpeOptions::default()).unwrap_err().to_string();
    assert!(error.contains("propensity_score"), "{error}");

    std::fs::write(logs.join("all.csv"), ",item_id,click\n0,1,1\n").unwrap();
    let error = run(&logs, &dist_path, &OpeOptions::default()).unwrap_err().to_string();
    assert!(error.contains("no `position` column"), "{error}");
}
