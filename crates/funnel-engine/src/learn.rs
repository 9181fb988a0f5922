//! Training learned rankers (`ranker = "gbdt"`): a snapshot of the past serves each
//! labelled user the surface's merged candidates; their features (the serving code's) and
//! the user's later (or held-out) positive events make one request of the training set.

use std::collections::BTreeMap;
use std::sync::Arc;

use funnel_gbdt::{Dataset, Objective, Params};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::content::ContentIndex;
use crate::features::FeatureSchema;
use crate::ranker::{CandidateStage, RankerModel, RankerReport};
use crate::train::{Gathered, Interaction, Phases, assemble, positive_weight};
use crate::{EngineConfig, EngineError, Request, TrainConfig};
use funnel_core::{EventKind, Timestamp};

/// Labels per user: (item, label) of the positive events the features must not see.
type Labels = BTreeMap<u32, Vec<(u32, f64)>>;

/// Where the features end and the labels begin.
pub(crate) struct LabelSplit {
    /// The past snapshot's clock.
    pub features_as_of: Timestamp,
    /// Interactions the past snapshot is built from.
    pub past: Vec<Interaction>,
    pub labels: Labels,
}

/// The time before which `1 − label_fraction` of the positive events fall.
pub(crate) fn cut_time(gathered: &Gathered, config: &TrainConfig, as_of: Timestamp) -> Option<Timestamp> {
    let mut times: Vec<Timestamp> = gathered
        .interactions
        .iter()
        .filter(|e| e.timestamp <= as_of && positive_weight(config, e.kind, e.value) > 0.0)
        .map(|e| e.timestamp)
        .collect();
    times.sort_unstable();
    let at = ((1.0 - config.ranker.label_fraction) * times.len() as f64) as usize;
    times.get(at.min(times.len().saturating_sub(1))).copied()
}

/// Point in time: features from the events before `cut`, labels from the positive
/// events in `[cut, as_of]`.
pub(crate) fn split_at(gathered: &Gathered, config: &TrainConfig, cut: Timestamp, as_of: Timestamp) -> LabelSplit {
    let past = gathered.interactions.iter().filter(|e| e.timestamp < cut).copied().collect();
    let later = gathered.interactions.iter().filter(|e| (cut..=as_of).contains(&e.timestamp));
    LabelSplit { features_as_of: cut - 1, past, labels: labels(later, config) }
}

/// A seeded `label_fraction` of the items each user (with two or more) interacted with
/// held out: all their events leave the features, and their positive ones become labels.
/// An item the user rated low stays a candidate with label 0, as in a held-out test set.
/// Fold `f` of `holdout_folds` holds out the next share of the same seeded order of each
/// user's items, so folds of `label_fraction` ≤ 1 / folds are disjoint.
fn split_holdout(gathered: &Gathered, config: &TrainConfig, as_of: Timestamp, fold: usize) -> LabelSplit {
    let mut per_user: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for e in gathered.interactions.iter().filter(|e| e.timestamp <= as_of && e.kind != EventKind::Impression) {
        per_user.entry(e.user).or_default().push(e.item);
    }
    let mut rng = StdRng::seed_from_u64(config.seed ^ 0x5eed_1abe1);
    let mut held: FxHashSet<(u32, u32)> = FxHashSet::default();
    for (user, mut items) in per_user {
        items.sort_unstable();
        items.dedup();
        if items.len() < 2 {
            continue;
        }
        items.shuffle(&mut rng);
        // Fold f: positions [f·share, (f + 1)·share) of the order, wrapping around; one
        // item kept at least. With one fold at least one item is held out; with several,
        // a fold whose share rounds to none holds none out (so that folds stay disjoint).
        let share = config.ranker.label_fraction * items.len() as f64;
        let start = (fold as f64 * share).round() as usize;
        let width = ((fold + 1) as f64 * share).round() as usize - start;
        if width == 0 && config.ranker.holdout_folds > 1 {
            continue;
        }
        let n = width.clamp(1, items.len() - 1);
        held.extend((start..start + n).map(|i| (user, items[i % items.len()])));
    }
    let (out, past): (Vec<Interaction>, Vec<Interaction>) =
        gathered.interactions.iter().filter(|e| e.timestamp <= as_of).partition(|e| held.contains(&(e.user, e.item)));
    LabelSplit { features_as_of: as_of, past, labels: labels(out.iter(), config) }
}

/// Each user's label per item from these events, as `train.ranker.label` says.
fn labels<'a>(events: impl Iterator<Item = &'a Interaction>, config: &TrainConfig) -> Labels {
    let mut sums: BTreeMap<(u32, u32), f64> = BTreeMap::new();
    for e in events {
        let weight = positive_weight(config, e.kind, e.value);
        if weight <= 0.0 {
            continue;
        }
        let label = match config.ranker.label.as_str() {
            "weight" => weight,
            // A refund's negative revenue counts as none (labels are ≥ 0).
            "value" => e.value.map_or(0.0, |v| f64::from(v).max(0.0)),
            _ => 1.0,
        };
        let sum = sums.entry((e.user, e.item)).or_default();
        *sum = match config.ranker.label.as_str() {
            "binary" => 1.0,
            _ => *sum + label,
        };
    }
    let mut labels = Labels::new();
    for ((user, item), label) in sums {
        labels.entry(user).or_default().push((item, label));
    }
    labels
}

/// One request of a training set: a user's merged candidates, features and labels.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Group {
    pub user: u32,
    pub items: Vec<u32>,
    pub rows: Vec<f32>,
    pub labels: Vec<f64>,
}

/// The requests of `surface` for these users, served by `engine` (the past snapshot).
pub(crate) fn groups(
    engine: &crate::Engine,
    gathered: &Gathered,
    surface: &str,
    split: &LabelSplit,
    users: &[u32],
) -> Result<Vec<Group>, EngineError> {
    users
        .par_iter()
        .map(|&user| {
            let request = Request {
                surface: surface.to_owned(),
                user: Some(gathered.user_ids[user as usize].clone()),
                k: 10,
                now: Some(split.features_as_of),
                ..Request::default()
            };
            let (candidates, rows) = engine.candidate_features(&request)?;
            let wanted: FxHashMap<u32, f64> = split.labels.get(&user).into_iter().flatten().copied().collect();
            let labels = candidates.iter().map(|c| wanted.get(&c.item).copied().unwrap_or(0.0)).collect();
            Ok(Group { user, items: candidates.iter().map(|c| c.item).collect(), rows, labels })
        })
        .collect()
}

/// Trains the ranker of every surface with `ranker = "gbdt"`; `content` is lent to the
/// past snapshot and given back.
pub(crate) fn train_rankers(
    gathered: &mut Gathered,
    config: &EngineConfig,
    as_of: Timestamp,
    content: &mut Option<ContentIndex>,
    phases: &mut Phases<'_>,
) -> Result<BTreeMap<String, RankerModel>, EngineError> {
    let surfaces: Vec<&String> = config.surfaces.iter().filter(|(_, s)| s.ranker == "gbdt").map(|(n, _)| n).collect();
    if surfaces.is_empty() {
        return Ok(BTreeMap::new());
    }
    let train = &config.train;
    let folds = if train.ranker.split == "holdout" { train.ranker.holdout_folds } else { 1 };
    let mut sets: BTreeMap<&String, Vec<Group>> = surfaces.iter().map(|&s| (s, Vec::new())).collect();
    let mut features_as_of = as_of;
    let per_fold = train.ranker.max_requests.div_ceil(folds);
    for fold in 0..folds {
        phases.start("learned rankers: past snapshots");
        let mut split = match train.ranker.split.as_str() {
            "holdout" => split_holdout(gathered, train, as_of, fold),
            _ => {
                let cut = cut_time(gathered, train, as_of).ok_or_else(|| no_data("there are no positive events"))?;
                split_at(gathered, train, cut, as_of)
            }
        };
        features_as_of = split.features_as_of;
        let engine = past_engine(gathered, config, &mut split, content.take())?;
        let mut users: Vec<u32> = split.labels.keys().copied().collect();
        if users.len() > per_fold {
            users.shuffle(&mut StdRng::seed_from_u64(train.seed));
            users.truncate(per_fold);
            users.sort_unstable();
        }
        phases.start("learned rankers: training sets");
        for (surface, set) in &mut sets {
            set.extend(groups(&engine, gathered, surface, &split, &users)?);
        }
        let mut past =
            engine.into_snapshot().ok_or_else(|| EngineError::Ranker("the past snapshot is still shared".into()))?;
        *content = past.content.take();
    }
    let mut models = BTreeMap::new();
    for (surface, set) in sets {
        phases.start("learned rankers: boosting");
        let schema = FeatureSchema::for_sources(config.surfaces[surface].sources.iter().map(|s| s.name.as_str()));
        let model = fit(set, schema, CandidateStage::of(&config.surfaces[surface]), features_as_of, train)?;
        models.insert(surface.clone(), model);
    }
    Ok(models)
}

/// An engine over the snapshot of `split.past` as of `split.features_as_of`, serving
/// candidates only (every surface ranks by merged score there).
/// Takes `split.past`.
pub(crate) fn past_engine(
    gathered: &mut Gathered,
    config: &EngineConfig,
    split: &mut LabelSplit,
    content: Option<ContentIndex>,
) -> Result<crate::Engine, EngineError> {
    let then = gathered.past(std::mem::take(&mut split.past));
    let mut quiet = |_: &str| {};
    let mut quiet_phases = Phases { progress: &mut quiet, done: Vec::new(), current: None };
    // The past engine only computes features: it needs no passages for a cross-encoder.
    let mut past_config = config.clone();
    past_config.search.cross_encoder.clear();
    let past = assemble(&then, &past_config, split.features_as_of, content, &mut quiet_phases);
    gathered.take_back_items(then);
    past_config.surfaces.values_mut().for_each(|s| s.ranker = "score".into());
    crate::Engine::new(Arc::new(past), &past_config)
}

fn no_data(why: &str) -> EngineError {
    EngineError::Config(crate::ConfigError {
        key: "train.ranker".into(),
        reason: format!(
            "a learned ranker needs labelled users, but {why}; use `ranker = \"score\"` until the log has them"
        ),
    })
}

/// Training and validation sets from the requests with at least one positive label
/// (the others carry no ranking signal), then boosting.
fn fit(
    groups: Vec<Group>,
    schema: FeatureSchema,
    candidates: CandidateStage,
    features_as_of: Timestamp,
    train: &TrainConfig,
) -> Result<RankerModel, EngineError> {
    let config = &train.ranker;
    let objective: Objective = config.objective.parse().map_err(|e: String| no_data(&e))?;
    let ranking = matches!(objective, Objective::LambdaRank | Objective::RankNet);
    // Ranking objectives take integer grades 0–31; any positive label is at least 1.
    let mut groups = groups;
    if ranking {
        for group in &mut groups {
            group.labels.iter_mut().for_each(|l| *l = if *l > 0.0 { l.round().clamp(1.0, 31.0) } else { 0.0 });
        }
    }
    let useful: Vec<Group> = groups.into_iter().filter(|g| g.labels.iter().any(|&l| l > 0.0)).collect();
    // Validation holds out whole users: with holdout folds a user has several requests.
    let mut users: Vec<u32> = useful.iter().map(|g| g.user).collect();
    users.sort_unstable();
    users.dedup();
    if users.len() < 2 {
        return Err(no_data("fewer than two users have a labelled item among their candidates"));
    }
    users.shuffle(&mut StdRng::seed_from_u64(train.seed ^ 0x0a11_da7a));
    let n_valid = ((config.valid_fraction * users.len() as f64).round() as usize).clamp(1, users.len() - 1);
    let valid_users: FxHashSet<u32> = users[..n_valid].iter().copied().collect();
    let (valid_groups, useful): (Vec<Group>, Vec<Group>) =
        useful.into_iter().partition(|g| valid_users.contains(&g.user));
    let width = schema.width();
    let (n_train_groups, n_valid_groups) = (useful.len(), valid_groups.len());
    // Consumes the groups: one copy of the rows at a time.
    let dataset = |groups: Vec<Group>| {
        let (mut rows, mut labels, mut sizes) = (Vec::new(), Vec::new(), Vec::with_capacity(groups.len()));
        for group in groups {
            sizes.push(group.items.len());
            rows.extend(group.rows);
            labels.extend(group.labels);
        }
        Dataset::new(rows, width, labels, sizes).map_err(|e| EngineError::Ranker(format!("training set: {e}")))
    };
    let (train_set, valid_set) = (dataset(useful)?, dataset(valid_groups)?);
    let params = Params {
        objective,
        trees: config.trees,
        leaves: config.leaves,
        learning_rate: config.learning_rate,
        min_data_in_leaf: config.min_data_in_leaf,
        early_stopping: Some(config.early_stopping).filter(|&n| n > 0),
        ..Params::default()
    };
    let (model, _) = funnel_gbdt::train(&train_set, Some(&valid_set), &params, &mut |_, _| {})
        .map_err(|e| EngineError::Ranker(e.to_string()))?;
    let merged_column = schema.names.iter().position(|n| n == "merged.score").expect("in every schema");
    let merged: Vec<f64> = valid_set.features.chunks(width).map(|row| f64::from(row[merged_column])).collect();
    let scored = model.predict_rows(&valid_set.features, width);
    let importance = model.importance().into_iter().map(|i| (schema.names[i.feature].clone(), i.gain)).collect();
    let report = RankerReport {
        split: config.split.clone(),
        features_as_of,
        label: config.label.clone(),
        objective: config.objective.clone(),
        train_groups: n_train_groups,
        train_rows: train_set.rows(),
        valid_groups: n_valid_groups,
        trees: model.trees.len(),
        valid_ndcg_merged: funnel_gbdt::mean_ndcg(&valid_set.labels, &valid_set.groups, &merged, 10),
        valid_ndcg_model: funnel_gbdt::mean_ndcg(&valid_set.labels, &valid_set.groups, &scored, 10),
        importance,
    };
    Ok(RankerModel { schema, candidates, model, report })
}

#[cfg(test)]
mod tests;
