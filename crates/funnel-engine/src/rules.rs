//! Re-ranking rules. Each records what it removed, moved or boosted, and why.

use funnel_core::Candidate;
use rustc_hash::FxHashSet;
use serde_json::{Value, json};

use crate::config::{BoostConfig, RerankConfig};
use crate::{RequestContext, Rule};

/// At most this many dropped ids are listed in a trace.
const TRACE_LIMIT: usize = 50;

pub(crate) fn by_name(name: &str, config: &RerankConfig) -> Box<dyn Rule> {
    match name {
        "seen" => Box::new(Filter { name: "seen", keep: |ctx, item| !ctx.seen.contains(&item) }),
        "available" => {
            Box::new(Filter { name: "available", keep: |ctx, item| ctx.snapshot.catalog.get(item).available })
        }
        "safe" => Box::new(Filter { name: "safe", keep: |ctx, item| ctx.snapshot.catalog.get(item).safe }),
        "dedupe" => Box::new(Dedupe),
        "diversity" => Box::new(Diversity {
            lambda: config.diversity_lambda,
            depth: config.diversity_depth,
            by_content: config.diversity_similarity == "content",
        }),
        "freshness" => Box::new(Freshness {
            half_life_seconds: config.freshness_half_life_days * 86_400.0,
            boost: config.freshness_boost,
        }),
        "popularity" => Box::new(PopularityPenalty { strength: config.popularity_penalty }),
        "category-cap" => Box::new(CategoryCap { cap: config.category_cap }),
        "boost" => Box::new(Boost { boosts: config.boosts.clone() }),
        other => unreachable!("config validation admits only known rules, got {other}"),
    }
}

/// What a rule did, for the trace; nothing is built unless the request explains.
fn dropped_trace(ctx: &RequestContext<'_>, dropped: &[u32], reason: &str) -> Value {
    if !ctx.request.explain {
        return Value::Null;
    }
    let ids: Vec<&str> = dropped.iter().take(TRACE_LIMIT).map(|&i| ctx.snapshot.catalog.get(i).id.as_str()).collect();
    json!({ "dropped": dropped.len(), "reason": reason, "ids": ids })
}

/// Drops candidates for which `keep` is false.
struct Filter {
    name: &'static str,
    keep: fn(&RequestContext<'_>, u32) -> bool,
}

impl Rule for Filter {
    fn name(&self) -> &'static str {
        self.name
    }

    fn apply(&self, ctx: &RequestContext<'_>, candidates: &mut Vec<Candidate>) -> Value {
        let mut dropped = Vec::new();
        candidates.retain(|c| {
            let keep = (self.keep)(ctx, c.item);
            if !keep {
                dropped.push(c.item);
            }
            keep
        });
        let reason = match self.name {
            "seen" => "the user has already interacted with it",
            "available" => "marked unavailable",
            _ => "marked unsafe",
        };
        dropped_trace(ctx, &dropped, reason)
    }
}

/// Keeps the first of candidates that share an item or an identical title.
struct Dedupe;

impl Rule for Dedupe {
    fn name(&self) -> &'static str {
        "dedupe"
    }

    fn apply(&self, ctx: &RequestContext<'_>, candidates: &mut Vec<Candidate>) -> Value {
        let catalog = &ctx.snapshot.catalog;
        let mut items = FxHashSet::with_capacity_and_hasher(candidates.len(), Default::default());
        let mut titles = FxHashSet::with_capacity_and_hasher(candidates.len(), Default::default());
        let mut dropped = Vec::new();
        candidates.retain(|c| {
            let fresh_title = catalog.title_key(c.item).is_none_or(|key| titles.insert(key));
            let keep = items.insert(c.item) && fresh_title;
            if !keep {
                dropped.push(c.item);
            }
            keep
        });
        dropped_trace(ctx, &dropped, "same item or same title as a higher-ranked candidate")
    }
}

/// Maximal marginal relevance over the top `depth` candidates: each next place goes to the
/// candidate with the best λ · relevance − (1 − λ) · (largest similarity to a candidate
/// placed above it: Jaccard of their categories, or the cosine of their content vectors,
/// floored at 0); relevance is the score scaled to [0, 1] within the top.
/// Scores are kept; only the order changes.
struct Diversity {
    lambda: f32,
    depth: usize,
    /// Cosine of content vectors rather than shared categories.
    by_content: bool,
}

/// The lowest score and the spread of the scores (0 for none or all equal).
fn score_range(candidates: &[Candidate]) -> (f32, f32) {
    let (low, high) = candidates.iter().fold((f32::MAX, f32::MIN), |(l, h), c| (l.min(c.score), h.max(c.score)));
    (low, if high > low { high - low } else { 0.0 })
}

/// What a boost or penalty is measured in: the list's score spread, 1 when it has none.
fn boost_scale(candidates: &[Candidate]) -> f32 {
    match score_range(candidates).1 {
        0.0 => 1.0,
        spread => spread,
    }
}

fn jaccard(a: &[u32], b: &[u32]) -> f32 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let shared = a.iter().filter(|c| b.contains(c)).count();
    shared as f32 / (a.len() + b.len() - shared) as f32
}

impl Rule for Diversity {
    fn name(&self) -> &'static str {
        "diversity"
    }

    fn apply(&self, ctx: &RequestContext<'_>, candidates: &mut Vec<Candidate>) -> Value {
        let n = self.depth.min(candidates.len());
        let catalog = &ctx.snapshot.catalog;
        let top: Vec<Candidate> = candidates.drain(..n).collect();
        let (low, range) = score_range(&top);
        let relevance: Vec<f32> = top.iter().map(|c| if range > 0.0 { (c.score - low) / range } else { 1.0 }).collect();
        let vectors: Option<Vec<Option<&[f32]>>> = match (&ctx.snapshot.content, self.by_content) {
            (Some(content), true) => Some(top.iter().map(|c| content.vector(c.item)).collect()),
            _ => None,
        };
        let norms: Vec<f32> =
            vectors.iter().flatten().map(|v| v.map_or(0.0, |v| v.iter().map(|x| x * x).sum::<f32>().sqrt())).collect();
        let categories: Vec<&[u32]> = top.iter().map(|c| catalog.get(c.item).categories.as_slice()).collect();
        let similarity = |a: usize, b: usize| match &vectors {
            Some(vectors) => match (vectors[a], vectors[b]) {
                (Some(x), Some(y)) if norms[a] > 0.0 && norms[b] > 0.0 => {
                    (x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>() / (norms[a] * norms[b])).max(0.0)
                }
                // An item without a vector is compared by its categories.
                _ => jaccard(categories[a], categories[b]),
            },
            None => jaccard(categories[a], categories[b]),
        };
        let mut closest = vec![0f32; n];
        let mut placed = vec![false; n];
        let mut order = Vec::with_capacity(n);
        for _ in 0..n {
            let value = |i: usize| self.lambda * relevance[i] - (1.0 - self.lambda) * closest[i];
            let next = (0..n).filter(|&i| !placed[i]).max_by(|&a, &b| value(a).total_cmp(&value(b)).then(b.cmp(&a)));
            let Some(next) = next else { break };
            placed[next] = true;
            order.push(next);
            for i in (0..n).filter(|&i| !placed[i]) {
                closest[i] = closest[i].max(similarity(next, i));
            }
        }
        let moved = order.iter().enumerate().filter(|(at, i)| at != *i).count();
        let categories_in_10 = |items: &mut dyn Iterator<Item = &Candidate>| {
            items
                .take(10)
                .flat_map(|c| catalog.get(c.item).categories.iter().copied())
                .collect::<FxHashSet<u32>>()
                .len()
        };
        let before = ctx.request.explain.then(|| categories_in_10(&mut top.iter()));
        let reordered: Vec<Candidate> = order.iter().map(|&i| top[i].clone()).collect();
        let after = ctx.request.explain.then(|| categories_in_10(&mut reordered.iter()));
        candidates.splice(0..0, reordered);
        if !ctx.request.explain {
            return Value::Null;
        }
        let measure = if vectors.is_some() { "content" } else { "categories" };
        json!({ "lambda": self.lambda, "depth": n, "similarity": measure, "moved": moved, "categories_in_top_10": { "before": before, "after": after } })
    }
}

/// Boosts new items: score + boost × (the list's score range) × 2^(−age / half-life), then
/// reorders by score (stable: ties keep their order). Items without a creation time, or
/// created after the request's time (not out yet, or a wrong clock), are not boosted.
struct Freshness {
    half_life_seconds: f64,
    boost: f32,
}

impl Rule for Freshness {
    fn name(&self) -> &'static str {
        "freshness"
    }

    fn apply(&self, ctx: &RequestContext<'_>, candidates: &mut Vec<Candidate>) -> Value {
        let range = boost_scale(candidates);
        let (mut boosted, mut future) = (0, 0);
        for candidate in candidates.iter_mut() {
            let Some(created) = ctx.snapshot.catalog.get(candidate.item).created_at else { continue };
            if created > ctx.now {
                future += 1;
                continue;
            }
            let age = ctx.now.saturating_sub(created) as f64;
            let factor = (-age / self.half_life_seconds).exp2() as f32;
            if factor > 1e-3 {
                candidate.score += self.boost * range * factor;
                boosted += 1;
            }
        }
        candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
        if !ctx.request.explain {
            return Value::Null;
        }
        json!({ "boosted": boosted, "created_later": future, "half_life_days": self.half_life_seconds / 86_400.0, "boost": self.boost })
    }
}

/// Business boosts: each candidate gains the `boost` of every entry naming it (its id or
/// one of its categories) × the list's score range; then the list is re-sorted by score
/// (stable).
struct Boost {
    boosts: Vec<BoostConfig>,
}

impl Rule for Boost {
    fn name(&self) -> &'static str {
        "boost"
    }

    fn apply(&self, ctx: &RequestContext<'_>, candidates: &mut Vec<Candidate>) -> Value {
        let catalog = &ctx.snapshot.catalog;
        // (item or category index, boost); names the snapshot does not know match nothing.
        let mut by_item: Vec<(u32, f32)> = Vec::new();
        let mut by_category: Vec<(u32, f32)> = Vec::new();
        for boost in &self.boosts {
            if let Some(item) = boost.item.as_deref().and_then(|id| catalog.index_of(id)) {
                by_item.push((item, boost.boost));
            }
            if let Some(name) = &boost.category {
                let found = (0..catalog.n_categories() as u32).find(|&c| catalog.category_name(c) == name);
                by_category.extend(found.map(|c| (c, boost.boost)));
            }
        }
        let range = boost_scale(candidates);
        let mut boosted = 0;
        for candidate in candidates.iter_mut() {
            let categories = &catalog.get(candidate.item).categories;
            let total: f32 = by_item.iter().filter(|(item, _)| *item == candidate.item).map(|(_, b)| b).sum::<f32>()
                + by_category.iter().filter(|(c, _)| categories.contains(c)).map(|(_, b)| b).sum::<f32>();
            if total != 0.0 {
                candidate.score += total * range;
                boosted += 1;
            }
        }
        candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
        if !ctx.request.explain {
            return Value::Null;
        }
        json!({ "boosted": boosted, "score_range": range, "rules": by_item.len() + by_category.len() })
    }
}

/// Calibrates popularity to the user: with p(i) = ln(1 + popularity) / ln(1 + the top
/// item's) in [0, 1] and the user's taste u = the mean p over their history (0.5 without
/// one), an item loses strength × (the list's score range) × max(0, p(i) − u); then the
/// list is re-sorted by score (stable). A user of niche items sees fewer blockbusters.
struct PopularityPenalty {
    strength: f32,
}

impl Rule for PopularityPenalty {
    fn name(&self) -> &'static str {
        "popularity"
    }

    fn apply(&self, ctx: &RequestContext<'_>, candidates: &mut Vec<Candidate>) -> Value {
        let popularity = &ctx.snapshot.popularity;
        let top = popularity.log_top();
        if top <= 0.0 {
            return Value::Null;
        }
        let p = |item: u32| popularity.log_score(item) / top;
        let history = ctx.request.user.as_deref().map_or(&[][..], |u| ctx.snapshot.histories.of(u));
        let taste = match history.len() {
            0 => 0.5,
            n => history.iter().map(|&i| p(i)).sum::<f32>() / n as f32,
        };
        let range = boost_scale(candidates);
        let mut penalised = 0;
        for candidate in candidates.iter_mut() {
            let gap = p(candidate.item) - taste;
            if gap > 0.0 {
                candidate.score -= self.strength * range * gap;
                penalised += 1;
            }
        }
        candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
        if !ctx.request.explain {
            return Value::Null;
        }
        json!({ "user_taste": taste, "penalised": penalised, "strength": self.strength })
    }
}

/// At most `cap` items of one category in the slate (the request's `k` first places): an
/// item that would exceed the cap of any of its categories moves below the slate, keeping
/// its order; if too few items fit, they fill the slate's end in their order.
struct CategoryCap {
    cap: usize,
}

impl Rule for CategoryCap {
    fn name(&self) -> &'static str {
        "category-cap"
    }

    fn apply(&self, ctx: &RequestContext<'_>, candidates: &mut Vec<Candidate>) -> Value {
        let catalog = &ctx.snapshot.catalog;
        let k = ctx.request.k;
        let mut counts: rustc_hash::FxHashMap<u32, usize> = rustc_hash::FxHashMap::default();
        let (mut slate, mut deferred, mut rest) = (Vec::with_capacity(k), Vec::new(), Vec::new());
        for candidate in candidates.drain(..) {
            if slate.len() >= k {
                rest.push(candidate);
                continue;
            }
            let categories = &catalog.get(candidate.item).categories;
            if categories.iter().any(|c| counts.get(c).copied().unwrap_or(0) >= self.cap) {
                deferred.push(candidate);
            } else {
                categories.iter().for_each(|&c| *counts.entry(c).or_default() += 1);
                slate.push(candidate);
            }
        }
        let moved = deferred.len();
        let ids: Vec<u32> = deferred.iter().map(|c| c.item).collect();
        candidates.extend(slate);
        candidates.extend(deferred);
        candidates.extend(rest);
        if !ctx.request.explain {
            return Value::Null;
        }
        let mut trace = dropped_trace(ctx, &ids, "its category already fills the cap in the slate");
        trace["cap"] = json!(self.cap);
        trace["moved_below_the_slate"] = json!(moved);
        trace
    }
}

#[cfg(test)]
mod tests {
    use funnel_core::Item;

    use super::*;

    fn item(id: &str, categories: &[&str], created_at: Option<i64>) -> Item {
        Item { categories: categories.iter().map(|c| c.to_string()).collect(), created_at, ..Item::bare(id) }
    }

    #[test]
    fn diversity_interleaves_categories_and_lambda_one_keeps_the_order() {
        let items = vec![
            item("a1", &["action"], None),
            item("a2", &["action"], None),
            item("a3", &["action"], None),
            item("c1", &["comedy"], None),
            item("d1", &["drama"], None),
        ];
        let snapshot = crate::train::snapshot_of(items);
        let request = crate::Request { explain: true, ..crate::Request::default() };
        let ctx = crate::train::context(&snapshot, &request);
        let ranked = || -> Vec<Candidate> {
            [1.0, 0.95, 0.9, 0.6, 0.5].iter().enumerate().map(|(i, &s)| Candidate::new(i as u32, "t", s)).collect()
        };
        let mut candidates = ranked();
        let trace = Diversity { lambda: 0.5, depth: 10, by_content: false }.apply(&ctx, &mut candidates);
        let order: Vec<&str> = candidates.iter().map(|c| snapshot.catalog.get(c.item).id.as_str()).collect();
        assert_eq!(order, ["a1", "c1", "d1", "a2", "a3"], "{trace}");
        assert_eq!(trace["moved"], 4);
        assert_eq!(candidates[1].score, 0.6, "scores are kept");
        let mut candidates = ranked();
        Diversity { lambda: 1.0, depth: 10, by_content: false }.apply(&ctx, &mut candidates);
        assert_eq!(candidates, ranked());
        let mut candidates = ranked();
        Diversity { lambda: 0.0, depth: 2, by_content: false }.apply(&ctx, &mut candidates);
        assert_eq!(candidates, ranked(), "only the top 2 (both action) are reordered");
    }

    #[test]
    fn freshness_lifts_new_items_by_their_age() {
        let day = 86_400;
        let items = vec![item("old", &[], Some(0)), item("new", &[], Some(100 * day)), item("undated", &[], None)];
        let snapshot = crate::train::snapshot_of(items);
        let request = crate::Request { now: Some(100 * day), explain: true, ..crate::Request::default() };
        let ctx = crate::train::context(&snapshot, &request);
        let mut candidates =
            vec![Candidate::new(0, "t", 1.0), Candidate::new(2, "t", 0.9), Candidate::new(1, "t", 0.5)];
        let trace = Freshness { half_life_seconds: 14.0 * day as f64, boost: 1.0 }.apply(&ctx, &mut candidates);
        // The new item gains the full range (0.5); the 100-day-old one 2^(-100/14) of it.
        let ids: Vec<u32> = candidates.iter().map(|c| c.item).collect();
        assert_eq!(ids, [0, 1, 2], "{trace}");
        assert!((candidates[1].score - 1.0).abs() < 1e-6);
        assert!((candidates[0].score - (1.0 + 0.5 * (-100f32 / 14.0).exp2())).abs() < 1e-6);
        assert_eq!(trace["boosted"], 2);
    }

    #[test]
    fn category_caps_move_the_excess_below_the_slate() {
        let items = vec![
            item("a1", &["action"], None),
            item("a2", &["action"], None),
            item("a3", &["action", "comedy"], None),
            item("c1", &["comedy"], None),
            item("n1", &[], None),
        ];
        let snapshot = crate::train::snapshot_of(items);
        let request = crate::Request { k: 3, explain: true, ..crate::Request::default() };
        let ctx = crate::train::context(&snapshot, &request);
        let mut candidates: Vec<Candidate> = (0..5).map(|i| Candidate::new(i, "t", 1.0 - i as f32 / 10.0)).collect();
        let trace = CategoryCap { cap: 2 }.apply(&ctx, &mut candidates);
        let order: Vec<&str> = candidates.iter().map(|c| snapshot.catalog.get(c.item).id.as_str()).collect();
        assert_eq!(order, ["a1", "a2", "c1", "a3", "n1"], "{trace}");
        assert_eq!(trace["moved_below_the_slate"], 1);
    }

    #[test]
    fn the_popularity_penalty_follows_the_users_taste() {
        use funnel_core::{Event, EventContext, EventKind, Record};
        let mut gathered = crate::train::Gathered::default();
        for i in 0..4 {
            gathered.record(Record::Item(item(&format!("i{i}"), &[], None)));
        }
        // i0 is a blockbuster (40 clicks), i1–i3 niche (1 each); "niche" clicked i1 only.
        let click = |user: &str, item: &str| {
            Record::Event(Event {
                user: user.into(),
                item: item.into(),
                kind: EventKind::Click,
                value: None,
                timestamp: 0,
                context: EventContext::default(),
            })
        };
        (0..40).for_each(|n| gathered.record(click(&format!("fan{n}"), "i0")));
        gathered.record(click("niche", "i1"));
        gathered.record(click("x", "i2"));
        gathered.record(click("y", "i3"));
        let snapshot = crate::train::snapshot_from(&gathered);
        let ranked = || vec![Candidate::new(0, "t", 1.0), Candidate::new(2, "t", 0.8), Candidate::new(3, "t", 0.7)];
        let rule = PopularityPenalty { strength: 1.0 };
        for (user, first) in [("niche", 2), ("fan1", 0)] {
            let request = crate::Request { user: Some(user.into()), explain: true, ..crate::Request::default() };
            let ctx = crate::train::context(&snapshot, &request);
            let mut candidates = ranked();
            let trace = rule.apply(&ctx, &mut candidates);
            assert_eq!(candidates[0].item, first, "{user}: {trace}");
        }
    }
}
