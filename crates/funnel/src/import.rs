use std::time::Instant;

use funnel_store::FileLog;
use funnel_store::import::{Format, ImportOptions, Kind, import_file};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::cli::{ImportArgs, ImportFormat, ImportKind};
use funnel_store::DataDir;

pub fn run(data: &DataDir, args: &ImportArgs) -> anyhow::Result<()> {
    let log = FileLog::open(data.log())?;
    let options = ImportOptions {
        kind: match args.kind {
            ImportKind::Items => Kind::Items,
            ImportKind::Users => Kind::Users,
            ImportKind::Events => Kind::Events,
        },
        format: match args.format {
            ImportFormat::Auto => Format::Auto,
            ImportFormat::Jsonl => Format::Jsonl,
            ImportFormat::Csv => Format::Csv,
            ImportFormat::Tsv => Format::Tsv,
            ImportFormat::Movielens => Format::Movielens,
            ImportFormat::Beir => Format::Beir,
        },
        skip_bad: args.skip_bad,
    };
    let size = std::fs::metadata(&args.file).map(|m| m.len()).unwrap_or(0);
    let bar = if args.json { ProgressBar::hidden() } else { ProgressBar::new(size) };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(format!("importing {}", args.file.display()));
    let started = Instant::now();
    let report = import_file(&log, &args.file, &options, &mut |bytes| bar.set_position(bytes));
    bar.finish_and_clear();
    let report = report?;
    let seconds = started.elapsed().as_secs_f64();
    let kind = format!("{:?}", args.kind).to_lowercase();
    if args.json {
        let skipped: Vec<String> = report.skipped_examples.iter().map(ToString::to_string).collect();
        let body = json!({
            "file": args.file, "kind": kind, "records": report.records, "skipped": report.skipped,
            "skipped_examples": skipped, "seconds": seconds,
            "records_per_second": report.records as f64 / seconds.max(1e-9),
        });
        out!("{body}");
        return Ok(());
    }
    out!(
        "imported {} {kind} from {} in {:.2} s ({:.0} records/s)",
        report.records,
        args.file.display(),
        seconds,
        report.records as f64 / seconds.max(1e-9)
    );
    if report.skipped > 0 {
        out!("skipped {} bad lines; the first ones:", report.skipped);
        for example in &report.skipped_examples {
            out!("  {}:{example}", args.file.display());
        }
    }
    Ok(())
}
