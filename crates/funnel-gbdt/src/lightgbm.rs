//! Reading LightGBM's text model files (`Booster.save_model`, `model.txt`), so that a
//! ranker trained with LightGBM elsewhere can score here. Numerical splits whose missing
//! values are handled as zeros (LightGBM's `missing_type` None, its choice when training
//! data have no NaN) are read; categorical splits, NaN/zero-as-missing directions, linear
//! trees and multi-class models are refused with the reason.

use std::collections::HashMap;
use std::path::Path;

use crate::{GbdtError, Model, Objective, Tree};

/// Whether `text` is a LightGBM model file (its first line is `tree`).
pub(crate) fn looks_like(text: &str) -> bool {
    text.lines().next().is_some_and(|l| l.trim() == "tree")
}

/// key=value lines of one block, with their line numbers.
type Block<'a> = HashMap<&'a str, (usize, &'a str)>;

/// Errors that name the file and the line.
struct Reader<'a> {
    path: &'a Path,
}

impl Reader<'_> {
    fn bad(&self, line: usize, reason: String) -> GbdtError {
        GbdtError::Format { path: self.path.to_owned(), reason: format!("line {line}: {reason}") }
    }

    /// A block's field, or an error at the block's first line `at`.
    fn field<'b>(&self, block: &Block<'b>, key: &str, at: usize) -> Result<(usize, &'b str), GbdtError> {
        block.get(key).copied().ok_or_else(|| self.bad(at, format!("field `{key}` is missing")))
    }

    fn list<T: std::str::FromStr>(&self, block: &Block, key: &str, at: usize) -> Result<Vec<T>, GbdtError> {
        let (line, value) = self.field(block, key, at)?;
        value
            .split_whitespace()
            .map(|v| v.parse().map_err(|_| self.bad(line, format!("field `{key}`: `{v}`"))))
            .collect()
    }

    /// Refuses a field whose value is not `allowed`.
    fn only(&self, block: &Block, key: &str, allowed: &str, why: &str) -> Result<(), GbdtError> {
        match block.get(key) {
            Some(&(line, value)) if value != allowed => Err(self.bad(line, format!("`{key}={value}`: {why}"))),
            _ => Ok(()),
        }
    }
}

pub(crate) fn parse(path: &Path, text: &str) -> Result<Model, GbdtError> {
    let reader = Reader { path };
    let mut blocks: Vec<(usize, Block)> = vec![(1, HashMap::new())];
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line == "end of trees" {
            break;
        }
        if line.starts_with("Tree=") {
            blocks.push((i + 1, HashMap::new()));
        }
        if line == "average_output" {
            return Err(reader.bad(i + 1, "`average_output` (a random forest): only boosted sums are supported".into()));
        }
        if let Some((key, value)) = line.split_once('=') {
            blocks.last_mut().expect("one block at least").1.insert(key, (i + 1, value));
        }
    }
    let (_, header) = &blocks[0];
    for key in ["num_class", "num_tree_per_iteration"] {
        reader.only(header, key, "1", "only single-output models are supported")?;
    }
    let (line, max_feature) = reader.field(header, "max_feature_idx", 1)?;
    let width = max_feature
        .parse::<usize>()
        .ok()
        .filter(|&m| m < crate::MAX_FEATURES)
        .ok_or_else(|| reader.bad(line, format!("`max_feature_idx={max_feature}`")))?
        + 1;
    let (line, objective) = reader.field(header, "objective", 1)?;
    let objective = match objective.split_whitespace().next().unwrap_or("") {
        "lambdarank" | "rank_xendcg" => Objective::LambdaRank,
        "binary" | "cross_entropy" => Objective::Binary,
        "regression" | "regression_l2" | "mse" => Objective::Regression,
        other => return Err(reader.bad(line, format!("objective `{other}` is not supported"))),
    };
    let trees = blocks[1..].iter().map(|(at, block)| tree(&reader, block, *at)).collect::<Result<Vec<_>, _>>()?;
    for (t, tree) in trees.iter().enumerate() {
        tree.check(width).map_err(|reason| reader.bad(blocks[t + 1].0, format!("tree {t}: {reason}")))?;
    }
    // LightGBM folds any starting score into the first tree's leaves: none to add here.
    Ok(Model { objective, init_score: 0.0, width, trees })
}

fn tree(reader: &Reader, block: &Block, at: usize) -> Result<Tree, GbdtError> {
    reader.only(block, "num_cat", "0", "categorical splits are not supported")?;
    reader.only(block, "is_linear", "0", "linear trees are not supported")?;
    let (line, leaves) = reader.field(block, "num_leaves", at)?;
    let leaves: usize = leaves.parse().map_err(|_| reader.bad(line, format!("field `num_leaves`: `{leaves}`")))?;
    let leaf_value: Vec<f64> = reader.list(block, "leaf_value", at)?;
    if leaves <= 1 {
        return Ok(Tree { feature: vec![], threshold: vec![], left: vec![], right: vec![], gain: vec![], leaf_value });
    }
    let decision: Vec<u32> = reader.list(block, "decision_type", at)?;
    if decision.len() != leaves - 1 {
        let (line, _) = reader.field(block, "decision_type", at)?;
        return Err(reader.bad(line, format!("{} decision types for {} nodes", decision.len(), leaves - 1)));
    }
    if let Some(d) = decision.iter().find(|&&d| d & 1 != 0 || (d >> 2) & 3 != 0) {
        let (line, _) = reader.field(block, "decision_type", at)?;
        return Err(reader.bad(
            line,
            format!("decision type {d}: only numerical splits without a missing-value direction are supported"),
        ));
    }
    let gain =
        if block.contains_key("split_gain") { reader.list(block, "split_gain", at)? } else { vec![0.0; leaves - 1] };
    Ok(Tree {
        feature: reader.list(block, "split_feature", at)?,
        threshold: reader.list(block, "threshold", at)?,
        left: reader.list(block, "left_child", at)?,
        right: reader.list(block, "right_child", at)?,
        gain,
        leaf_value,
    })
}
