//! `funnel eval …` and `funnel split`: read files, call funnel-eval, render reports.

use std::path::{Path, PathBuf};

use anyhow::Context;
use funnel_core::Event;
use funnel_engine::EngineConfig;
use funnel_eval::recs::{ModelResult, RecsOptions};
use funnel_eval::search::{Mode, SearchOptions};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cross_encoder::CrossEncoderScorer;
use crate::train::ContentModel;
use funnel_eval::split::Method;
use funnel_eval::{Report, trec};
use funnel_store::import::Format;
use rustc_hash::FxHashMap;

use funnel_store::DataDir;

use crate::cli::{
    EvalCommand, EvalEngineArgs, EvalLtrArgs, EvalOpeArgs, EvalPropensityArgs, EvalRecsArgs, EvalSearchArgs,
    EventFormat, SplitArgs, SplitMethod,
};

pub fn run(data: &DataDir, config: &EngineConfig, command: EvalCommand) -> anyhow::Result<()> {
    match command {
        EvalCommand::Recs(args) => recs(&args),
        EvalCommand::Search(args) => search(config, &args),
        EvalCommand::Ltr(args) => ltr(&args),
        EvalCommand::Engine(args) => engine(data, config, &args),
        EvalCommand::Propensity(args) => propensity(&args),
        EvalCommand::Ope(args) => ope(&args),
    }
}

fn engine(data: &DataDir, config: &EngineConfig, args: &EvalEngineArgs) -> anyhow::Result<()> {
    let engine = funnel_engine::Engine::open_latest(&data.snapshots(), config)?;
    let test = read_events(&args.test, args.format)?;
    if args.run.is_some() && args.surface.len() + usize::from(args.baseline.is_some()) > 1 {
        anyhow::bail!("--run writes one surface's slates: give one --surface and no --baseline");
    }
    let options = funnel_eval::engine::EngineEvalOptions {
        surface: String::new(),
        ks: args.k.clone(),
        min_relevance: args.min_relevance,
        dataset: format!("{} -> {}", engine.snapshot().manifest.id, file_name(&args.test)),
    };
    let results =
        funnel_eval::engine::evaluate_surfaces(&engine, &test, &args.surface, args.baseline.as_deref(), &options)?;
    if let (Some(run), Some(result)) = (&args.run, results.first()) {
        trec::write_run(run, &result.report.system, &result.rankings)?;
    }
    print_reports(&results.iter().map(|r| &r.report).collect::<Vec<_>>(), args.json)
}

fn format_of(format: EventFormat) -> Format {
    match format {
        EventFormat::Auto => Format::Auto,
        EventFormat::Movielens => Format::Movielens,
        EventFormat::Csv => Format::Csv,
        EventFormat::Tsv => Format::Tsv,
        EventFormat::Jsonl => Format::Jsonl,
    }
}

fn read_events(path: &Path, format: EventFormat) -> anyhow::Result<Vec<Event>> {
    Ok(funnel_store::import::read_events(path, format_of(format))?)
}

fn read_categories(path: &Path) -> anyhow::Result<FxHashMap<String, Vec<String>>> {
    let items = funnel_store::import::read_items(path, Format::Auto)?;
    Ok(items.into_iter().map(|item| (item.id, item.categories)).collect())
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

fn recs(args: &EvalRecsArgs) -> anyhow::Result<()> {
    let train = read_events(&args.train, args.format)?;
    let test = read_events(&args.test, args.format)?;
    let categories = args.items.as_deref().map(read_categories).transpose()?.unwrap_or_default();
    let options = RecsOptions {
        models: args.models.clone(),
        ks: args.k.clone(),
        min_relevance: args.min_relevance,
        baseline: args.baseline.clone(),
        seed: args.seed,
        dataset: format!("{} -> {}", file_name(&args.train), file_name(&args.test)),
    };
    let results = funnel_eval::recs::evaluate(&train, &test, &categories, &options)?;
    if let Some(run) = &args.run {
        write_runs(run, &results)?;
    }
    let reports: Vec<&Report> = results.iter().map(|r| &r.report).collect();
    print_reports(&reports, args.json)
}

fn write_runs(path: &Path, results: &[ModelResult]) -> anyhow::Result<()> {
    for result in results {
        let target = if results.len() == 1 {
            path.to_owned()
        } else {
            let mut name = path.as_os_str().to_owned();
            name.push(format!(".{}", result.report.system));
            PathBuf::from(name)
        };
        trec::write_run(&target, &result.report.system, &result.rankings)?;
        eprintln!("wrote {}", target.display());
    }
    Ok(())
}

fn search(config: &EngineConfig, args: &EvalSearchArgs) -> anyhow::Result<()> {
    let modes = args
        .mode
        .split(',')
        .map(|m| Mode::parse(m.trim(), args.rrf_k, args.dense_weight, &args.normalisation))
        .collect::<Result<Vec<_>, _>>()?;
    if args.run.is_some() && modes.len() > 1 {
        anyhow::bail!("--run writes one mode's run: give a single --mode");
    }
    if !(0.0..=1.0).contains(&args.rerank_weight) {
        anyhow::bail!("--rerank-weight must be in [0, 1], got {}", args.rerank_weight);
    }
    let needs_model = modes.iter().any(|m| *m != Mode::Bm25);
    let options = SearchOptions {
        modes,
        depth: args.depth,
        split: args.split.clone(),
        qrels: args.qrels.clone(),
        rerank_depth: args.rerank_depth,
        rerank_weight: args.rerank_weight,
        search: config.search.clone(),
        spell: args.spell,
    };
    let model = args.model.clone().or_else(|| Some(config.content.model.clone()).filter(|m| !m.is_empty()));
    let embedder = match model.filter(|_| needs_model) {
        Some(model) => Some(ContentModel::load(&model).with_context(|| format!("--model {model}"))?),
        None => None,
    };
    let embedder = embedder.as_ref().map(|e| e as &dyn funnel_engine::TextEmbedder);
    let reranker = match &args.rerank {
        Some(dir) => Some(CrossEncoderScorer::load(dir).with_context(|| format!("--rerank {}", dir.display()))?),
        None => None,
    };
    let reranker = reranker.as_ref().map(|r| r as &dyn funnel_engine::PairScorer);
    let results = funnel_eval::search::evaluate(&args.beir, &options, embedder, reranker)?;
    if let Some(run) = &args.run {
        // With --rerank, the reranked run.
        let last = results.last().expect("one result per mode");
        trec::write_run(run, &last.report.system, &last.rankings)?;
        eprintln!("wrote {}", run.display());
    }
    print_reports(&results.iter().map(|r| &r.report).collect::<Vec<_>>(), args.json)
}

fn ltr(args: &EvalLtrArgs) -> anyhow::Result<()> {
    if let Some(unknown) = args.model.iter().find(|m| !["best-feature", "gbdt"].contains(&m.as_str())) {
        anyhow::bail!("unknown --model `{unknown}` (available: best-feature, gbdt)");
    }
    let train = funnel_eval::ltr::read_svmlight(&args.train)?;
    let test = funnel_eval::ltr::read_svmlight(&args.test)?;
    let valid = args.valid.as_deref().map(funnel_eval::ltr::read_svmlight).transpose()?;
    let dataset = format!("{} -> {}", file_name(&args.train), file_name(&args.test));
    let mut results: Vec<funnel_eval::ltr::LtrResult> = Vec::new();
    for model in &args.model {
        let mut result = if model == "best-feature" {
            funnel_eval::ltr::evaluate_best_feature(&train, &test, &dataset)?
        } else {
            let (result, trained) = gbdt(args, &train, valid.as_deref(), &test, &dataset)?;
            if let Some(path) = &args.save_model {
                trained.save(path)?;
                eprintln!("wrote {}", path.display());
            }
            result
        };
        if let Some(first) = results.first() {
            result.compare_with(first);
        }
        results.push(result);
    }
    if let Some(path) = &args.model_file {
        let (mut model, kind) = funnel_gbdt::Model::read(path)?;
        if kind == funnel_gbdt::ModelFile::LightGbm {
            match args.lightgbm_indices.as_deref() {
                Some("file") => model.shift_features(1).with_context(|| format!("{}", path.display()))?,
                Some(_) => {}
                None => anyhow::bail!(
                    "{} is a LightGBM model: say how it numbers features with --lightgbm-indices file \
                     (LightGBM read the SVMlight files) or columns (it was trained on arrays)",
                    path.display()
                ),
            }
        }
        let mut result = funnel_eval::ltr::evaluate_model(&model, &file_name(path), &test, &dataset);
        if let Some(first) = results.first() {
            result.compare_with(first);
        }
        results.push(result);
    }
    if let (Some(path), Some(last)) = (&args.scores, results.last()) {
        let text: String = last.scores.iter().flatten().map(|s| format!("{s}\n")).collect();
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    print_reports(&results.iter().map(|r| &r.report).collect::<Vec<_>>(), args.json)
}

fn gbdt(
    args: &EvalLtrArgs,
    train: &[funnel_eval::ltr::Group],
    valid: Option<&[funnel_eval::ltr::Group]>,
    test: &[funnel_eval::ltr::Group],
    dataset: &str,
) -> anyhow::Result<(funnel_eval::ltr::LtrResult, funnel_gbdt::Model)> {
    let params = funnel_gbdt::Params {
        objective: args.objective,
        trees: args.trees,
        leaves: args.leaves,
        learning_rate: args.learning_rate,
        min_data_in_leaf: args.min_data_in_leaf,
        min_sum_hessian: args.min_sum_hessian,
        lambda_l2: args.lambda_l2,
        max_bin: args.max_bin,
        truncation: args.truncation,
        normalize: !args.no_normalize,
        early_stopping: args.early_stopping,
        threads: args.threads,
        ..Default::default()
    };
    let bar = if args.json { ProgressBar::hidden() } else { ProgressBar::new(args.trees as u64) };
    bar.set_style(
        ProgressStyle::with_template("boosting {bar:30} {pos}/{len} trees {msg} {elapsed}").expect("static template"),
    );
    let mut progress = |tree: usize, metric: Option<f64>| {
        bar.set_position(tree as u64);
        if let Some(m) = metric {
            bar.set_message(format!("valid {m:.4}"));
        }
    };
    let result = funnel_eval::ltr::evaluate_gbdt(train, valid, test, &params, dataset, &mut progress)?;
    bar.finish_and_clear();
    Ok(result)
}

fn propensity(args: &EvalPropensityArgs) -> anyhow::Result<()> {
    use funnel_eval::propensity::{from_randomized, read_impressions};
    let impressions = read_impressions(&args.logs, &args.position_column, &args.click_column)?;
    let positions = from_randomized(&impressions, args.seed)?;
    if args.json {
        out!("{}", serde_json::json!({ "logs": args.logs.display().to_string(), "positions": positions }));
        return Ok(());
    }
    out!("{} impressions from {}", impressions.len(), args.logs.display());
    out!("{:>8} {:>11} {:>7} {:>8} {:>10}  95% interval", "position", "impressions", "clicks", "ctr", "propensity");
    for p in &positions {
        out!(
            "{:>8} {:>11} {:>7} {:>8.5} {:>10.3}  [{:.3}, {:.3}]",
            p.position,
            p.impressions,
            p.clicks,
            p.ctr,
            p.propensity,
            p.ci95[0],
            p.ci95[1]
        );
    }
    Ok(())
}

fn ope(args: &EvalOpeArgs) -> anyhow::Result<()> {
    use funnel_eval::ope::{ESTIMATORS, OpeOptions, evaluate, read_action_dist, read_logs};
    if !(args.prior_strength >= 0.0 && args.prior_strength.is_finite()) {
        anyhow::bail!("--prior-strength must be a number ≥ 0");
    }
    if args.bootstrap < 100 {
        anyhow::bail!("--bootstrap must be at least 100 resamples (the intervals are their percentiles)");
    }
    let logs = read_logs(&args.logs)?;
    let (dist, policy) = match (&args.action_dist, &args.policy) {
        (Some(path), _) => (read_action_dist(path, &logs)?, None),
        (None, Some(name)) => {
            let dir = args.policy_logs.as_deref().context("--policy needs --policy-logs")?;
            let trained_on = read_logs(dir)?;
            let samples = args.policy_samples.unwrap_or(100_000);
            let (dist, about) = crate::ope_policy::action_dist(name, &logs, &trained_on, samples)?;
            (dist, Some(about))
        }
        (None, None) => anyhow::bail!("give --action-dist FILE or --policy NAME"),
    };
    let options = OpeOptions { prior_strength: args.prior_strength, bootstrap: args.bootstrap, seed: args.seed };
    let report = evaluate(&logs, &dist, &options);
    let truth = args.truth.as_deref().map(read_logs).transpose()?.map(|t| {
        let value = t.rounds.iter().map(|r| r.reward).sum::<f64>() / t.rounds.len() as f64;
        let errors: std::collections::BTreeMap<&str, f64> = report
            .metrics
            .iter()
            // Undefined (null) against a truth of 0.
            .map(|(name, v)| (*name, (v - value).abs() / value.abs()))
            .collect();
        (t.file.display().to_string(), t.rounds.len(), value, errors)
    });
    if args.json {
        let mut body = serde_json::to_value(&report)?;
        if let Some(policy) = &policy {
            body["policy"] = serde_json::to_value(policy)?;
        }
        if let Some((file, rounds, value, errors)) = &truth {
            body["truth"] =
                serde_json::json!({ "logs": file, "rounds": rounds, "value": value, "relative_error": errors });
        }
        out!("{body}");
        return Ok(());
    }
    out!(
        "{} rounds from {} ({} rewards, logged value {:.6}); weights: mean {:.3}, max {:.1}, effective rounds {:.0}",
        report.rounds,
        report.logs,
        report.rewards,
        report.logged_value,
        report.weights.mean,
        report.weights.max,
        report.weights.effective_rounds
    );
    if let Some(policy) = &policy {
        out!(
            "policy {} trained on {} ({} rounds{}), its distribution measured over {} slates",
            policy.name,
            policy.trained_on,
            policy.training_rounds,
            if policy.in_sample { ", the evaluated logs themselves: in-sample" } else { "" },
            policy.samples
        );
    }
    if let Some((file, rounds, value, _)) = &truth {
        out!("truth: {value:.6} (mean reward of {rounds} rounds in {file})");
    }
    out!(
        "{:>9} {:>10}  {:<22} {}",
        "estimator",
        "value",
        "95% interval",
        if truth.is_some() { "relative error" } else { "" }
    );
    for name in ESTIMATORS {
        let [low, high] = report.ci95[name];
        let error = truth.as_ref().map_or(String::new(), |(.., errors)| match errors[name].is_finite() {
            true => format!("{:.1}%", 100.0 * errors[name]),
            false => "undefined".into(),
        });
        let value = report.metrics[name];
        let value = if value.is_nan() { "undefined".to_owned() } else { format!("{value:.6}") };
        out!("{name:>9} {value:>10}  [{low:.6}, {high:.6}]  {error}");
    }
    for (position, values) in &report.by_position {
        out!("position {position}: ips {:.6}, snips {:.6}", values["ips"], values["snips"]);
    }
    out!("reward model: {}", report.reward_model);
    Ok(())
}

pub fn split(args: &SplitArgs) -> anyhow::Result<()> {
    let events = read_events(&args.input, args.format)?;
    let method = match args.method {
        SplitMethod::Temporal => Method::Temporal { fraction: args.fraction },
        SplitMethod::UserTemporal => Method::UserTemporal { fraction: args.fraction },
        SplitMethod::LastN => Method::LastN { n: args.n },
        SplitMethod::Random => Method::Random { fraction: args.fraction, seed: args.seed },
        SplitMethod::Users => Method::Users { fraction: args.fraction, seed: args.seed },
    };
    let (train, test) = funnel_eval::split::split(&events, method)?;
    funnel_eval::split::write_csv(&args.train, &train).context("writing the train file")?;
    funnel_eval::split::write_csv(&args.test, &test).context("writing the test file")?;
    let users = |side: &[Event]| side.iter().map(|e| e.user.as_str()).collect::<std::collections::HashSet<_>>().len();
    out!(
        "train: {} events of {} users -> {}\ntest:  {} events of {} users -> {}",
        train.len(),
        users(&train),
        args.train.display(),
        test.len(),
        users(&test),
        args.test.display()
    );
    Ok(())
}

fn print_reports(reports: &[&Report], json: bool) -> anyhow::Result<()> {
    if json {
        for report in reports {
            out!("{}", serde_json::to_string(report)?);
        }
        return Ok(());
    }
    let Some(first) = reports.first() else { return Ok(()) };
    out!(
        "{} on {}: {} evaluated, {} skipped (nothing relevant)",
        first.task,
        first.dataset,
        first.n_evaluated,
        first.n_skipped
    );
    // Metrics as rows, systems as columns: reports carry many metrics, few systems.
    let width = reports.iter().map(|r| r.system.len()).max().unwrap_or(0).max(10);
    print!("{:<16}", "metric");
    for report in reports {
        print!(" {:>width$}", report.system);
    }
    out!();
    for metric in first.metrics.keys() {
        print!("{metric:<16}");
        for report in reports {
            print!(" {:>width$.4}", report.metrics.get(metric).copied().unwrap_or(f64::NAN));
        }
        out!();
    }
    print_row("fit+index s", reports, width, |r| r.timing.fit_s + r.timing.index_s);
    print_row("eval s", reports, width, |r| r.timing.eval_s);
    for report in reports.iter().filter(|r| !r.comparison.is_empty()) {
        let baseline = report.baseline.as_deref().unwrap_or("baseline");
        out!("\n{} vs {baseline} (mean difference, 95% bootstrap CI, paired t-test p):", report.system);
        for (metric, c) in &report.comparison {
            out!("  {metric:<13} {:+.4}  [{:+.4}, {:+.4}]  p={}", c.diff, c.ci95[0], c.ci95[1], format_p(c.p_value));
        }
    }
    Ok(())
}

fn print_row(name: &str, reports: &[&Report], width: usize, value: fn(&Report) -> f64) {
    print!("{name:<16}");
    for report in reports {
        print!(" {:>width$.3}", value(report));
    }
    out!();
}

fn format_p(p: f64) -> String {
    if p < 1e-4 { "<0.0001".to_owned() } else { format!("{p:.4}") }
}
