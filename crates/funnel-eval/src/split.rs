//! Train/test splits of an event file. Every split is deterministic (seeded where it is
//! random) and keeps each event's original order within its side.

use std::collections::BTreeMap;
use std::path::Path;

use funnel_core::Event;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::EvalError;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// One global time cut: the latest `fraction` of all events is the test set.
    Temporal { fraction: f64 },
    /// Each user's latest `fraction` of events is test.
    UserTemporal { fraction: f64 },
    /// Each user's latest `n` events are test.
    LastN { n: usize },
    /// A seeded random `fraction` of each user's events is test.
    Random { fraction: f64, seed: u64 },
    /// A seeded random `fraction` of the users, with all their events, is test: users the
    /// model has never seen (cold start).
    Users { fraction: f64, seed: u64 },
}

/// Splits `events` into (train, test). Per-user methods keep at least one event of
/// every user in train; `Users` keeps none of a test user's.
pub fn split(events: &[Event], method: Method) -> Result<(Vec<Event>, Vec<Event>), EvalError> {
    if let Method::Temporal { fraction }
    | Method::UserTemporal { fraction }
    | Method::Random { fraction, .. }
    | Method::Users { fraction, .. } = method
        && !(fraction > 0.0 && fraction < 1.0)
    {
        return Err(EvalError::Input(format!("--fraction must be between 0 and 1 (exclusive), got {fraction}")));
    }
    let mut is_test = vec![false; events.len()];
    match method {
        Method::Temporal { fraction } => {
            let mut order: Vec<usize> = (0..events.len()).collect();
            order.sort_by_key(|&i| (events[i].timestamp, i));
            let cut = events.len() - (events.len() as f64 * fraction).round() as usize;
            for &i in &order[cut..] {
                is_test[i] = true;
            }
        }
        Method::Users { fraction, seed } => {
            let mut users: Vec<&str> = events.iter().map(|e| e.user.as_str()).collect();
            users.sort_unstable();
            users.dedup();
            users.shuffle(&mut StdRng::seed_from_u64(seed));
            let n_test = ((users.len() as f64 * fraction).round() as usize).clamp(1, users.len().max(2) - 1);
            let test: std::collections::HashSet<&str> = users[..n_test.min(users.len())].iter().copied().collect();
            for (i, event) in events.iter().enumerate() {
                is_test[i] = test.contains(event.user.as_str());
            }
        }
        Method::UserTemporal { .. } | Method::LastN { .. } | Method::Random { .. } => {
            let mut rng = match method {
                Method::Random { seed, .. } => Some(StdRng::seed_from_u64(seed)),
                _ => None,
            };
            let mut by_user: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
            for (i, event) in events.iter().enumerate() {
                by_user.entry(&event.user).or_default().push(i);
            }
            for rows in by_user.values_mut() {
                let n_test = match method {
                    Method::LastN { n } => n,
                    Method::UserTemporal { fraction } | Method::Random { fraction, .. } => {
                        (rows.len() as f64 * fraction).ceil() as usize
                    }
                    Method::Temporal { .. } | Method::Users { .. } => unreachable!("handled above"),
                }
                .min(rows.len() - 1);
                match rng.as_mut() {
                    Some(rng) => rows.shuffle(rng),
                    None => rows.sort_by_key(|&i| (events[i].timestamp, i)),
                }
                for &i in &rows[rows.len() - n_test..] {
                    is_test[i] = true;
                }
            }
        }
    }
    let side = |test: bool| -> Vec<Event> {
        events.iter().zip(&is_test).filter(|(_, t)| **t == test).map(|(e, _)| e.clone()).collect()
    };
    Ok((side(false), side(true)))
}

/// Writes events as CSV with the header `user,item,kind,value,timestamp`, which
/// `funnel import` and `funnel eval recs` read back.
pub fn write_csv(path: &Path, events: &[Event]) -> Result<(), EvalError> {
    let io = |e: csv::Error| EvalError::Input(format!("{}: {e}", path.display()));
    let mut out = csv::Writer::from_path(path).map_err(io)?;
    out.write_record(["user", "item", "kind", "value", "timestamp"]).map_err(io)?;
    for e in events {
        let value = e.value.map(|v| v.to_string()).unwrap_or_default();
        out.write_record([e.user.as_str(), &e.item, e.kind.as_str(), &value, &e.timestamp.to_string()]).map_err(io)?;
    }
    out.flush().map_err(|source| EvalError::Io { path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use funnel_core::{EventContext, EventKind};

    use super::*;

    fn events() -> Vec<Event> {
        let mut out = Vec::new();
        for user in ["a", "b"] {
            for t in 0..10 {
                out.push(Event {
                    user: user.into(),
                    item: format!("{user}{t}"),
                    kind: EventKind::Click,
                    value: None,
                    timestamp: if user == "a" { 100 - t } else { t },
                    context: EventContext::default(),
                });
            }
        }
        out
    }

    fn items(side: &[Event]) -> Vec<&str> {
        side.iter().map(|e| e.item.as_str()).collect()
    }

    #[test]
    fn global_temporal_cut_takes_the_latest_events() {
        let (train, test) = split(&events(), Method::Temporal { fraction: 0.25 }).unwrap();
        assert_eq!((train.len(), test.len()), (15, 5));
        assert!(test.iter().all(|e| e.user == "a"), "user a's events are the latest");
    }

    #[test]
    fn per_user_splits_take_each_users_latest_or_random_events() {
        let (_, test) = split(&events(), Method::LastN { n: 2 }).unwrap();
        assert_eq!(items(&test), ["a0", "a1", "b8", "b9"]);
        let (_, test) = split(&events(), Method::UserTemporal { fraction: 0.2 }).unwrap();
        assert_eq!(items(&test), ["a0", "a1", "b8", "b9"]);
        let (train, test) = split(&events(), Method::Random { fraction: 0.3, seed: 9 }).unwrap();
        assert_eq!((train.len(), test.len()), (14, 6));
        assert_eq!(test, split(&events(), Method::Random { fraction: 0.3, seed: 9 }).unwrap().1);
        let (train, _) = split(&events(), Method::LastN { n: 50 }).unwrap();
        assert_eq!(train.len(), 2, "one event per user stays in train");
        assert!(split(&events(), Method::Temporal { fraction: 1.5 }).is_err());
    }

    #[test]
    fn a_user_split_moves_whole_users_to_test() {
        let (train, test) = split(&events(), Method::Users { fraction: 0.5, seed: 3 }).unwrap();
        assert_eq!((train.len(), test.len()), (10, 10));
        assert!(train.iter().all(|e| e.user != test[0].user), "no test user is in train");
        assert_eq!(test, split(&events(), Method::Users { fraction: 0.5, seed: 3 }).unwrap().1);
    }

    #[test]
    fn csv_output_reads_back_through_the_importer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.csv");
        write_csv(&path, &events()).unwrap();
        let mut back = Vec::new();
        let options = funnel_store::import::ImportOptions {
            kind: funnel_store::import::Kind::Events,
            format: funnel_store::import::Format::Auto,
            skip_bad: false,
        };
        funnel_store::import::read_file(
            &path,
            &options,
            &mut |r| {
                if let funnel_core::Record::Event(e) = r {
                    back.push(e);
                }
                Ok(())
            },
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(back, events());
    }
}
