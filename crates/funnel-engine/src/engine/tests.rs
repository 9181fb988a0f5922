use funnel_core::{Event, EventContext, EventKind, Item, Record};
use funnel_store::{FileLog, RecordLog, SnapshotDir};

use super::*;
use crate::train;

fn item(id: &str, title: &str, available: bool, safe: bool) -> Record {
    let mut item = Item::bare(id);
    item.title = title.into();
    item.available = available;
    item.safe = safe;
    Record::Item(item)
}

fn click(user: &str, item: &str, timestamp: i64) -> Record {
    Record::Event(Event {
        user: user.into(),
        item: item.into(),
        kind: EventKind::Click,
        value: None,
        timestamp,
        context: EventContext::default(),
    })
}

/// A small store: five items, popularity a > b > c > d; `d` unavailable, `e` unsafe.
fn fixture() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(dir.path().join("log")).unwrap();
    log.append(&[
        item("a", "Rust web framework", true, true),
        item("b", "Python web framework", true, true),
        item("c", "Rust compiler", true, true),
        item("d", "Rust async runtime", false, true),
        item("e", "Rust web scraper", true, false),
        item("f", "Python web framework", true, true),
    ])
    .unwrap();
    let mut events = Vec::new();
    for (item, count) in [("a", 5), ("b", 4), ("c", 3), ("d", 6), ("e", 7), ("f", 1)] {
        for n in 0..count {
            events.push(click(&format!("u{n}"), item, 1000 + n));
        }
    }
    events.push(click("alice", "a", 1000));
    log.append(&events).unwrap();
    let snapshots = SnapshotDir::new(dir.path().join("snapshots"));
    let config = EngineConfig::default();
    train(&log.reader(), &snapshots, &config, None, &mut |_| {}).unwrap();
    let engine = Engine::open_latest(&snapshots, &config).unwrap();
    (dir, engine)
}

fn ids(response: &Response) -> Vec<&str> {
    response.items.iter().map(|i| i.id.as_str()).collect()
}

fn request(surface: &str) -> Request {
    Request { surface: surface.into(), k: 10, ..Request::default() }
}

#[test]
fn recommend_serves_popular_unseen_servable_items() {
    let (_dir, engine) = fixture();
    let response = engine.run(&Request { user: Some("alice".into()), ..request("home") }).unwrap();
    // a is seen by alice; d is unavailable, e unsafe; f duplicates b's title.
    assert_eq!(ids(&response), ["b", "c"]);
    let anonymous = engine.run(&request("home")).unwrap();
    assert_eq!(ids(&anonymous), ["a", "b", "c"]);
}

#[test]
fn recently_seen_items_are_dropped_too() {
    let (_dir, engine) = fixture();
    let response = engine
        .run(&Request { user: Some("alice".into()), recently_seen: vec!["b".into()], ..request("home") })
        .unwrap();
    assert_eq!(ids(&response), ["c", "f"]);
}

#[test]
fn search_ranks_by_bm25_and_respects_rules() {
    let (_dir, engine) = fixture();
    let response = engine.run(&Request { query: Some("rust".into()), ..request("search") }).unwrap();
    // The shorter title wins at equal term frequency (BM25 length normalisation).
    assert_eq!(ids(&response), ["c", "a"]);
    let err = engine.run(&request("search")).unwrap_err();
    assert!(matches!(err, EngineError::BadRequest { field: "query", .. }), "{err}");
}

#[test]
fn misspelt_queries_are_corrected_from_the_catalog_unless_exact() {
    let (_dir, engine) = fixture();
    let typed = Request { query: Some("Rust framwork".into()), explain: true, ..request("search") };
    let response = engine.run(&typed).unwrap();
    assert_eq!(response.did_you_mean.as_deref(), Some("Rust framework"));
    assert_eq!(ids(&response)[0], "a", "both words now match the Rust web framework");
    let trace = response.trace.unwrap();
    let understand = trace.stages.iter().find(|s| s.stage == "understand").expect("an understand stage");
    assert_eq!(understand.details["corrections"][0]["from"], "framwork");
    assert_eq!(understand.details["corrections"][0]["to"], "framework");

    let exact = engine.run(&Request { exact_query: true, ..typed }).unwrap();
    assert_eq!(exact.did_you_mean, None);
    assert_eq!(ids(&exact), ["c", "a"], "as typed, only `rust` matches");
    let clean = engine.run(&Request { query: Some("rust framework".into()), ..request("search") }).unwrap();
    assert_eq!(clean.did_you_mean, None, "nothing to correct");
}

/// An engine over `items` alone (no events), with `config`.
pub(super) fn engine_over(items: Vec<Item>, config: &EngineConfig) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(dir.path().join("log")).unwrap();
    log.append(&items.into_iter().map(Record::Item).collect::<Vec<_>>()).unwrap();
    let snapshots = SnapshotDir::new(dir.path().join("snapshots"));
    train(&log.reader(), &snapshots, config, None, &mut |_| {}).unwrap();
    let engine = Engine::open_latest(&snapshots, config).unwrap();
    (dir, engine)
}

fn titled(id: &str, title: &str, categories: &[&str]) -> Item {
    let mut item = Item::bare(id);
    item.title = title.into();
    item.categories = categories.iter().map(|c| (*c).to_owned()).collect();
    item
}

#[test]
fn a_title_query_puts_its_item_first_and_named_categories_boost_or_filter() {
    let items = || {
        vec![
            titled("crab", "Rust crab", &["Animal"]),
            titled("game", "Rust: survive the island", &["Game"]),
            titled("oxide", "Rust oxide on rusty rust", &["Chemistry"]),
            titled("guide", "Rust game guide", &["Book"]),
        ]
    };
    let mut config = EngineConfig::default();
    let (_dir, engine) = engine_over(items(), &config);
    let search = |engine: &Engine, q: &str| {
        engine.run(&Request { query: Some(q.into()), explain: true, ..request("search") }).unwrap()
    };
    let plain = search(&engine, "rust");
    assert_ne!(ids(&plain)[0], "game", "by text alone the game is not first: {:?}", ids(&plain));
    let navigational = search(&engine, "rust survive the island");
    assert_eq!(ids(&navigational)[0], "game");
    let trace = navigational.trace.unwrap();
    let stage = trace.stages.iter().find(|s| s.component == "entities").unwrap();
    assert_eq!(stage.details["intent"]["navigational"], "game");

    // "game" names the Game category: its item is boosted over the guide with "game" in its title.
    let boosted = search(&engine, "rust game");
    assert_eq!(ids(&boosted)[0], "game", "{:?}", ids(&boosted));
    assert_eq!(ids(&boosted).len(), 4);
    config.search.entities.mode = crate::EntityMode::Off;
    let (_dir2, text_only) = engine_over(items(), &config);
    assert_eq!(ids(&search(&text_only, "rust game"))[0], "guide", "without the boost text decides");
    config.search.entities.mode = crate::EntityMode::Filter;
    let (_dir3, filtering) = engine_over(items(), &config);
    assert_eq!(ids(&search(&filtering, "rust game")), ["game"]);
}

#[test]
fn similar_items_share_text_and_unknown_items_are_errors() {
    let (_dir, engine) = fixture();
    let response = engine.run(&Request { item: Some("b".into()), ..request("similar") }).unwrap();
    assert_eq!(ids(&response)[..2], ["f", "a"], "{response:?}");
    assert!(!ids(&response).contains(&"b"));
    let err = engine.run(&Request { item: Some("zzz".into()), ..request("similar") }).unwrap_err();
    assert!(matches!(err, EngineError::UnknownItem(ref id) if id == "zzz"));
}

#[test]
fn explain_traces_every_stage() {
    let (_dir, engine) = fixture();
    let response = engine.run(&Request { user: Some("alice".into()), explain: true, ..request("home") }).unwrap();
    let trace = response.trace.unwrap();
    let stages: Vec<(&str, &str)> = trace.stages.iter().map(|s| (s.stage, s.component.as_str())).collect();
    assert_eq!(
        stages,
        [
            ("candidates", "cf"),
            ("candidates", "content"),
            ("candidates", "segment"),
            ("candidates", "popular"),
            ("rank", "score"),
            ("rules", "seen"),
            ("rules", "available"),
            ("rules", "safe"),
            ("rules", "dedupe"),
            ("explore", "none")
        ]
    );
    let dedupe = trace.stages.iter().find(|s| s.component == "dedupe").unwrap();
    assert_eq!(dedupe.details["ids"][0], "f");
    assert!(engine.run(&request("home")).unwrap().trace.is_none());
}

#[test]
fn bad_requests_name_the_field() {
    let (_dir, engine) = fixture();
    let err = engine.run(&Request { k: 0, ..request("home") }).unwrap_err();
    assert!(matches!(err, EngineError::BadRequest { field: "k", .. }));
    let err = engine.run(&request("nowhere")).unwrap_err();
    assert!(matches!(err, EngineError::UnknownSurface(..)));
    assert!(err.is_user_error());
}

#[test]
fn the_same_request_gives_the_same_slate() {
    let (_dir, engine) = fixture();
    let req = Request { query: Some("web framework".into()), ..request("search") };
    assert_eq!(engine.run(&req).unwrap().items, engine.run(&req).unwrap().items);
}

#[test]
fn a_snapshot_round_trips_and_corruption_is_detected() {
    let (dir, engine) = fixture();
    let snapshots = SnapshotDir::new(dir.path().join("snapshots"));
    let path = snapshots.path_of(snapshots.latest().unwrap().unwrap());
    let loaded = Snapshot::load(&path).unwrap();
    assert_eq!(loaded.manifest, engine.snapshot().manifest);
    assert_eq!(loaded.catalog.index_of("c"), Some(2));
    let text = path.join("text.bin");
    let mut bytes = std::fs::read(&text).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&text, bytes).unwrap();
    let err = Snapshot::load(&path).unwrap_err().to_string();
    assert!(err.contains("checksum"), "{err}");
}

#[test]
fn training_as_of_a_past_time_ignores_later_events() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(dir.path().join("log")).unwrap();
    log.append(&[click("u", "old", 100), click("u", "new", 200), click("v", "new", 200)]).unwrap();
    let snapshots = SnapshotDir::new(dir.path().join("snapshots"));
    let report = train(&log.reader(), &snapshots, &EngineConfig::default(), Some(150), &mut |_| {}).unwrap();
    assert_eq!(report.events, 1);
    let engine = Engine::open_latest(&snapshots, &EngineConfig::default()).unwrap();
    let response = engine.run(&request("home")).unwrap();
    assert_eq!(ids(&response), ["old"], "an item only clicked after as_of has no popularity yet");
}

/// A log with two taste groups: `x_fans` users who each click x1, x2, x3 and `y_fans`
/// on y1, y2, y3; plus "newcomer", who clicked x1 only.
fn taste_groups(x_fans: usize, y_fans: usize) -> (tempfile::TempDir, FileLog, SnapshotDir) {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(dir.path().join("log")).unwrap();
    let mut events = Vec::new();
    for (group, users) in [("x", x_fans), ("y", y_fans)] {
        for u in 0..users {
            for i in 1..=3 {
                events.push(click(&format!("{group}-fan{u}"), &format!("{group}{i}"), 100));
            }
        }
    }
    events.push(click("newcomer", "x1", 100));
    log.append(&events).unwrap();
    let snapshots = SnapshotDir::new(dir.path().join("snapshots"));
    (dir, log, snapshots)
}

#[test]
fn collaborative_filtering_personalises_and_folds_in_fresh_history() {
    // Group x: 6 users who each click x1, x2, x3. Group y: 12 users on y1, y2, y3
    // (more popular). A fan of x1 must be offered x2 and x3 before the popular y items.
    let (_dir, log, snapshots) = taste_groups(6, 12);
    let config = EngineConfig::default();
    train(&log.reader(), &snapshots, &config, None, &mut |_| {}).unwrap();
    let engine = Engine::open_latest(&snapshots, &config).unwrap();
    assert!(engine.snapshot().manifest.cf_model.as_deref().is_some_and(|m| m.starts_with("ease")));

    let response = engine.run(&Request { user: Some("newcomer".into()), k: 2, ..request("home") }).unwrap();
    assert_eq!(ids(&response), ["x2", "x3"]);

    // A user the snapshot has never seen, with one event since training: folded in.
    let fresh = Request { user: Some("stranger".into()), recently_seen: vec!["x2".into()], k: 2, ..request("home") };
    let mut folded = ids(&engine.run(&fresh).unwrap()).into_iter().map(str::to_owned).collect::<Vec<_>>();
    folded.sort();
    assert_eq!(folded, ["x1", "x3"], "the rest of group x, whatever their order");
    // Without history: popular items only.
    let cold = engine.run(&Request { user: Some("stranger".into()), k: 2, ..request("home") }).unwrap();
    assert_eq!(ids(&cold), ["y1", "y2"]);
}

#[test]
fn the_consumed_model_learns_from_low_ratings_the_liked_one_ignores() {
    // Ten users watch a and b and rate both 2; everyone who rates high rates z. With
    // `min_rating = 4` only `cf-consumed` knows that a's watchers also watch b.
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(dir.path().join("log")).unwrap();
    let rating = |user: String, item: &str, stars: f64| {
        Record::Event(Event {
            user,
            item: item.into(),
            kind: EventKind::Rating,
            value: Some(stars),
            timestamp: 100,
            context: EventContext::default(),
        })
    };
    let mut events = Vec::new();
    for u in 0..10 {
        events.extend([rating(format!("u{u}"), "a", 2.0), rating(format!("u{u}"), "b", 2.0)]);
        events.extend([rating(format!("u{u}"), "z", 5.0), rating(format!("v{u}"), "z", 5.0)]);
        events.push(rating(format!("v{u}"), "y", 5.0));
    }
    events.push(rating("alice".into(), "a", 2.0));
    log.append(&events).unwrap();
    let snapshots = SnapshotDir::new(dir.path().join("snapshots"));
    let mut config = EngineConfig::default();
    config.train.min_rating = 4.0;
    for (name, source) in [("liked", "cf"), ("consumed", "cf-consumed")] {
        let source = crate::SourceConfig { name: source.into(), quota: 10, weight: 1.0 };
        config
            .surfaces
            .insert(name.into(), crate::SurfaceConfig { sources: vec![source], ..config.surfaces["home"].clone() });
    }
    train(&log.reader(), &snapshots, &config, None, &mut |_| {}).unwrap();
    let engine = Engine::open_latest(&snapshots, &config).unwrap();
    assert!(engine.snapshot().cf_models.contains_key("consumed"));
    let alice = |surface: &str| engine.run(&Request { user: Some("alice".into()), k: 3, ..request(surface) }).unwrap();
    assert_eq!(ids(&alice("consumed"))[0], "b", "a's watchers watch b");
    assert!(!ids(&alice("liked")).contains(&"b"), "no one liked b: {:?}", ids(&alice("liked")));
}

/// A toy embedder: words hashed into 1024 buckets (no collisions among these words).
struct BagOfWords;

impl crate::TextEmbedder for BagOfWords {
    fn name(&self) -> String {
        "bag-of-words".into()
    }

    fn embed(&self, texts: &[&str], progress: &mut dyn FnMut(usize)) -> Result<Vec<Vec<f32>>, String> {
        let vectors = texts
            .iter()
            .map(|text| {
                let mut v = vec![0f32; 1024];
                for word in text.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
                    let hash = word.bytes().fold(2166136261u32, |h, b| (h ^ u32::from(b)).wrapping_mul(16777619));
                    v[hash as usize % 1024] += 1.0;
                }
                v
            })
            .collect();
        progress(texts.len());
        Ok(vectors)
    }
}

#[test]
fn content_vectors_bring_new_items_to_users_and_similar_requests() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(dir.path().join("log")).unwrap();
    log.append(&[
        item("rw", "Rust web framework", true, true),
        item("ra", "Rust async runtime", true, true),
        item("pd", "Python data science", true, true),
        item("pm", "Python machine learning", true, true),
        item("new", "Rust web server", true, true),
    ])
    .unwrap();
    let mut events = vec![click("alice", "rw", 100)];
    for u in 0..5 {
        events.extend([click(&format!("p{u}"), "pd", 100), click(&format!("p{u}"), "pm", 100)]);
    }
    log.append(&events).unwrap();
    let snapshots = SnapshotDir::new(dir.path().join("snapshots"));
    let toml =
        "[surfaces.home]\nsources = [{ name = \"content\" }]\n[surfaces.similar]\nsources = [{ name = \"content\" }]\n";
    let config = EngineConfig::load(toml, []).unwrap();
    let mut phases = Vec::new();
    crate::train_with_embedder(&log.reader(), &snapshots, &config, None, Some(&BagOfWords), &mut |p| {
        phases.push(p.to_owned())
    })
    .unwrap();
    assert!(phases.iter().any(|p| p == "content vectors 5/5"), "{phases:?}");
    let engine = Engine::open_latest(&snapshots, &config).unwrap();
    let manifest = &engine.snapshot().manifest;
    assert_eq!(manifest.content_model.as_deref(), Some("bag-of-words (exact search over 5 items)"));

    let home = engine.run(&Request { user: Some("alice".into()), k: 1, ..request("home") }).unwrap();
    assert_eq!(ids(&home), ["new"], "the never-clicked item shares alice's item's words");
    let similar = engine.run(&Request { item: Some("rw".into()), k: 2, ..request("similar") }).unwrap();
    assert_eq!(ids(&similar)[0], "new");
    // A user without history has no profile: the content source proposes nothing.
    assert!(engine.run(&Request { user: Some("nobody".into()), ..request("home") }).unwrap().items.is_empty());

    // Training again embeds only the item whose text changed; the others keep their vectors.
    log.append(&[item("new", "Rust web server, second edition", true, true)]).unwrap();
    let again = crate::train_with_embedder(&log.reader(), &snapshots, &config, None, Some(&BagOfWords), &mut |_| {});
    assert_eq!(again.unwrap().content, crate::ContentBuild { embedded: 1, reused: 4 });
    let engine = Engine::open_latest(&snapshots, &config).unwrap();
    let content = engine.snapshot().content.as_ref().unwrap();
    let fresh =
        crate::TextEmbedder::embed(&BagOfWords, &["Rust web server, second edition"], &mut |_| {}).unwrap().remove(0);
    let new = engine.snapshot().catalog.index_of("new").unwrap();
    assert_eq!(content.vector(new).unwrap(), &normalised(fresh)[..], "the changed item was embedded anew");
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

#[test]
fn als_candidates_come_from_the_factor_index() {
    // Two taste groups as above; ALS with its item factors in an HNSW graph (forced by
    // cf_exact_below = 0). A fan of x1 gets the rest of group x.
    let (_dir, log, snapshots) = taste_groups(8, 12);
    let toml = "[train]\ncf_model = \"als\"\ncf_exact_below = 0\n[surfaces.home]\nsources = [{ name = \"cf\" }]\n";
    let config = EngineConfig::load(toml, []).unwrap();
    train(&log.reader(), &snapshots, &config, None, &mut |_| {}).unwrap();
    let engine = Engine::open_latest(&snapshots, &config).unwrap();
    let response = engine.run(&Request { user: Some("newcomer".into()), k: 2, ..request("home") }).unwrap();
    let mut got = ids(&response);
    got.sort();
    assert_eq!(got, ["x2", "x3"]);

    // The two-tower model serves through the same path.
    let toml = toml.replace("\"als\"", "\"two-tower\"");
    let config = EngineConfig::load(&toml, []).unwrap();
    train(&log.reader(), &snapshots, &config, None, &mut |_| {}).unwrap();
    let engine = Engine::open_latest(&snapshots, &config).unwrap();
    assert!(engine.snapshot().manifest.cf_model.as_deref().is_some_and(|m| m.starts_with("two-tower")));
    let response = engine.run(&Request { user: Some("newcomer".into()), k: 2, ..request("home") }).unwrap();
    assert_eq!(response.items.len(), 2, "{response:?}");
}

#[test]
fn cold_start_users_get_what_their_segment_likes() {
    // The x fans live in DE, the (more numerous) y fans in FR; "de-newbie" signed up in
    // DE and has no events yet.
    let (_dir, log, snapshots) = taste_groups(6, 12);
    let user = |id: String, country: &str| {
        let attributes = [("country".to_owned(), serde_json::json!(country))].into();
        Record::User(funnel_core::User { id, attributes })
    };
    let mut users: Vec<Record> = (0..6).map(|u| user(format!("x-fan{u}"), "DE")).collect();
    users.extend((0..12).map(|u| user(format!("y-fan{u}"), "FR")));
    users.push(user("de-newbie".into(), "DE"));
    log.append(&users).unwrap();
    let config = EngineConfig::load("[segments]\nmin_users = 3\n", []).unwrap();
    train(&log.reader(), &snapshots, &config, None, &mut |_| {}).unwrap();
    let engine = Engine::open_latest(&snapshots, &config).unwrap();
    assert_eq!(engine.snapshot().manifest.segments, 2);

    let sorted = |response: &Response| {
        let mut got: Vec<String> = ids(response).into_iter().map(str::to_owned).collect();
        got.sort();
        got
    };
    let anonymous = engine.run(&Request { k: 3, ..request("home") }).unwrap();
    assert_eq!(sorted(&anonymous), ["y1", "y2", "y3"], "no context: what is popular overall");
    let de: std::collections::BTreeMap<String, String> = [("country".to_owned(), "DE".to_owned())].into();
    let visitor = engine.run(&Request { k: 3, context: de.clone(), explain: true, ..request("home") }).unwrap();
    assert_eq!(sorted(&visitor), ["x1", "x2", "x3"], "a visitor from DE");
    let trace = serde_json::to_string(&visitor.trace).unwrap();
    assert!(trace.contains(r#""segments":["country=de"]"#), "{trace}");
    let newbie = engine.run(&Request { user: Some("de-newbie".into()), k: 3, ..request("home") }).unwrap();
    assert_eq!(sorted(&newbie), ["x1", "x2", "x3"], "a stored user's own attributes");
    let fr: std::collections::BTreeMap<String, String> = [("country".to_owned(), "FR".to_owned())].into();
    let moved = engine.run(&Request { user: Some("de-newbie".into()), k: 3, context: fr, ..request("home") }).unwrap();
    assert_eq!(sorted(&moved), ["y1", "y2", "y3"], "the request's context wins over the stored attribute");
}

/// A toy embedder in which "car" and "automobile" mean the same (what BM25 cannot see).
struct Synonyms(&'static str);

impl crate::TextEmbedder for Synonyms {
    fn name(&self) -> String {
        self.0.into()
    }

    fn embed(&self, texts: &[&str], _: &mut dyn FnMut(usize)) -> Result<Vec<Vec<f32>>, String> {
        let groups: [&[&str]; 4] = [&["car", "automobile"], &["bike", "bicycle"], &["red"], &["manual", "repair"]];
        Ok(texts
            .iter()
            .map(|text| {
                let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
                groups.iter().map(|g| words.iter().filter(|w| g.contains(&w.as_str())).count() as f32 + 0.01).collect()
            })
            .collect())
    }
}

#[test]
fn hybrid_search_fuses_bm25_with_the_query_embedding() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(dir.path().join("log")).unwrap();
    let items = [("car", "Red car"), ("bike", "Red bike"), ("auto", "Automobile repair manual"), ("tire", "Bicycle")];
    log.append(&items.map(|(id, title)| item(id, title, true, true))).unwrap();
    let snapshots = SnapshotDir::new(dir.path().join("snapshots"));
    let config = EngineConfig::default();
    crate::train_with_embedder(&log.reader(), &snapshots, &config, None, Some(&Synonyms("syn")), &mut |_| {}).unwrap();
    let query = Request { query: Some("automobile".into()), explain: true, ..request("search") };

    let text_only = Engine::open_latest(&snapshots, &config).unwrap();
    assert!(!text_only.embeds_queries());
    assert_eq!(ids(&text_only.run(&query).unwrap()), ["auto"], "BM25 alone knows only the word");

    let hybrid = Engine::open_latest(&snapshots, &config).unwrap().with_query_embedder(Some(Arc::new(Synonyms("syn"))));
    assert!(hybrid.embeds_queries());
    let response = hybrid.run(&query).unwrap();
    assert_eq!(ids(&response)[..2], ["auto", "car"], "found by both, then by meaning: {:?}", ids(&response));
    let trace = response.trace.unwrap();
    assert!(trace.stages.iter().any(|s| s.stage == "understand" && s.component == "embed"));
    assert!(trace.stages.iter().any(|s| s.stage == "candidates" && s.component == "dense" && s.output > 0));

    // Another model's query vectors would not live in the snapshot's space: not used.
    let other =
        Engine::open_latest(&snapshots, &config).unwrap().with_query_embedder(Some(Arc::new(Synonyms("other"))));
    assert!(!other.embeds_queries());
    assert_eq!(ids(&other.run(&query).unwrap()), ["auto"]);
}

/// Users who click items of "their" category (one of three) over time 0–999.
fn category_clicks(log: &FileLog) {
    let items: Vec<Record> = (0..60)
        .map(|i| Record::Item(Item { categories: vec![format!("c{}", i % 3)], ..Item::bare(format!("i{i}")) }))
        .collect();
    log.append(&items).unwrap();
    let mut events = Vec::new();
    for user in 0..60u32 {
        for t in 0..20u32 {
            let item = match (user * 31 + t * 17) % 5 {
                0 => (user * 7 + t * 13) % 60,
                _ => (user % 3) + 3 * ((user + t * t) % 20),
            };
            events.push(click(&format!("u{user}"), &format!("i{item}"), i64::from(t * 50 + user)));
        }
    }
    log.append(&events).unwrap();
}

#[test]
fn a_learned_ranker_is_trained_into_the_snapshot_and_served() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(dir.path().join("log")).unwrap();
    category_clicks(&log);
    let snapshots = SnapshotDir::new(dir.path().join("snapshots"));
    let mut config = EngineConfig::default();
    config.surfaces.get_mut("home").unwrap().ranker = "gbdt".into();
    config.train.ranker.min_data_in_leaf = 5;
    config.train.ranker.trees = 30;
    let mut phases = Vec::new();
    train(&log.reader(), &snapshots, &config, None, &mut |p| phases.push(p.to_owned())).unwrap();
    assert!(phases.iter().any(|p| p == "learned rankers: boosting"), "{phases:?}");

    let engine = Engine::open_latest(&snapshots, &config).unwrap();
    let report = &engine.snapshot().manifest.rankers["home"];
    assert!(report.train_groups > 10 && report.valid_groups > 0 && (1..=30).contains(&report.trees), "{report:?}");
    assert!(report.features_as_of < engine.snapshot().manifest.as_of, "features from before the labels");
    assert!(!report.importance.is_empty());
    let response = engine.run(&Request { user: Some("u1".into()), explain: true, ..request("home") }).unwrap();
    assert_eq!(response.items.len(), 10);
    let rank = response.trace.unwrap().stages.into_iter().find(|s| s.stage == "rank").unwrap();
    assert_eq!(rank.component, "gbdt");
    assert_eq!(rank.details["ranker"]["feature_version"], crate::FEATURE_VERSION);

    // A model trained on other sources cannot score this surface's rows, and a surface
    // without a model cannot rank with one: both refused when the engine is built.
    let mut changed = config.clone();
    changed.surfaces.get_mut("home").unwrap().sources.pop();
    let error = Engine::open_latest(&snapshots, &changed).unwrap_err().to_string();
    assert!(error.contains("other features") && error.contains("funnel train"), "{error}");
    let mut requoted = config.clone();
    requoted.surfaces.get_mut("home").unwrap().sources[0].quota = 7;
    let error = Engine::open_latest(&snapshots, &requoted).unwrap_err().to_string();
    assert!(error.contains("other candidates") && error.contains("\"quota\":7"), "{error}");
    let mut untrained = config.clone();
    untrained
        .surfaces
        .insert("fresh".into(), crate::SurfaceConfig { ranker: "gbdt".into(), ..config.surfaces["home"].clone() });
    let error = Engine::open_latest(&snapshots, &untrained).unwrap_err().to_string();
    assert!(error.contains("`fresh`") && error.contains("no model"), "{error}");
}

#[test]
fn learned_rankers_need_users_with_later_events() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(dir.path().join("log")).unwrap();
    log.append(&[click("u1", "a", 10)]).unwrap();
    let mut config = EngineConfig::default();
    config.surfaces.get_mut("home").unwrap().ranker = "gbdt".into();
    let snapshots = SnapshotDir::new(dir.path().join("snapshots"));
    let error = train(&log.reader(), &snapshots, &config, None, &mut |_| {}).unwrap_err().to_string();
    assert!(error.contains("train.ranker") && error.contains("score"), "{error}");
}

#[test]
fn boosts_lift_named_categories_and_pins_hold_their_position_through_exploration() {
    let mut records: Vec<Record> = Vec::new();
    // g has c's title: `dedupe` keeps it over c, but the pin on c must then drop it.
    let items =
        [("a", "x", true), ("b", "y", true), ("c", "x", true), ("d", "y", false), ("f", "y", true), ("g", "x", true)];
    for (id, category, available) in items {
        let title = if id == "g" { "title c".to_owned() } else { format!("title {id}") };
        let mut item = titled(id, &title, &[category]);
        item.available = available;
        records.push(Record::Item(item));
    }
    for (item, count) in [("a", 5), ("b", 4), ("c", 3), ("d", 6), ("f", 2), ("g", 4)] {
        records.extend((0..count).map(|n| click(&format!("u{n}"), item, 1000 + n)));
    }
    let mut config = EngineConfig::load(
        r#"
        [surfaces.home]
        sources = [{ name = "popular" }]
        rules = ["seen", "available", "safe", "dedupe", "boost"]
        [surfaces.home.rerank]
        boosts = [{ category = "y", boost = 2.0 }, { item = "nowhere", boost = 1.0 }]
        pins = [{ item = "c", position = 1 }, { item = "d", position = 2 }, { item = "g", position = 3 }]
        "#,
        [],
    )
    .unwrap();
    let snapshot = Arc::new(crate::snapshot_in_memory(records.clone(), &config, None).unwrap());
    let engine = Engine::new(snapshot.clone(), &config).unwrap();
    let explained = engine.run(&Request { explain: true, ..request("home") }).unwrap();
    // b and f (category y) rise above a; c is pinned first; d (unavailable) and g (c's
    // title) are skipped.
    assert_eq!(ids(&explained), ["c", "b", "f", "a"]);
    let stages = &explained.trace.as_ref().unwrap().stages;
    let pin = stages.iter().find(|s| s.component == "pin").expect("a pin stage");
    assert_eq!(pin.details["skipped"], serde_json::json!(["d", "g"]), "d unavailable, g has c's title");
    // u4 clicked only a (seen): the slate keeps the pin, drops a.
    let u4 = engine.run(&Request { user: Some("u4".into()), ..request("home") }).unwrap();
    assert_eq!(ids(&u4), ["c", "b", "f"]);
    // A pin the user has seen is skipped: u0 clicked c.
    let u0 = engine.run(&Request { user: Some("u0".into()), k: 2, ..request("home") }).unwrap();
    assert!(!ids(&u0).contains(&"c"), "{:?}", ids(&u0));
    // Under uniform exploration the pin stays first with propensity 1; the rest move.
    config.surfaces.get_mut("home").unwrap().exploration = "epsilon-greedy".into();
    config.surfaces.get_mut("home").unwrap().rerank.epsilon = 1.0;
    let engine = Engine::new(snapshot, &config).unwrap();
    let mut seconds = std::collections::BTreeSet::new();
    for seed in 0..40 {
        let slate = engine.run(&Request { seed, k: 3, ..request("home") }).unwrap();
        assert_eq!((slate.items[0].id.as_str(), slate.items[0].propensity), ("c", 1.0));
        assert_eq!(slate.items.len(), 3);
        seconds.insert(slate.items[1].id.clone());
    }
    assert!(seconds.len() >= 2, "{seconds:?}");
}

#[test]
fn boost_and_pin_settings_are_checked() {
    let error = |text: &str| EngineConfig::load(text, []).unwrap_err().to_string();
    let home = "[surfaces.home]\nsources = [{ name = \"popular\" }]\n";
    assert!(
        error(&format!("{home}[surfaces.home.rerank]\nboosts = [{{ category = \"y\", boost = 1.0 }}]"))
            .contains("`boost` is not in the surface's rules")
    );
    let with_rule = format!("{home}rules = [\"boost\"]\n[surfaces.home.rerank]\n");
    assert!(error(&format!("{with_rule}boosts = [{{ boost = 1.0 }}]")).contains("boosts[0].item"));
    assert!(
        error(&format!("{with_rule}boosts = [{{ item = \"a\", category = \"y\", boost = 1.0 }}]"))
            .contains("exactly one")
    );
    assert!(error(&format!("{with_rule}pins = [{{ item = \"a\", position = 0 }}]")).contains("pins[0].position"));
    assert!(
        error(&format!("{with_rule}pins = [{{ item = \"a\", position = 1 }}, {{ item = \"b\", position = 1 }}]"))
            .contains("pins[1].position")
    );
    let sorted_after = "[surfaces.home]\nsources = [{ name = \"popular\" }]\nrules = [\"category-cap\", \"boost\"]\n";
    assert!(error(sorted_after).contains("would undo"));
}

#[test]
fn diversity_can_measure_similarity_by_content_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(dir.path().join("log")).unwrap();
    let items = [("c1", "car toy", "x"), ("c2", "automobile toy", "y"), ("b1", "bicycle toy", "z")];
    log.append(&items.map(|(id, title, category)| Record::Item(titled(id, title, &[category])))).unwrap();
    let clicks = [("c1", 5), ("c2", 4), ("b1", 3)];
    log.append(
        &clicks.iter().flat_map(|&(i, n)| (0..n).map(move |u| click(&format!("u{u}"), i, 100))).collect::<Vec<_>>(),
    )
    .unwrap();
    let snapshots = SnapshotDir::new(dir.path().join("snapshots"));
    let surface = |similarity: &str| {
        format!(
            "[surfaces.home]\nsources = [{{ name = \"popular\" }}]\nrules = [\"diversity\"]\n\
             [surfaces.home.rerank]\ndiversity_lambda = 0.5\ndiversity_similarity = \"{similarity}\"\n"
        )
    };
    let by_content = EngineConfig::load(&surface("content"), []).unwrap();
    crate::train_with_embedder(&log.reader(), &snapshots, &by_content, None, Some(&Synonyms("syn")), &mut |_| {})
        .unwrap();
    // The categories all differ, so by categories nothing moves; by content the
    // automobile is a copy of the car and falls below the bicycle.
    let engine = Engine::open_latest(&snapshots, &by_content).unwrap();
    let response = engine.run(&Request { explain: true, ..request("home") }).unwrap();
    assert_eq!(ids(&response), ["c1", "b1", "c2"], "{:#?}", response.trace);
    let stages = &response.trace.unwrap().stages;
    assert_eq!(stages.iter().find(|s| s.component == "diversity").unwrap().details["similarity"], "content");
    let by_categories = EngineConfig::load(&surface("categories"), []).unwrap();
    let engine = Engine::open_latest(&snapshots, &by_categories).unwrap();
    assert_eq!(ids(&engine.run(&request("home")).unwrap()), ["c1", "c2", "b1"]);
}
