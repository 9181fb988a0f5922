//! Re-ranking rules. Each records what it removed and why.

use funnel_core::Candidate;
use rustc_hash::FxHashSet;
use serde_json::{Value, json};

use crate::{RequestContext, Rule};

/// At most this many dropped ids are listed in a trace.
const TRACE_LIMIT: usize = 50;

pub(crate) fn by_name(name: &str) -> Box<dyn Rule> {
    match name {
        "seen" => Box::new(Filter { name: "seen", keep: |ctx, item| !ctx.seen.contains(&item) }),
        "available" => {
            Box::new(Filter { name: "available", keep: |ctx, item| ctx.snapshot.catalog.get(item).available })
        }
        "safe" => Box::new(Filter { name: "safe", keep: |ctx, item| ctx.snapshot.catalog.get(item).safe }),
        "dedupe" => Box::new(Dedupe),
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
