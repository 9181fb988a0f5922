use std::collections::BTreeMap;

use serde::Serialize;

use crate::stats::Comparison;

/// Wall-clock seconds of each part of an evaluation.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Timing {
    pub fit_s: f64,
    pub index_s: f64,
    pub eval_s: f64,
    /// Users or queries evaluated per second.
    pub qps: f64,
}

/// One system's result on one dataset: what `--json` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub task: &'static str,
    pub dataset: String,
    pub system: String,
    pub params: serde_json::Value,
    pub metrics: BTreeMap<String, f64>,
    /// Users or queries with at least one relevant item, which the metrics average over.
    pub n_evaluated: usize,
    /// Users or queries left out because nothing of theirs is relevant.
    pub n_skipped: usize,
    pub timing: Timing,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// Per metric: this system minus the baseline, paired over the same units.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub comparison: BTreeMap<String, Comparison>,
}
