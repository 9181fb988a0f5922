use funnel_core::{Event, EventContext, EventKind, Item, Record};

use super::*;

const USERS: u32 = 40;
const ITEMS: u32 = 60;
const CUT: Timestamp = 700;
const AS_OF: Timestamp = 1000;

fn event(user: u32, item: u32, kind: EventKind, value: Option<f64>, timestamp: Timestamp) -> Record {
    Record::Event(Event {
        user: format!("u{user}"),
        item: format!("i{item}"),
        kind,
        value,
        timestamp,
        context: EventContext::default(),
    })
}

/// Items in three categories; each user clicks mostly items of "their" category, spread
/// over time 0–999, the low-numbered items more often.
fn base_log() -> Vec<Record> {
    let mut records: Vec<Record> = (0..ITEMS)
        .map(|i| {
            let mut item = Item::bare(format!("i{i}"));
            item.categories = vec![format!("c{}", i % 3)];
            Record::Item(item)
        })
        .collect();
    let mut state = 12345u64;
    let mut next = move |n: u64| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) % n
    };
    for user in 0..USERS {
        for t in 0..25 {
            let favourite = next(4) != 0;
            let rank = next(20).min(next(20)) as u32;
            let item = if favourite { (user % 3) + 3 * rank } else { next(u64::from(ITEMS)) as u32 };
            records.push(event(user, item, EventKind::Click, None, (t * 40 + i64::from(user)) % AS_OF));
        }
    }
    records
}

fn gathered(records: Vec<Record>) -> Gathered {
    let mut gathered = Gathered::default();
    records.into_iter().for_each(|r| gathered.record(r));
    gathered
}

/// The home surface's training requests for every user, features as of `CUT`.
fn requests(records: Vec<Record>, cf_model: &str) -> Vec<Group> {
    let mut config = EngineConfig::default();
    config.train.cf_model = cf_model.into();
    let mut gathered = gathered(records);
    let mut split = split_at(&gathered, &config.train, CUT, AS_OF);
    let engine = past_engine(&mut gathered, &config, &mut split, None).unwrap();
    let users: Vec<u32> = (0..USERS).collect();
    groups(&engine, &gathered, "home", &split, &users).unwrap()
}

#[test]
fn no_feature_sees_an_event_after_the_cut() {
    // EASE (closed form) and ALS (random starting factors for every user and item).
    for cf_model in ["ease", "als"] {
        no_feature_sees_an_event_after_the_cut_with(cf_model);
    }
}

fn no_feature_sees_an_event_after_the_cut_with(cf_model: &str) {
    let base = requests(base_log(), cf_model);
    assert!(base.iter().all(|g| g.rows.len() == g.items.len() * 19), "4 sources × 2 + 11 features per row");
    assert!(base.iter().any(|g| g.labels.iter().any(|&l| l > 0.0)), "some users have later clicks");

    // Later events of every kind, by the same users on the same items: at the cut, inside
    // the label window and after the snapshot's time.
    let mut later = base_log();
    for user in 0..USERS {
        for (n, timestamp) in [CUT, CUT + 1, 850, AS_OF, AS_OF + 500].into_iter().enumerate() {
            let item = (user * 7 + n as u32 * 11) % ITEMS;
            later.push(event(user, item, EventKind::Purchase, Some(30.0), timestamp));
            later.push(event(user, (item + 1) % ITEMS, EventKind::Rating, Some(5.0), timestamp));
            later.push(event(user, (item + 2) % ITEMS, EventKind::Impression, None, timestamp));
        }
    }
    // A user first active after the cut, and an item first seen then.
    for timestamp in [CUT, 900] {
        later.push(event(USERS + 1, 0, EventKind::Click, None, timestamp));
        later.push(event(3, ITEMS + 1, EventKind::Click, None, timestamp));
    }
    let with_later = requests(later, cf_model);
    let mut labels_changed = 0;
    for (a, b) in base.iter().zip(&with_later) {
        assert_eq!((a.user, &a.items), (b.user, &b.items), "user {}: the candidates changed", a.user);
        assert!(a.rows == b.rows, "user {}: a feature saw an event at or after the cut", a.user);
        labels_changed += usize::from(a.labels != b.labels);
    }
    assert!(labels_changed > USERS as usize / 2, "the later events are labels: {labels_changed} users changed");

    // The control: one more event before the cut does change features, so the comparison
    // above can fail.
    let mut earlier = base_log();
    earlier.push(event(0, 59, EventKind::Purchase, None, CUT - 1));
    let with_earlier = requests(earlier, cf_model);
    assert!(base.iter().zip(&with_earlier).any(|(a, b)| a.rows != b.rows), "an earlier event must show");
}

#[test]
fn the_cut_leaves_the_newest_share_of_positive_events_as_labels() {
    let config = EngineConfig::default();
    let gathered = gathered(base_log());
    let cut = cut_time(&gathered, &config.train, AS_OF).unwrap();
    let after = gathered.interactions.iter().filter(|e| e.timestamp >= cut).count() as f64;
    let share = after / gathered.interactions.len() as f64;
    assert!((0.18..=0.24).contains(&share), "{share} of the clicks are labels");
    let split = split_at(&gathered, &config.train, cut, AS_OF);
    assert!(split.past.iter().all(|e| e.timestamp < cut));
    assert_eq!(split.features_as_of, cut - 1);
}

#[test]
fn holdout_labels_are_left_out_of_the_features() {
    let mut config = EngineConfig::default();
    config.train.ranker.split = "holdout".into();
    let gathered = gathered(base_log());
    let split = split_holdout(&gathered, &config.train, AS_OF, 0);
    let past: FxHashSet<(u32, u32)> = split.past.iter().map(|e| (e.user, e.item)).collect();
    let mut held = 0;
    for (user, items) in &split.labels {
        assert!(past.iter().any(|&(u, _)| u == *user), "user {user} keeps some history");
        for (item, label) in items {
            assert!(!past.contains(&(*user, *item)), "user {user} item {item} is both feature and label");
            assert!(*label >= 1.0);
            held += 1;
        }
    }
    let pairs: FxHashSet<(u32, u32)> = gathered.interactions.iter().map(|e| (e.user, e.item)).collect();
    let share = held as f64 / pairs.len() as f64;
    assert!((0.15..=0.25).contains(&share), "{share} of the user-item pairs held out");
}

#[test]
fn holdout_folds_hold_out_disjoint_shares_that_cover_each_users_items() {
    let mut config = EngineConfig::default();
    config.train.ranker.split = "holdout".into();
    config.train.ranker.holdout_folds = 5;
    // Users with 2 and 3 items too: a fold whose share rounds to none holds none out.
    let mut log = base_log();
    log.extend((0..2).map(|i| event(USERS, i, EventKind::Click, None, 10)));
    log.extend((0..3).map(|i| event(USERS + 1, i, EventKind::Click, None, 10)));
    let gathered = gathered(log);
    let mut seen_in: FxHashMap<(u32, u32), usize> = FxHashMap::default();
    for fold in 0..5 {
        let split = split_holdout(&gathered, &config.train, AS_OF, fold);
        let past: FxHashSet<(u32, u32)> = split.past.iter().map(|e| (e.user, e.item)).collect();
        for (&user, items) in &split.labels {
            for &(item, _) in items {
                assert!(!past.contains(&(user, item)), "fold {fold}: user {user} item {item} is feature and label");
                *seen_in.entry((user, item)).or_default() += 1;
            }
        }
    }
    assert!(seen_in.values().all(|&n| n == 1), "each held-out pair in one fold only");
    let pairs: FxHashSet<(u32, u32)> = gathered.interactions.iter().map(|e| (e.user, e.item)).collect();
    let share = seen_in.len() as f64 / pairs.len() as f64;
    assert!(share > 0.9, "five folds of 20% hold out about every pair once ({share})");
}

#[test]
fn more_holdout_folds_give_more_training_requests() {
    let mut config = EngineConfig::default();
    config.train.ranker.split = "holdout".into();
    config.train.ranker.label = "binary".into();
    config.train.ranker.trees = 5;
    config.train.ranker.min_data_in_leaf = 5;
    config.surfaces.get_mut("home").unwrap().ranker = "gbdt".into();
    let trained = |folds: usize| {
        let mut config = config.clone();
        config.train.ranker.holdout_folds = folds;
        let mut gathered = gathered(base_log());
        let mut quiet = |_: &str| {};
        let mut phases = Phases { progress: &mut quiet, done: Vec::new(), current: None };
        let models = train_rankers(&mut gathered, &config, AS_OF, &mut None, &mut phases).unwrap();
        models["home"].report.clone()
    };
    let (one, three) = (trained(1), trained(3));
    let requests = |r: &RankerReport| r.train_groups + r.valid_groups;
    assert!(requests(&three) > 2 * requests(&one), "{} vs {}", requests(&three), requests(&one));
    assert!(three.train_rows > 2 * one.train_rows);
}

#[test]
fn labels_follow_the_configured_objective() {
    let records = vec![
        event(0, 1, EventKind::Click, None, 5),
        event(0, 1, EventKind::Purchase, Some(25.0), 6),
        event(0, 2, EventKind::Watch, Some(300.0), 7),
        event(0, 3, EventKind::Impression, None, 8),
    ];
    let gathered = gathered(records);
    let mut config = TrainConfig::default();
    let label_of = |config: &TrainConfig| -> Vec<(u32, f64)> {
        split_at(&gathered, config, 0, 10).labels.get(&0).cloned().unwrap_or_default()
    };
    let (i1, i2) = (gathered.item_index("i1"), gathered.item_index("i2"));
    assert_eq!(label_of(&config), [(i1, 5.0), (i2, 2.0)], "weights: click 1 + purchase 4; watch 2");
    config.ranker.label = "value".into();
    assert_eq!(label_of(&config), [(i1, 25.0), (i2, 300.0)], "revenue and watch seconds");
    config.ranker.label = "binary".into();
    assert_eq!(label_of(&config), [(i1, 1.0), (i2, 1.0)]);
}
