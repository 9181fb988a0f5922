//! What the bandit policies learn from: how often each item was shown (impressions) and
//! rewarded (events of the kind `train.bandit_reward`, a click by default), overall and
//! within each user segment. A reward counts only against an earlier impression of the
//! same item to the same user, at most `train.bandit_window_days` before it, that no
//! reward has claimed yet: a click with no impression of that item in the window (from a
//! search the log has no slate of, say), or a second click on one impression, says
//! nothing about how often a shown item is taken. (The log's events carry no request id
//! to match on.)

use std::collections::VecDeque;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use funnel_core::{EventKind, Timestamp};

use crate::segments::Segments;
use crate::train::Gathered;

/// Shown and rewarded counts (rewarded ≤ shown).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub shown: u64,
    pub rewarded: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.shown = self.shown.saturating_add(other.shown);
        self.rewarded = self.rewarded.saturating_add(other.rewarded);
    }
}

/// One impression, or one reward matched to an impression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BanditEvent {
    pub user: u32,
    pub item: u32,
    pub reward: bool,
}

/// Every impression up to `as_of`, and every reward matched to an earlier unclaimed
/// impression of the same (user, item) at most `window_seconds` before it, in time order
/// (within a second, impressions first).
pub(crate) fn bandit_events(
    gathered: &Gathered,
    reward: EventKind,
    window_seconds: i64,
    as_of: Timestamp,
) -> Vec<BanditEvent> {
    let events = &gathered.interactions;
    let relevant =
        |e: &crate::train::Interaction| e.timestamp <= as_of && (e.kind == EventKind::Impression || e.kind == reward);
    let mut order: Vec<u32> = (0..events.len() as u32).filter(|&i| relevant(&events[i as usize])).collect();
    order.sort_by_key(|&i| (events[i as usize].timestamp, events[i as usize].kind != EventKind::Impression));
    // (user, item) → the times of its unclaimed impressions, oldest first.
    let mut unclaimed: FxHashMap<(u32, u32), VecDeque<Timestamp>> = FxHashMap::default();
    let mut out = Vec::with_capacity(order.len());
    for i in order {
        let e = &events[i as usize];
        let key = (e.user, e.item);
        if e.kind == EventKind::Impression {
            unclaimed.entry(key).or_default().push_back(e.timestamp);
            out.push(BanditEvent { user: e.user, item: e.item, reward: false });
        } else if let Some(open) = unclaimed.get_mut(&key) {
            // Impressions older than the window can no longer be claimed.
            while open.front().is_some_and(|&t| e.timestamp - t > window_seconds) {
                open.pop_front();
            }
            if open.pop_front().is_some() {
                out.push(BanditEvent { user: e.user, item: e.item, reward: true });
            }
            if open.is_empty() {
                unclaimed.remove(&key);
            }
        }
    }
    out
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
    /// Counts of `events` ([`bandit_events`]) over `n_items` items; segments by the users'
    /// stored attributes.
    pub(crate) fn build(events: &[BanditEvent], n_items: usize, segments: &Segments) -> Self {
        let of_users = segments.of_users();
        let mut items = vec![Counts::default(); n_items];
        let mut pairs: FxHashMap<(u32, u32), Counts> = FxHashMap::default();
        for event in events {
            let one = Counts { shown: u64::from(!event.reward), rewarded: u64::from(event.reward) };
            items[event.item as usize].add(one);
            for &segment in of_users.get(event.user as usize).map_or(&[][..], Vec::as_slice) {
                pairs.entry((segment, event.item)).or_default().add(one);
            }
        }
        let mut by_segment: Vec<((u32, u32), Counts)> = pairs.into_iter().collect();
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

    /// The item's counts within `segments`, averaged over those that have shown it: a
    /// user in several segments (a country and an age band) contributes to each, so
    /// summing would count the same impressions several times. (shown, rewarded) as real
    /// numbers; `None` when no segment has shown the item.
    pub fn in_segments(&self, item: u32, segments: &[u32]) -> Option<(f64, f64)> {
        let mut sum = Counts::default();
        let mut with_data = 0u32;
        for &segment in segments {
            if let Ok(at) = self.by_segment.binary_search_by_key(&(segment, item), |(key, _)| *key) {
                sum.add(self.by_segment[at].1);
                with_data += 1;
            }
        }
        let n = f64::from(with_data);
        (with_data > 0).then(|| (sum.shown as f64 / n, sum.rewarded as f64 / n))
    }

    /// The reward rate of all impressions, with one reward in two impressions as a prior
    /// (so an empty log gives 0.5).
    pub fn base_rate(&self) -> f64 {
        (self.total.rewarded as f64 + 1.0) / (self.total.shown as f64 + 2.0)
    }

    /// The Beta posterior (α, β) of the item's reward rate: a prior of `strength`
    /// pseudo-impressions at the base rate, updated by the item's counts; then, when
    /// `segments` is not empty, that posterior's mean as the prior (again of `strength`)
    /// for the item's counts within the segments. An item × segment with little data
    /// thus falls back to the item, and an item with little data to the base rate.
    pub fn posterior(&self, item: u32, segments: &[u32], strength: f64) -> (f64, f64) {
        let update = |mean: f64, (shown, rewarded): (f64, f64)| {
            (strength * mean + rewarded, strength * (1.0 - mean) + (shown - rewarded))
        };
        let overall = self.item(item);
        let (a, b) = update(self.base_rate(), (overall.shown as f64, overall.rewarded as f64));
        match self.in_segments(item, segments) {
            Some(within) => update(a / (a + b), within),
            None => (a, b),
        }
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

    /// Feedback of `gathered` up to `as_of`, clicks as rewards within a day.
    fn counts(gathered: &crate::train::Gathered, segments: &Segments, as_of: Timestamp) -> Feedback {
        Feedback::build(&bandit_events(gathered, EventKind::Click, 86_400, as_of), gathered.items.len(), segments)
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
        assert_eq!(feedback.in_segments(0, &a), Some((200.0, 100.0)));
        assert_eq!(feedback.in_segments(0, &b), Some((200.0, 0.0)));
        // Averaged over the segments named, not summed.
        let both: Vec<u32> = a.iter().chain(&b).copied().collect();
        assert_eq!(feedback.in_segments(0, &both), Some((200.0, 50.0)));
        assert_eq!(feedback.in_segments(3, &both), None, "never shown");
        let mean = |(a, b): (f64, f64)| a / (a + b);
        // Overall i0 and i1 are alike; within a segment the liked one is far ahead.
        assert!((mean(feedback.posterior(0, &[], 10.0)) - mean(feedback.posterior(1, &[], 10.0))).abs() < 1e-9);
        assert!(mean(feedback.posterior(0, &a, 10.0)) > 0.45);
        assert!(mean(feedback.posterior(1, &a, 10.0)) < 0.05);
        // The never-shown item keeps the prior: the base rate.
        assert!((mean(feedback.posterior(3, &[], 10.0)) - feedback.base_rate()).abs() < 1e-9);
        // A later cut sees fewer events.
        let early = counts(&log(), &snapshot.segments, 4);
        assert_eq!(early.item(0), Counts { shown: 200, rewarded: 60 });
    }

    #[test]
    fn a_reward_counts_only_against_an_earlier_unclaimed_impression() {
        let mut gathered = crate::train::Gathered::default();
        gathered.record(Record::Item(Item::bare("i0")));
        for record in [
            event("u", "i0", EventKind::Click, 1),      // before any impression: ignored
            event("u", "i0", EventKind::Impression, 2), // claimed by the click at 3
            event("u", "i0", EventKind::Click, 3),
            event("u", "i0", EventKind::Click, 4), // a second click on one impression: ignored
            event("v", "i0", EventKind::Click, 5), // another user's impression is not v's
            event("u", "i0", EventKind::Impression, 6),
        ] {
            gathered.record(record);
        }
        let feedback = counts(&gathered, &Segments::default(), 10);
        assert_eq!(feedback.item(0), Counts { shown: 2, rewarded: 1 });
        let early = counts(&gathered, &Segments::default(), 2);
        assert_eq!(early.item(0), Counts { shown: 1, rewarded: 0 }, "the click at 3 is after the cut");
        // Outside the attribution window a click claims nothing.
        let narrow = bandit_events(&gathered, EventKind::Click, 0, 10);
        assert!(narrow.iter().all(|e| !e.reward), "{narrow:?}");
        // Two clicks on day 5: only the impression of day 5 is in the window, not day 0's.
        let mut stale = crate::train::Gathered::default();
        stale.record(Record::Item(Item::bare("i0")));
        for (kind, t) in [(EventKind::Impression, 0), (EventKind::Impression, 5 * 86_400)] {
            stale.record(event("u", "i0", kind, t));
        }
        for t in [5 * 86_400 + 1, 5 * 86_400 + 2] {
            stale.record(event("u", "i0", EventKind::Click, t));
        }
        assert_eq!(counts(&stale, &Segments::default(), i64::MAX).item(0), Counts { shown: 2, rewarded: 1 });
        // A click logged before its impression in the same second still matches it.
        let mut same_second = crate::train::Gathered::default();
        same_second.record(Record::Item(Item::bare("i0")));
        same_second.record(event("u", "i0", EventKind::Click, 5));
        same_second.record(event("u", "i0", EventKind::Impression, 5));
        assert_eq!(counts(&same_second, &Segments::default(), 10).item(0), Counts { shown: 1, rewarded: 1 });
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
