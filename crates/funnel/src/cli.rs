//! Command-line definitions. Each `--help` says what the command does, what it reads and
//! writes, and shows an example.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "funnel",
    version,
    about = "Funnel: recommendation and search over one embedded store",
    long_about = "Funnel keeps an append-only log of your catalog and events in --data-dir, \
trains immutable snapshots from it (`funnel train`), and serves recommendations and search \
from the newest snapshot (`funnel serve`, or `funnel recommend` / `funnel search` here).\n\n\
Start with `funnel quickstart` for a demo, or:\n  \
funnel import events ratings.csv\n  funnel train\n  funnel recommend --user 1",
    after_help = "Logs go to stderr; set RUST_LOG=debug for more. Configuration: --config FILE, \
else DATA_DIR/funnel.toml if present, then FUNNEL__SECTION__KEY=value environment overrides."
)]
pub struct Cli {
    /// Where the log and snapshots live.
    #[arg(long, global = true, env = "FUNNEL_DATA_DIR", default_value = "funnel-data")]
    pub data_dir: PathBuf,
    /// Engine configuration (TOML). Default: DATA_DIR/funnel.toml when it exists.
    #[arg(long, global = true, env = "FUNNEL_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Import(ImportArgs),
    Train(TrainArgs),
    Serve(ServeArgs),
    Recommend(RecommendArgs),
    Search(SearchArgs),
    Similar(SimilarArgs),
    Quickstart(QuickstartArgs),
    Simulate(SimulateArgs),
    #[command(subcommand)]
    Eval(EvalCommand),
    Split(SplitArgs),
    Embed(EmbedArgs),
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// Speed measurements of Funnel's parts on your own data (the comparisons with other
/// tools are in the repository's bench/ scripts, which call these).
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    Search(BenchSearchArgs),
    Http(BenchHttpArgs),
}

/// Load-test a running server's /search on loopback or over the network.
///
/// Several clients (threads with keep-alive connections) each send the next query as soon
/// as the previous answer arrives, for --seconds after --warmup seconds. Reports answers
/// per second and latency percentiles as the client sees them; any non-200 answer counts
/// as an error.
///
/// Example:
///   funnel serve --addr 127.0.0.1:8080 &
///   funnel bench http --url http://127.0.0.1:8080 --queries queries.txt --concurrency 4 --json
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct BenchHttpArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// One query per line, sent in turn.
    #[arg(long)]
    pub queries: PathBuf,
    /// Clients sending at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Measured duration.
    #[arg(long, default_value_t = 20.0)]
    pub seconds: f64,
    /// Unmeasured start (connections, caches).
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Items per answer.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    #[arg(long)]
    pub json: bool,
}

/// Time the BM25 text index: build it over a corpus, then run queries one at a time on
/// one thread.
///
/// The corpus is BEIR-style JSON lines ({_id, title, text, …}; .gz is read directly). The
/// build uses every core (rayon; limit with RAYON_NUM_THREADS). Reports the build time,
/// queries per second, latency percentiles and the process's peak memory. Settings
/// come from the [search] configuration.
///
/// Example:
///   funnel bench search --corpus corpus.jsonl.gz --queries queries.txt --fields text --json
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct BenchSearchArgs {
    #[arg(long)]
    pub corpus: PathBuf,
    /// One query per line.
    #[arg(long)]
    pub queries: PathBuf,
    /// Documents per query.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Free-text fields to index besides the title (default: [search] fields, else all).
    #[arg(long, value_delimiter = ',')]
    pub fields: Vec<String>,
    /// Timed passes over the queries (after one untimed pass that warms caches).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Write each query's top-k document ids (JSON lines) here, for comparing results.
    #[arg(long)]
    pub hits: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

/// Embed texts with a sentence-transformers model folder (all-MiniLM-L6-v2 and its kind).
///
/// Prints each text's unit-length vector (mean pooling over tokens, as
/// sentence-transformers does). The model is read from a local folder; nothing is
/// downloaded.
///
/// Examples:
///   funnel embed --model models/all-MiniLM-L6-v2 "hello world" --json
///   funnel embed --model models/all-MiniLM-L6-v2 --file texts.txt --out vectors.npy
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct EmbedArgs {
    #[arg(long, env = "FUNNEL_EMBEDDING_MODEL")]
    pub model: PathBuf,
    /// Texts to embed.
    pub texts: Vec<String>,
    /// A file with one text per line, embedded after the texts given as arguments.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Print {"dim", "seconds", "vectors": [[…], …]}.
    #[arg(long)]
    pub json: bool,
    /// Write the vectors to this NumPy .npy file (float32, one row per text) instead of
    /// printing them; shows a progress bar.
    #[arg(long, value_name = "FILE.npy", conflicts_with = "json")]
    pub out: Option<PathBuf>,
}

/// Offline evaluation: score models and retrieval on held-out data.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    Recs(EvalRecsArgs),
    Search(EvalSearchArgs),
    Ltr(EvalLtrArgs),
    Engine(EvalEngineArgs),
    Propensity(EvalPropensityArgs),
    Ope(EvalOpeArgs),
}

/// Estimate how often each position is examined, from impressions whose items were
/// placed at random (e.g. the Open Bandit Dataset's `random` logs).
///
/// With items independent of position, CTR at position k / CTR at the first position is
/// the examination propensity of k relative to the first; the interval is a 95%
/// bootstrap. The inverse of a click's propensity is its weight for unbiased learning to
/// rank (`funnel eval ltr` reads row weights from FILE.weight).
///
/// Example:
///   funnel eval propensity --logs obd/random/all/all.csv
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct EvalPropensityArgs {
    /// CSV of impressions with a header.
    #[arg(long)]
    pub logs: PathBuf,
    #[arg(long, default_value = "position")]
    pub position_column: String,
    #[arg(long, default_value = "click")]
    pub click_column: String,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    #[arg(long)]
    pub json: bool,
}

/// Off-policy evaluation: what a target policy's mean reward would have been, from rounds
/// another policy logged with its propensities.
///
/// --logs is a campaign folder in the Open Bandit Dataset layout (one CSV of rounds with
/// item_id, position (from 1), click, propensity_score; and item_context.csv);
/// --action-dist the target policy's probabilities, CSV `round,item,position,prob`
/// (positions from 0; .gz read as gzip), round = the logged row's number from 0.
/// Estimators: ips, snips (self-normalised), dm (a reward model: each item and position's
/// click rate shrunk toward its position's), dr (doubly robust), sndr; 95% bootstrap
/// intervals over rounds; IPS and SNIPS per position. --truth DIR (the target policy's own
/// logs) adds each estimator's relative error against its mean reward.
///
/// Example:
///   funnel eval ope --logs obd/random/all --action-dist obd/bts_action_dist_all.csv.gz \
///     --truth obd/bts/all --json
///   funnel eval ope --logs obd/random/all --policy thompson --policy-logs obd/bts/all
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct EvalOpeArgs {
    #[arg(long)]
    pub logs: PathBuf,
    #[arg(long, required_unless_present = "policy", conflicts_with = "policy")]
    pub action_dist: Option<PathBuf>,
    /// Evaluate one of Funnel's own exploration policies instead of --action-dist:
    /// thompson, bandit-greedy, epsilon-greedy or none (greedy), serving the logs' items
    /// (sources popular and unexplored, no rules) from a snapshot of --policy-logs. Its
    /// probability of each item at each position is measured over --policy-samples
    /// served slates.
    #[arg(long, requires = "policy_logs")]
    pub policy: Option<String>,
    /// The logs the policy learns from (the same folder as --logs evaluates it
    /// in-sample, which flatters it).
    #[arg(long, requires = "policy")]
    pub policy_logs: Option<PathBuf>,
    /// Slates served to measure the policy's distribution (default 100000).
    #[arg(long, requires = "policy")]
    pub policy_samples: Option<usize>,
    /// Logs of the target policy itself: its mean reward is the truth to compare with.
    #[arg(long, conflicts_with = "policy")]
    pub truth: Option<PathBuf>,
    /// Pseudo-rounds of the reward model's shrinkage toward each position's rate.
    #[arg(long, default_value_t = 100.0)]
    pub prior_strength: f64,
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    #[arg(long, default_value_t = 12345)]
    pub seed: u64,
    #[arg(long)]
    pub json: bool,
}

/// Score the trained pipeline itself: serve every test user through the newest snapshot
/// of --data-dir (sources, merge, ranker, rules) and compare the slates with their
/// held-out events, with the same metrics as `eval recs`. Several surfaces are scored on
/// the same users; --baseline compares each with one of them, paired by user (mean
/// difference, 95% bootstrap interval, paired t-test): e.g. a learned ranker over several
/// sources against a surface with the best single source.
///
/// Example:
///   funnel import events ml-100k/u1.base --format movielens && funnel train
///   funnel eval engine --test ml-100k/u1.test --format movielens --min-relevance 4
///   funnel eval engine --test ml-100k/u1.test --surface home,cf-only --baseline cf-only
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct EvalEngineArgs {
    #[arg(long)]
    pub test: PathBuf,
    #[arg(long, value_enum, default_value = "auto")]
    pub format: EventFormat,
    /// Surfaces to score (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "home")]
    pub surface: Vec<String>,
    /// A surface to compare the others with (scored too if not in --surface).
    #[arg(long)]
    pub baseline: Option<String>,
    #[arg(long, value_delimiter = ',', default_value = "10")]
    pub k: Vec<usize>,
    #[arg(long)]
    pub min_relevance: Option<f64>,
    #[arg(long)]
    pub run: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EventFormat {
    Auto,
    Movielens,
    Csv,
    Tsv,
    Jsonl,
}

/// Train recommendation models on one file and score their top-K lists on another.
///
/// For every test user, all catalog items not in that user's training data are ranked.
/// Relevant: test rows with value >= --min-relevance (every test row without it). Users
/// with nothing relevant are left out and counted. Metrics at each K: ndcg (gain 2^rel-1,
/// discount log2(i+1)), map (denominator min(|rel|, K)), recall, p (precision), hit, mrr,
/// and beyond accuracy: coverage, novelty, gini (exposure), ild_category (with --items).
///
/// Example:
///   funnel eval recs --train ml-100k/u1.base --test ml-100k/u1.test --format movielens \
///       --models pop,random --k 10,20 --min-relevance 4 --baseline pop
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct EvalRecsArgs {
    #[arg(long)]
    pub train: PathBuf,
    #[arg(long)]
    pub test: PathBuf,
    /// Layout of both files (CSV/TSV headers: user, item, value, timestamp, with aliases).
    #[arg(long, value_enum, default_value = "auto")]
    pub format: EventFormat,
    /// Comma-separated models (available: pop, random).
    #[arg(long, value_delimiter = ',', default_value = "pop")]
    pub models: Vec<String>,
    /// Comma-separated cut-offs.
    #[arg(long, value_delimiter = ',', default_value = "10")]
    pub k: Vec<usize>,
    #[arg(long)]
    pub min_relevance: Option<f64>,
    /// Report every model's difference from this one, with a 95% bootstrap interval and
    /// a paired t-test over users.
    #[arg(long)]
    pub baseline: Option<String>,
    /// An items file whose categories feed intra-list diversity (any `funnel import items` format).
    #[arg(long)]
    pub items: Option<PathBuf>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Write the top-K lists as a TREC run (one file per model: FILE.MODEL when several).
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// One JSON object per model, one per line.
    #[arg(long)]
    pub json: bool,
}

/// Run Funnel's search over a BEIR-layout collection and score it like trec_eval.
///
/// DIR holds corpus.jsonl, queries.jsonl and qrels/SPLIT.tsv. Metrics: ndcg@10 (gain
/// 2^rel-1), map, mrr, p@10, recall@100, recall@1000; rankings are ordered as trec_eval
/// orders a run (score, then document id descending). BM25 settings come from the
/// [search] configuration.
///
/// Examples:
///   funnel eval search --beir ir/cranfield/beir --run cranfield.run --json
///   funnel eval search --beir ir/cranfield/beir --mode bm25,dense,hybrid-rrf --model models/all-MiniLM-L6-v2
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct EvalSearchArgs {
    #[arg(long)]
    pub beir: PathBuf,
    /// Retrieval modes, comma-separated (one report each): bm25, dense (MiniLM vectors,
    /// exact search), hybrid-rrf (reciprocal rank fusion of the two), hybrid-weighted
    /// (weighted sum of normalised scores).
    #[arg(long, default_value = "bm25")]
    pub mode: String,
    /// Embedding model folder for dense and hybrid modes (default: content.model).
    #[arg(long, env = "FUNNEL_EMBEDDING_MODEL")]
    pub model: Option<String>,
    /// Hybrid modes: the dense list's weight; BM25 gets 1 − this.
    #[arg(long, default_value_t = 0.5)]
    pub dense_weight: f32,
    /// hybrid-rrf: the constant k in 1 / (k + rank).
    #[arg(long, default_value_t = 60.0)]
    pub rrf_k: f32,
    /// hybrid-weighted: how scores are put on one scale (min-max or z-score).
    #[arg(long, default_value = "min-max")]
    pub normalisation: String,
    /// Correct each query's spelling from the corpus's vocabulary first, as the search
    /// surface does ([search.spell] settings); reports are named MODE+spell.
    #[arg(long)]
    pub spell: bool,
    /// Rerank each mode's top --rerank-depth with this cross-encoder folder (any Hugging
    /// Face BERT sequence-classification checkpoint); adds a MODE+rerank report compared
    /// with the mode alone (paired over queries).
    #[arg(long)]
    pub rerank: Option<PathBuf>,
    #[arg(long, default_value_t = 50)]
    pub rerank_depth: usize,
    /// The cross-encoder's weight in the reranked top: 1 orders it by the model alone;
    /// below 1, by weight × the model's score + (1 − weight) × the mode's, each min-max
    /// normalised over the top (a model no better than BM25 alone can still add to it).
    #[arg(long, default_value_t = 1.0)]
    pub rerank_weight: f32,
    /// Documents retrieved per query.
    #[arg(long, default_value_t = 1000)]
    pub depth: usize,
    /// Qrels file under qrels/ (without .tsv).
    #[arg(long, default_value = "test")]
    pub split: String,
    /// A qrels file elsewhere, e.g. OUT/held-out.tsv from `funnel train cross-encoder`.
    #[arg(long, conflicts_with = "split")]
    pub qrels: Option<PathBuf>,
    #[arg(long)]
    pub run: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

/// Train and score ranking models on SVMlight/LETOR learning-to-rank files.
///
/// Rows are `label qid:Q f:v ...`, or without qid with group sizes in FILE.query;
/// FILE.weight, when present, weights each row (one number per line, as LightGBM reads
/// it: e.g. 1 / the examination propensity of a click's position).
/// Models (each reported on the test queries; later ones are compared with the first,
/// paired per query):
///   best-feature  the single feature with the best training NDCG@10: the floor
///   gbdt          gradient-boosted trees (histogram, leaf-wise, LightGBM's defaults);
///                 --objective lambdarank (LambdaMART on NDCG), rank-net (pairwise),
///                 binary or regression (pointwise)
///
/// Examples:
///   funnel eval ltr --train rank.train --test rank.test
///   funnel eval ltr --train rank.train --valid rank.valid --early-stopping 20 \
///     --test rank.test --trees 500 --save-model ranker.json --json
///   funnel eval ltr --train rank.train --test rank.test --model-file lightgbm/model.txt \
///     --lightgbm-indices file
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct EvalLtrArgs {
    #[arg(long)]
    pub train: PathBuf,
    #[arg(long)]
    pub test: PathBuf,
    /// Validation file for early stopping (same format).
    #[arg(long)]
    pub valid: Option<PathBuf>,
    #[arg(long, value_delimiter = ',', default_value = "best-feature,gbdt")]
    pub model: Vec<String>,
    #[arg(long, default_value = "lambdarank")]
    pub objective: funnel_gbdt::Objective,
    /// Boosting rounds (trees).
    #[arg(long, default_value_t = 100)]
    pub trees: usize,
    /// Leaves per tree.
    #[arg(long, default_value_t = 31)]
    pub leaves: usize,
    #[arg(long, default_value_t = 0.1)]
    pub learning_rate: f64,
    #[arg(long, default_value_t = 20)]
    pub min_data_in_leaf: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub min_sum_hessian: f64,
    #[arg(long, default_value_t = 0.0)]
    pub lambda_l2: f64,
    #[arg(long, default_value_t = 255)]
    pub max_bin: usize,
    /// LambdaRank: pairs need a document in the top this many (by current score).
    #[arg(long, default_value_t = 30)]
    pub truncation: usize,
    /// LambdaRank: do not rescale the lambdas (by score gaps and per query, LightGBM's
    /// lambdarank_norm); turn it off with row weights, whose effect it mostly undoes.
    #[arg(long)]
    pub no_normalize: bool,
    /// Stop when the validation NDCG@10 has not improved for this many trees (needs --valid).
    #[arg(long, requires = "valid")]
    pub early_stopping: Option<usize>,
    /// Training threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write the trained GBDT model (JSON) here.
    #[arg(long)]
    pub save_model: Option<PathBuf>,
    /// Also score the test file with this trained model: one saved by --save-model, or a
    /// LightGBM text model (model.txt); reported under the file's name.
    #[arg(long)]
    pub model_file: Option<PathBuf>,
    /// How a LightGBM --model-file numbers features: `file` when LightGBM read these
    /// SVMlight files itself (it counts `1:` as feature 1), `columns` when it was trained
    /// on arrays whose first column is `1:` (e.g. from Python). Required for LightGBM models.
    #[arg(long, value_parser = ["file", "columns"])]
    pub lightgbm_indices: Option<String>,
    /// Write the last model's test scores here, one per row in file order.
    #[arg(long)]
    pub scores: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SplitMethod {
    /// One global time cut: the latest --fraction of all events.
    Temporal,
    /// Each user's latest --fraction of events.
    UserTemporal,
    /// Each user's latest --n events.
    LastN,
    /// A seeded random --fraction of each user's events.
    Random,
    /// A seeded random --fraction of the users, all their events (cold-start users).
    Users,
}

/// Split an event file into train and test CSV files.
///
/// Per-user methods keep at least one event of every user in train. The outputs have the
/// header user,item,kind,value,timestamp and feed `funnel eval recs` and `funnel import`.
///
/// Example:
///   funnel split ml-latest-small/ratings.csv --method user-temporal --fraction 0.2 \
///       --train train.csv --test test.csv
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct SplitArgs {
    pub input: PathBuf,
    #[arg(long, value_enum, default_value = "auto")]
    pub format: EventFormat,
    #[arg(long, value_enum)]
    pub method: SplitMethod,
    #[arg(long, default_value_t = 0.2)]
    pub fraction: f64,
    #[arg(long, default_value_t = 1)]
    pub n: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long)]
    pub train: PathBuf,
    #[arg(long)]
    pub test: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CrossEncoderLoss {
    Pointwise,
    Listwise,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ImportKind {
    Items,
    Users,
    Events,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ImportFormat {
    Auto,
    Jsonl,
    Csv,
    Tsv,
    Movielens,
    Beir,
}

/// Append a file of items, users or events to the log, all or nothing.
///
/// Reads JSONL, CSV/TSV with a header, MovieLens (u.data, u.item, u.user, ratings.csv,
/// movies.csv) and BEIR corpus.jsonl; `.gz` files are read directly. The format is taken
/// from the file name unless --format says otherwise. A bad line stops the import with
/// FILE:LINE and the reason, and nothing is imported; --skip-bad skips such lines and
/// reports them instead. The README lists the columns each kind accepts.
///
/// Examples:
///   funnel import events ml-100k/u.data
///   funnel import items ml-100k/u.item
///   funnel import items corpus.jsonl.gz --format beir
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ImportArgs {
    pub kind: ImportKind,
    pub file: PathBuf,
    #[arg(long, value_enum, default_value = "auto")]
    pub format: ImportFormat,
    /// Skip lines that do not parse (counted and reported) instead of failing.
    #[arg(long)]
    pub skip_bad: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Build a new snapshot (catalog, popularity, histories, text index) from the log.
///
/// The snapshot is written next to the others and published atomically; a running
/// `funnel serve` picks it up within seconds. Training may run while the server writes.
///
/// Example: funnel train --as-of 2024-05-01
#[derive(Debug, Args)]
#[command(verbatim_doc_comment, args_conflicts_with_subcommands = true)]
pub struct TrainArgs {
    #[command(subcommand)]
    pub model: Option<TrainCommand>,
    /// Build the snapshot as of this time (seconds or ISO date); later events are ignored.
    /// Default: the time of the newest event.
    #[arg(long)]
    pub as_of: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    CrossEncoder(TrainCrossEncoderArgs),
}

/// Fine-tune a cross-encoder reranker on a BEIR collection's judged queries.
///
/// Starts from a BERT folder: a bi-encoder such as all-MiniLM-L6-v2 (a new classifier head
/// is added) or a cross-encoder. Examples: each training query's judged-relevant documents,
/// each with negatives drawn with --seed: --negatives from the query's BM25 top 50 not
/// judged relevant (hard), --random-negatives from anywhere. --loss pointwise labels the
/// pairs 1 and 0; --loss listwise ranks each relevant document against its negatives. A
/// seeded --held-out share of the queries is kept out of training; their qrels are written
/// to OUT/held-out.tsv so the gain can be measured on unseen queries. --also adds other
/// collections' judged queries to the training ones. Writes a Hugging Face
/// BertForSequenceClassification folder (config.json, model.safetensors, tokenizer).
///
/// Example:
///   funnel train cross-encoder --beir ../shared/data/ir/cranfield/beir \
///       --base ../shared/models/all-MiniLM-L6-v2 --out models/ce-cranfield
///   funnel eval search --beir ../shared/data/ir/cranfield/beir \
///       --qrels models/ce-cranfield/held-out.tsv --rerank models/ce-cranfield
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct TrainCrossEncoderArgs {
    /// BEIR folder: corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv.
    #[arg(long)]
    pub beir: PathBuf,
    /// Model folder to start from (default: content.model).
    #[arg(long, env = "FUNNEL_EMBEDDING_MODEL")]
    pub base: Option<PathBuf>,
    /// Folder to write the fine-tuned model to (replaced if it exists).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value = "test")]
    pub split: String,
    /// More BEIR folders whose judged queries all train too (none held out); the held-out
    /// queries come from --beir alone.
    #[arg(long, value_name = "DIR")]
    pub also: Vec<PathBuf>,
    /// Also train on pseudo-queries from the corpus: each document's title as a query for the
    /// rest of its text (more queries than the judged ones, no judgments needed).
    #[arg(long)]
    pub title_queries: bool,
    /// Share of the judged queries kept out of training.
    #[arg(long, default_value_t = 0.3)]
    pub held_out: f64,
    /// Hard negatives per relevant document.
    #[arg(long, default_value_t = 1)]
    pub negatives: usize,
    /// Random negatives per relevant document (any document not judged relevant): easy
    /// ones, which teach topicality before the hard ones teach the finer line.
    #[arg(long, default_value_t = 1)]
    pub random_negatives: usize,
    /// pointwise: each pair's label by binary cross-entropy; listwise: each relevant
    /// document ranked against its negatives (one softmax per relevant document).
    #[arg(long, value_enum, default_value_t = CrossEncoderLoss::Pointwise)]
    pub loss: CrossEncoderLoss,
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Pairs per step (listwise: rounded down to whole groups, at least one group).
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Peak learning rate (AdamW; linear warm-up over the first 10% of steps, then decay).
    #[arg(long, default_value_t = 5e-5)]
    pub learning_rate: f64,
    /// Peak learning rate of the classifier (a new head needs a larger one).
    #[arg(long, default_value_t = 2e-3)]
    pub head_learning_rate: f64,
    /// Longest (query, document) pair in word pieces; longer documents are cut.
    #[arg(long, default_value_t = 256)]
    pub max_length: usize,
    /// Seed of the held-out split, the negatives, the new head and the batch order.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Serve the HTTP API over the newest snapshot, swapping in newer ones as they appear.
///
/// Endpoints: POST /items /users /events; GET /recommend /search /items/{id}/similar
/// /health /metrics /openapi.json. Writes are durable when acknowledged.
///
/// Example: funnel serve --addr 0.0.0.0:8080
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ServeArgs {
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Seconds between checks for a newer snapshot.
    #[arg(long, default_value_t = 2.0)]
    pub reload_secs: f64,
    /// Largest request body in MiB (larger ones get 413).
    #[arg(long, default_value_t = 16)]
    pub max_body_mb: usize,
}

#[derive(Debug, Args)]
pub struct SlateArgs {
    /// How many items to return.
    #[arg(long, short, default_value_t = 10)]
    pub k: usize,
    /// Show what every stage did (sources, scores, rules).
    #[arg(long)]
    pub explain: bool,
    /// Print the same JSON body as the HTTP API.
    #[arg(long)]
    pub json: bool,
    /// Seed for randomised stages.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// This request's weight for one of the surface's sources (repeatable), e.g.
    /// --weight bm25=0.3 --weight dense=0.7.
    #[arg(long, value_name = "SOURCE=WEIGHT", value_parser = parse_weight)]
    pub weight: Vec<(String, f32)>,
}

fn parse_weight(text: &str) -> Result<(String, f32), String> {
    let (name, weight) = text.split_once('=').ok_or("expected SOURCE=WEIGHT, e.g. bm25=0.3")?;
    let weight: f32 = weight.trim().parse().map_err(|_| format!("`{weight}` is not a number"))?;
    Ok((name.trim().to_owned(), weight))
}

/// Recommend items for a user from the newest snapshot.
///
/// Examples:
///   funnel recommend --user 1 --k 10 --explain
///   funnel recommend --context country=DE --context device=mobile
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct RecommendArgs {
    /// The user; leave out for an anonymous visitor (popular items).
    #[arg(long)]
    pub user: Option<String>,
    /// Configured surface to serve.
    #[arg(long, default_value = "home")]
    pub surface: String,
    /// A request attribute as name=value (repeatable), e.g. --context country=DE: the
    /// `segment` source serves what users with these attributes like.
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_context)]
    pub context: Vec<(String, String)>,
    #[command(flatten)]
    pub slate: SlateArgs,
}

fn parse_context(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() && !value.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(format!("`{text}` is not name=value (e.g. country=DE)")),
    }
}

/// Search the catalog's text.
///
/// Misspelt words are corrected from the catalog's own vocabulary (within two edits,
/// frequent words preferred) and the corrected query is searched; --exact turns that off.
///
/// Example: funnel search "async web framwork" --k 10
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct SearchArgs {
    /// The query (several words may be given without quotes).
    #[arg(required = true, num_args = 1..)]
    pub query: Vec<String>,
    /// Search the query as typed, without spell correction.
    #[arg(long)]
    pub exact: bool,
    /// How many of the best candidates the cross-encoder (`search.cross_encoder`)
    /// reorders, at most the surface's `rerank.cross_encoder_depth` (the default); 0
    /// turns it off.
    #[arg(long, value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=funnel_engine::MAX_RERANK_DEPTH as u64))]
    pub rerank_depth: Option<usize>,
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long, default_value = "search")]
    pub surface: String,
    #[command(flatten)]
    pub slate: SlateArgs,
}

/// Items like a given item.
///
/// Example: funnel similar 50 --k 5
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct SimilarArgs {
    pub item: String,
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long, default_value = "similar")]
    pub surface: String,
    #[command(flatten)]
    pub slate: SlateArgs,
}

/// Play policies against simulated users, round after round, and compare the feedback
/// loops they make.
///
/// A seeded world (the quickstart's: items with hidden quality and genre, users with
/// hidden tastes, position-biased clicks) starts from a few sessions per user under a
/// uniformly random policy. Then, each round, every user is served a slate by the policy,
/// reacts, and the next round is served from a snapshot retrained on everything so far;
/// item qualities drift between rounds. Each policy replays the same world and the same
/// users' coin flips.
///
/// Policies: the name of a surface in your configuration, or a built-in one: the `home`
/// surface plus the `unexplored` source (items nobody has interacted with, weighted low),
/// changed in one stage — greedy (the ranker's order), epsilon-greedy, bandit-greedy
/// (the best posterior click rates: Thompson's model without sampling), thompson
/// (Beta-Bernoulli per item and segment), linucb (contextual, by segment),
/// popularity-penalty, diversity.
///
/// Reports per policy the long-run CTR (mean of the second half of the rounds), how much
/// of the catalog was ever shown (coverage) and how unequal exposure is (Gini of
/// impressions per item); --plot draws them round by round as an SVG.
///
/// Example:
///   funnel simulate --rounds 20 --plot simulation.svg
///   funnel simulate --policies greedy,thompson --users 200 --json
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct SimulateArgs {
    /// Comma-separated policies to compare (the first is the baseline for ΔCTR).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "greedy,epsilon-greedy,bandit-greedy,thompson,linucb,popularity-penalty"
    )]
    pub policies: Vec<String>,
    /// Rounds to play (at least 2: the first half is the short run, the rest the long).
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
    #[arg(long, default_value_t = 1000)]
    pub items: usize,
    #[arg(long, default_value_t = 500)]
    pub users: usize,
    /// Slate size.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Random-policy sessions per user before the first round.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Standard deviation of each item's quality step per round (log-odds); 0: none.
    #[arg(long, default_value_t = 0.05)]
    pub drift: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Write the per-round curves as an SVG picture here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Print the result as JSON (every round of every policy) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Demo in one command: load data, train, serve, print example requests.
///
/// Without --data, a seeded simulator makes a catalog of 1,000 titled items in 10 genres
/// and the history of 500 users with hidden tastes (impressions with positions and
/// propensities, position-biased clicks, watch time, purchases). With --data, a MovieLens
/// folder (ml-100k or ml-latest-small) is imported instead. An existing store in
/// --data-dir is reused as it is.
///
/// Example: cargo run --release -- quickstart
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct QuickstartArgs {
    /// A MovieLens folder to import instead of the simulated demo.
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Seed of the simulated demo.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Stop after training (do not serve).
    #[arg(long)]
    pub no_serve: bool,
}
