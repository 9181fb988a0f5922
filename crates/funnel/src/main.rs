//! The `funnel` command: import, train, serve, query, quickstart. Parses arguments and
//! configuration, shows progress, and prints results; all the work is in the library
//! crates.

/// `println!` that ends the process quietly when stdout is a closed pipe (`funnel … | head`)
/// instead of panicking.
macro_rules! out {
    () => { $crate::write_stdout(format_args!("")) };
    ($($arg:tt)*) => { $crate::write_stdout(format_args!($($arg)*)) };
}

mod bench;
mod cli;
mod cross_encoder;
mod eval;
mod import;
mod ope_policy;
mod output;
mod quickstart;
mod serve;
mod simulate;
mod train;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use funnel_engine::EngineConfig;
use funnel_store::DataDir;

use cli::{Cli, Command};

/// Index building and request handling allocate many small strings and vectors across
/// threads; mimalloc handles that pattern far better than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn write_stdout(line: std::fmt::Arguments) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout.write_fmt(line).and_then(|()| stdout.write_all(b"\n")) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to stdout: {error}");
        std::process::exit(1);
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "warn,funnel=info,funnel_server=info,funnel_store=info,funnel_engine=info".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let data = DataDir::new(&cli.data_dir);
    let config = load_config(&cli, &data)?;
    match cli.command {
        Command::Import(args) => import::run(&data, &args),
        Command::Train(args) => match &args.model {
            Some(cli::TrainCommand::CrossEncoder(model)) => cross_encoder::train(&config, model),
            None => train::run(&data, &config, &args),
        },
        Command::Serve(args) => serve::run(&data, config, &args),
        Command::Recommend(args) => output::recommend(&data, &config, args),
        Command::Search(args) => output::search(&data, &config, args),
        Command::Similar(args) => output::similar(&data, &config, args),
        Command::Quickstart(args) => quickstart::run(&data, config, &args),
        Command::Simulate(args) => simulate::run(&config, &args),
        Command::Eval(command) => eval::run(&data, &config, command),
        Command::Split(args) => eval::split(&args),
        Command::Embed(args) => embed(&args),
        Command::Bench(command) => bench::run(&config, command),
    }
}

fn embed(args: &cli::EmbedArgs) -> anyhow::Result<()> {
    let mut texts = args.texts.clone();
    if let Some(file) = &args.file {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        texts.extend(text.lines().map(str::to_owned));
    }
    if texts.is_empty() {
        anyhow::bail!("nothing to embed: give texts or --file");
    }
    let embedder = funnel_vector::Embedder::load(&args.model)?;
    let started = std::time::Instant::now();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let bar = match &args.out {
        Some(_) => indicatif::ProgressBar::new(refs.len() as u64).with_style(
            indicatif::ProgressStyle::with_template("embedding {bar:40} {pos}/{len} texts, {per_sec}, eta {eta}")
                .expect("static template"),
        ),
        None => indicatif::ProgressBar::hidden(),
    };
    let vectors = embedder.embed_with_progress(&refs, |n| bar.inc(n as u64))?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    if let Some(out) = &args.out {
        funnel_ann::npy::write(out, &funnel_ann::npy::Matrix::from_rows(&vectors)?)?;
        eprintln!(
            "wrote {} vectors of dimension {} to {} in {seconds:.1} s ({:.0} texts/s)",
            vectors.len(),
            embedder.dim(),
            out.display(),
            vectors.len() as f64 / seconds.max(1e-9)
        );
    } else if args.json {
        let body = serde_json::json!({ "dim": embedder.dim(), "seconds": seconds, "vectors": vectors });
        out!("{body}");
    } else {
        for (text, vector) in texts.iter().zip(&vectors) {
            let head: Vec<String> = vector.iter().take(5).map(|v| format!("{v:.6}")).collect();
            out!("[{}, …] {text}", head.join(", "));
        }
        eprintln!("{} texts in {seconds:.3} s ({:.0} texts/s)", texts.len(), texts.len() as f64 / seconds.max(1e-9));
    }
    Ok(())
}

/// `--config FILE`, else `DATA_DIR/funnel.toml` when present, else defaults; then the
/// `FUNNEL__…` environment overrides.
fn load_config(cli: &Cli, data: &DataDir) -> anyhow::Result<EngineConfig> {
    let path = cli.config.clone().or_else(|| Some(data.config_file()).filter(|p| p.exists()));
    let text = match &path {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        None => String::new(),
    };
    EngineConfig::load(&text, std::env::vars()).map_err(|e| match &path {
        Some(path) => anyhow::anyhow!("{}: {e}", path.display()),
        None => anyhow::anyhow!("{e}"),
    })
}
