//! `funnel simulate`: policies against simulated users in a closed loop, as a table, JSON
//! and an SVG picture.

use std::fmt::Write as _;

use anyhow::{Context, bail};
use funnel_engine::EngineConfig;
use funnel_sim::SimConfig;
use funnel_sim::closed_loop::{self, BUILTIN, LoopConfig, Policy, PolicyRun};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::SimulateArgs;

pub fn run(config: &EngineConfig, args: &SimulateArgs) -> anyhow::Result<()> {
    let policies = policies(config, &args.policies)?;
    let within = |name: &str, value: usize, low: usize, high: usize| match (low..=high).contains(&value) {
        true => Ok(()),
        false => Err(anyhow::anyhow!("--{name} must be between {low} and {high}, not {value}")),
    };
    within("rounds", args.rounds, 2, 10_000)?;
    within("users", args.users, 1, 1_000_000)?;
    within("items", args.items, 1, 1_000_000)?;
    within("k", args.k, 1, 1000)?;
    within("warmup", args.warmup, 0, 1000)?;
    if args.items < args.k {
        bail!("--items ({}) must be at least the slate size --k ({})", args.items, args.k);
    }
    if !(0.0..=5.0).contains(&args.drift) {
        bail!("--drift must be a number between 0 and 5 (log-odds per round)");
    }
    let world = SimConfig {
        seed: args.seed,
        items: args.items,
        users: args.users,
        sessions_per_user: args.warmup,
        slate_size: args.k,
        ..SimConfig::default()
    };
    let setup = LoopConfig { world, rounds: args.rounds, drift: args.drift, engine: config.clone() };
    let bar = if args.json { ProgressBar::hidden() } else { ProgressBar::new((policies.len() * args.rounds) as u64) };
    bar.set_style(
        ProgressStyle::with_template("{msg:>20} {bar:30} {pos}/{len} rounds, eta {eta}").expect("static template"),
    );
    let mut runs = Vec::with_capacity(policies.len());
    for policy in &policies {
        bar.set_message(policy.name.clone());
        let run = closed_loop::run(&setup, policy, &mut |_| bar.inc(1))
            .with_context(|| format!("simulating policy `{}`", policy.name))?;
        runs.push(run);
    }
    bar.finish_and_clear();
    if let Some(path) = &args.plot {
        std::fs::write(path, svg(&runs)).with_context(|| format!("writing {}", path.display()))?;
        if !args.json {
            out!("wrote {}", path.display());
        }
    }
    if args.json {
        let body = serde_json::json!({
            "world": { "items": args.items, "users": args.users, "k": args.k, "warmup_sessions": args.warmup,
                       "drift": args.drift, "seed": args.seed, "rounds": args.rounds },
            "policies": runs,
        });
        out!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        print_table(&runs, args);
    }
    Ok(())
}

/// Built-in policies, or surfaces of the configuration by name.
fn policies(config: &EngineConfig, names: &[String]) -> anyhow::Result<Vec<Policy>> {
    let base = &config.surfaces["home"];
    let mut policies: Vec<Policy> = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if policies.iter().any(|p| p.name == name) {
            bail!("--policies: `{name}` is listed twice");
        }
        let configured = config.surfaces.get(name).map(|s| Policy { name: name.to_owned(), surface: s.clone() });
        let policy = configured.or_else(|| Policy::builtin(name, base));
        match policy {
            Some(policy) => policies.push(policy),
            None => {
                let surfaces: Vec<&str> = config.surfaces.keys().map(String::as_str).collect();
                bail!(
                    "--policies: unknown policy `{name}` (built in: {}; configured surfaces: {})",
                    BUILTIN.join(", "),
                    surfaces.join(", ")
                );
            }
        }
    }
    if policies.is_empty() {
        bail!("--policies: name at least one policy");
    }
    Ok(policies)
}

fn print_table(runs: &[PolicyRun], args: &SimulateArgs) {
    out!(
        "{} users × {} rounds of {}-item slates over {} items (seed {}); short run = rounds 1–{}, long run = {}–{}",
        args.users,
        args.rounds,
        args.k,
        args.items,
        args.seed,
        args.rounds / 2,
        args.rounds / 2 + 1,
        args.rounds
    );
    out!(
        "{:<20} {:>9} {:>8} {:>8} {:>8} {:>13} {:>9} {:>14} {:>11}",
        "policy",
        "short CTR",
        "Δ",
        "CTR",
        "Δ",
        "expected CTR",
        "coverage",
        "exposure Gini",
        "all clicks"
    );
    let delta = |value: f64, baseline: f64, first: bool| match first {
        true => "—".to_owned(),
        false => format!("{:+.1}%", 100.0 * (value / baseline.max(f64::MIN_POSITIVE) - 1.0)),
    };
    let base = &runs[0].summary;
    for run in runs {
        let s = &run.summary;
        let first = run.name == runs[0].name;
        out!(
            "{:<20} {:>9.4} {:>8} {:>8.4} {:>8} {:>13.4} {:>8.1}% {:>14.3} {:>11}",
            run.name,
            s.early_ctr,
            delta(s.early_ctr, base.early_ctr, first),
            s.ctr,
            delta(s.ctr, base.ctr, first),
            s.expected_ctr,
            100.0 * s.cumulative_coverage,
            s.exposure_gini,
            s.clicks
        );
    }
    out!(
        "\nCTR, expected CTR (the world's click probabilities, without the coin flips) and Gini: means over the \
         long run unless marked short; Δ against {}. Coverage: share of the catalog ever shown. Gini has a floor \
         from sampling alone: a few impressions per item are never all equal.",
        runs[0].name
    );
}

const COLOURS: &[&str] = &["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"];

/// Three panels (CTR, cumulative coverage, exposure Gini by round), a line per policy.
fn svg(runs: &[PolicyRun]) -> String {
    type Metric = fn(&closed_loop::RoundMetrics) -> f64;
    let panels: [(&str, Metric); 3] = [
        ("CTR", |r| r.ctr),
        ("catalog coverage (cumulative)", |r| r.cumulative_coverage),
        ("exposure Gini", |r| r.exposure_gini),
    ];
    let (width, height, panel_width, top, plot_height) = (960.0, 340.0, 300.0, 40.0, 220.0);
    let rounds = runs.iter().map(|r| r.rounds.len()).max().unwrap_or(1).max(2);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (p, (title, metric)) in panels.iter().enumerate() {
        let left = 50.0 + p as f64 * (panel_width + 15.0);
        let plot_width = panel_width - 40.0;
        let values = runs.iter().flat_map(|r| r.rounds.iter().map(metric));
        let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let (low, high) = if low.is_finite() && high > low { (low, high) } else { (0.0, 1.0) };
        let pad = (high - low) * 0.05;
        let (low, high) = ((low - pad).max(0.0), high + pad);
        let x = |round: usize| left + plot_width * round as f64 / (rounds - 1) as f64;
        let y = |v: f64| top + plot_height * (1.0 - (v - low) / (high - low));
        let _ =
            writeln!(out, r#"<text x="{left}" y="{}" font-size="13" font-weight="bold">{title}</text>"#, top - 12.0);
        let _ = writeln!(
            out,
            r##"<rect x="{left}" y="{top}" width="{plot_width}" height="{plot_height}" fill="none" stroke="#999"/>"##
        );
        for tick in 0..=4 {
            let v = low + (high - low) * f64::from(tick) / 4.0;
            let _ = writeln!(out, r#"<text x="{}" y="{:.1}" text-anchor="end">{v:.3}</text>"#, left - 4.0, y(v) + 4.0);
        }
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">round</text>"#,
            left + plot_width / 2.0,
            top + plot_height + 28.0
        );
        for (tick, label) in [(0, 1), (rounds - 1, rounds)] {
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{label}</text>"#,
                x(tick),
                top + plot_height + 14.0
            );
        }
        for (i, run) in runs.iter().enumerate() {
            let points: Vec<String> =
                run.rounds.iter().map(|r| format!("{:.1},{:.1}", x(r.round), y(metric(r)))).collect();
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
                COLOURS[i % COLOURS.len()],
                points.join(" ")
            );
        }
    }
    for (i, run) in runs.iter().enumerate() {
        let x = 50.0 + i as f64 * 150.0;
        let y = height - 22.0;
        let colour = COLOURS[i % COLOURS.len()];
        let _ = writeln!(
            out,
            r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{colour}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            x + 20.0,
            x + 25.0,
            y + 4.0,
            escape(&run.name)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
