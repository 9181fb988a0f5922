//! What the bandit policies learn from: how often each item was shown (impressions) and
//! rewarded (events of the kind `train.bandit_reward`, a click by default), overall and
//! within each user segment.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use funnel_core::{EventKind, Timestamp};

use crate::segments::Segments;
use crate::train::Gathered;

/// Shown and rewarded counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub shown: u32,
    /// At most `shown`: a reward without an impression (a rating imported without the
    /// slate it came from) says nothing about a policy's slates.
    pub rewarded: u32,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.shown += other.shown;
        self.rewarded += other.rewarded;
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Feedback {
    /// By item index.
    pub items: Vec<Counts>,
    /// Sorted by (segment, item); only pairs with an impression.
    pub by_segment: Vec<((u32, u32), Counts)>,
    pub total: Counts,
    /// The items shown least (fewest impressions first, ties by index), up to
    /// [`LEAST_SHOWN`]: the `unexplored` source's candidates.
    pub least_shown: Vec<u32>,
}

/// How many of the least-shown items a snapshot keeps in order.
pub const LEAST_SHOWN: usize = 100_000;

impl Feedback {
    /// Counts of every event up to `as_of`; segments by the users' stored attributes.
    pub(crate) fn build(gathered: &Gathered, segments: &Segments, reward: EventKind, as_of: Timestamp) -> Self {
        let of_users = segments.of_users();
        let mut items = vec![(0u32, 0u32); gathered.items.len()];
        let mut pairs: FxHashMap<(u32, u32), (u32, u32)> = FxHashMap::default();
        for event in gathered.interactions.iter().filter(|e| e.timestamp <= as_of) {
            let (shown, rewarded) = match event.kind {
                EventKind::Impression => (1, 0),
                kind if kind == reward => (0, 1),
                _ => continue,
            };
            let slot = &mut items[event.item as usize];
            *slot = (slot.0 + shown, slot.1 + rewarded);
            for &segment in of_users.get(event.user as usize).map_or(&[][..], Vec::as_slice) {
                let pair = pairs.entry((segment, event.item)).or_default();
                *pair = (pair.0 + shown, pair.1 + rewarded);
            }
        }
        let counts = |(shown, rewarded): (u32, u32)| Counts { shown, rewarded: rewarded.min(shown) };
        let items: Vec<Counts> = items.into_iter().map(counts).collect();
        let mut by_segment: Vec<((u32, u32), Counts)> =
            pairs.into_iter().filter(|(_, (shown, _))| *shown > 0).map(|(key, c)| (key, counts(c))).collect();
        by_segment.sort_unstable_by_key(|(key, _)| *key);
        let mut total = Counts::default();
        items.iter().for_each(|c| total.add(*c));
        let mut least_shown: Vec<u32> = (0..items.len() as u32).collect();
        let shown = |i: &u32| (items[*i as usize].shown, *i);
        if least_shown.len() > LEAST_SHOWN {
            least_shown.select_nth_unstable_by_key(LEAST_SHOWN, shown);
            least_shown.truncate(LEAST_SHOWN);
        }
        least_shown.sort_unstable_by_key(shown);
        Self { items, by_segment, total, least_shown }
    }

    pub fn item(&self, item: u32) -> Counts {
        self.items.get(item as usize).copied().unwrap_or_default()
    }

    /// The item's counts summed over `segments`.
    pub fn in_segments(&self, item: u32, segments: &[u32]) -> Counts {
        let mut sum = Counts::default();
        for &segment in segments {
            if let Ok(at) = self.by_segment.binary_search_by_key(&(segment, item), |(key, _)| *key) {
                sum.add(self.by_segment[at].1);
            }
        }
        sum
    }

    /// The reward rate of all impressions, with one reward in two impressions as a prior
    /// (so an empty log gives 0.5).
    pub fn base_rate(&self) -> f64 {
        (f64::from(self.total.rewarded) + 1.0) / (f64::from(self.total.shown) + 2.0)
    }

    /// The Beta posterior (α, β) of the item's reward rate: a prior of `strength`
    /// pseudo-impressions at the base rate, updated by the item's counts; then, when
    /// `segments` is not empty, that posterior's mean as the prior (again of `strength`)
    /// for the item's counts within the segments. An item × segment with little data
    /// thus falls back to the item, and an item with little data to the base rate.
    pub fn posterior(&self, item: u32, segments: &[u32], strength: f64) -> (f64, f64) {
        let update = |mean: f64, c: Counts| {
            (strength * mean + f64::from(c.rewarded), strength * (1.0 - mean) + f64::from(c.shown - c.rewarded))
        };
        let (a, b) = update(self.base_rate(), self.item(item));
        if segments.is_empty() {
            return (a, b);
        }
        update(a / (a + b), self.in_segments(item, segments))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use funnel_core::{Event, EventContext, Item, Record, User};

    use super::*;

    fn event(user: &str, item: &str, kind: EventKind, timestamp: Timestamp) -> Record {
        Record::Event(Event {
            user: user.into(),
            item: item.into(),
            kind,
            value: None,
            timestamp,
            context: EventContext::default(),
        })
    }

    /// Items i0–i3; 20 users in country "a" and 20 in "b". Everyone saw i0 and i1 ten
    /// times; users of "a" clicked i0 on half of them, users of "b" clicked i1 on half.
    /// i2 was shown once to each user and never clicked; i3 never shown (one rating).
    pub(crate) fn log() -> crate::train::Gathered {
        let mut gathered = crate::train::Gathered::default();
        for i in 0..4 {
            gathered.record(Record::Item(Item::bare(format!("i{i}"))));
        }
        for u in 0..40 {
            let (user, country) = (format!("u{u}"), if u < 20 { "a" } else { "b" });
            let attributes = [("country".to_owned(), serde_json::json!(country))].into();
            gathered.record(Record::User(User { id: user.clone(), attributes }));
            let liked = if u < 20 { "i0" } else { "i1" };
            for t in 0..10 {
                gathered.record(event(&user, "i0", EventKind::Impression, t));
                gathered.record(event(&user, "i1", EventKind::Impression, t));
                if t % 2 == 0 {
                    gathered.record(event(&user, liked, EventKind::Click, t));
                }
            }
            gathered.record(event(&user, "i2", EventKind::Impression, 20));
        }
        gathered.record(event("u0", "i3", EventKind::Rating, 30));
        gathered
    }

    #[test]
    fn counts_impressions_and_rewards_per_item_and_segment() {
        let snapshot = crate::train::snapshot_from(&log());
        let feedback = &snapshot.feedback;
        assert_eq!(feedback.item(0), Counts { shown: 400, rewarded: 100 });
        assert_eq!(feedback.item(2), Counts { shown: 40, rewarded: 0 });
        assert_eq!(feedback.item(3), Counts::default(), "a reward without an impression does not count");
        assert_eq!(feedback.total, Counts { shown: 840, rewarded: 200 });
        assert_eq!(feedback.least_shown, [3, 2, 0, 1]);
        let a = snapshot.segments.matching(Some(0), &Default::default());
        let b = snapshot.segments.matching(Some(39), &Default::default());
        assert_eq!(feedback.in_segments(0, &a), Counts { shown: 200, rewarded: 100 });
        assert_eq!(feedback.in_segments(0, &b), Counts { shown: 200, rewarded: 0 });
        let mean = |(a, b): (f64, f64)| a / (a + b);
        // Overall i0 and i1 are alike; within a segment the liked one is far ahead.
        assert!((mean(feedback.posterior(0, &[], 10.0)) - mean(feedback.posterior(1, &[], 10.0))).abs() < 1e-9);
        assert!(mean(feedback.posterior(0, &a, 10.0)) > 0.45);
        assert!(mean(feedback.posterior(1, &a, 10.0)) < 0.05);
        // The never-shown item keeps the prior: the base rate.
        assert!((mean(feedback.posterior(3, &[], 10.0)) - feedback.base_rate()).abs() < 1e-9);
        // A later cut sees fewer events.
        let early = Feedback::build(&log(), &snapshot.segments, EventKind::Click, 4);
        assert_eq!(early.item(0), Counts { shown: 200, rewarded: 60 });
    }

    #[test]
    fn the_unexplored_source_proposes_the_least_shown_eligible_items() {
        let snapshot = crate::train::snapshot_from(&log());
        let source = crate::sources::by_name("unexplored");
        // u0 rated i3 (seen), so its least shown item is i2, then i0 and i1 (400 each).
        let request = crate::Request { user: Some("u0".into()), ..crate::Request::default() };
        let mut ctx = crate::train::context(&snapshot, &request);
        ctx.seen = [3].into_iter().collect();
        let proposed: Vec<(u32, f32)> = source.generate(&ctx, 2).iter().map(|c| (c.item, c.source_score)).collect();
        assert_eq!(proposed, [(2, 1.0 / 41.0), (0, 1.0 / 401.0)]);
    }
}
