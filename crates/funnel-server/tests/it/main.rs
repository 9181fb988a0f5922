//! The API driven in process: every endpoint, and every kind of bad input.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode};
use funnel_core::Record;
use funnel_engine::{EngineConfig, SegmentConfig, train};
use funnel_server::{AppState, app};
use funnel_sim::{SimConfig, World};
use funnel_store::{DataDir, FileLog, RecordLog};
use serde_json::{Value, json};
use tower::ServiceExt;

struct Server {
    _dir: tempfile::TempDir,
    data: DataDir,
    state: Arc<AppState>,
}

/// Defaults, but segments of 3 users count (the world has 30).
fn config() -> EngineConfig {
    EngineConfig { segments: SegmentConfig { min_users: 3, ..SegmentConfig::default() }, ..EngineConfig::default() }
}

/// A data folder with a small simulated world, trained once, and a state over it.
fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path());
    let world = World::new(SimConfig { items: 60, users: 30, sessions_per_user: 5, ..SimConfig::default() });
    {
        let log = FileLog::open(data.log()).unwrap();
        let mut records: Vec<Record> = world.items.iter().map(|i| Record::Item(i.item.clone())).collect();
        records.extend(world.users.iter().map(|u| Record::User(u.user.clone())));
        records.extend(world.history().into_iter().map(Record::Event));
        log.append(&records).unwrap();
        train(&log.reader(), &data.snapshots(), &config(), None, &mut |_| {}).unwrap();
    }
    let state = Arc::new(AppState::open(&data, config(), Default::default()).unwrap());
    Server { _dir: dir, data, state }
}

impl Server {
    async fn call(&self, method: Method, uri: &str, body: Body) -> (StatusCode, Value) {
        let request =
            Request::builder().method(method).uri(uri).header("content-type", "application/json").body(body).unwrap();
        let response = app(self.state.clone(), 64 * 1024).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let value =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value)
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call(Method::GET, uri, Body::empty()).await
    }

    async fn post(&self, uri: &str, body: impl Into<Body>) -> (StatusCode, Value) {
        self.call(Method::POST, uri, body.into()).await
    }
}

fn assert_error(got: &(StatusCode, Value), status: StatusCode, field: Option<&str>) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error"]["field"].as_str(), field, "{}", got.1);
    assert!(got.1["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", got.1);
}

fn ids(body: &Value) -> Vec<String> {
    body["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn recommend_returns_k_items_and_a_trace_on_request() {
    let s = server();
    let (status, body) = s.get("/recommend?user=user-0001&k=5").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body).len(), 5);
    assert!(body.get("trace").is_none());
    let (_, explained) = s.get("/recommend?user=user-0001&k=5&explain=true").await;
    let stages = explained["trace"]["stages"].as_array().unwrap();
    assert_eq!(stages[0]["stage"], "candidates");
    assert_eq!(ids(&explained), ids(&body));
}

#[tokio::test]
async fn a_request_context_picks_the_segment() {
    let s = server();
    let (status, body) = s.get("/recommend?k=5&context.age_band=25-34&explain=true").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body).len(), 5);
    let stages = body["trace"]["stages"].as_array().unwrap();
    let segment = stages.iter().find(|s| s["component"] == "segment").expect("a segment stage");
    assert_eq!(segment["details"]["input"]["segments"], json!(["age_band=25-34"]), "{segment}");
    assert!(segment["output"].as_u64().unwrap() > 0, "{segment}");
    assert_error(&s.get("/recommend?context.=DE").await, StatusCode::BAD_REQUEST, Some("context."));
    assert_error(&s.get("/recommend?context=DE").await, StatusCode::BAD_REQUEST, Some("context"));
}

#[tokio::test]
async fn a_request_may_weight_the_surfaces_sources() {
    let s = server();
    let stage = |body: &serde_json::Value, name: &str| {
        let stages = body["trace"]["stages"].as_array().unwrap().clone();
        stages.into_iter().find(|s| s["component"] == name).unwrap_or_else(|| panic!("no {name} stage: {body}"))
    };
    let (status, body) = s.get("/recommend?k=5&explain=true&weight.popular=3.5").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(stage(&body, "popular")["details"]["weight"], json!(3.5));
    // The best popular item scores its weight (normalised to 1, times 3.5).
    assert_eq!(body["items"][0]["score"], json!(3.5), "{body}");
    // No exploration here: every item took its slot for sure, in both senses.
    assert_eq!(body["items"][0]["propensity"], json!(1.0), "{body}");
    assert_eq!(body["items"][0]["position_propensity"], json!(1.0), "{body}");
    assert_error(&s.get("/recommend?weight.nosuch=1").await, StatusCode::BAD_REQUEST, Some("weight"));
    assert_error(&s.get("/recommend?weight.popular=abc").await, StatusCode::BAD_REQUEST, Some("weight.popular"));
    assert_error(&s.get("/search?q=a&weight.bm25=-1").await, StatusCode::BAD_REQUEST, Some("weight.bm25"));
}

#[tokio::test]
async fn posted_events_are_acknowledged_and_seen_items_disappear_at_once() {
    let s = server();
    let (_, before) = s.get("/recommend?user=newcomer&k=3").await;
    let first = ids(&before)[0].clone();
    let event = json!([{"user": "newcomer", "item": first, "kind": "click", "timestamp": 1_800_000_000}]);
    let (status, body) = s.post("/events", event.to_string()).await;
    assert_eq!((status, body["accepted"].as_u64()), (StatusCode::OK, Some(1)));
    let (_, after) = s.get("/recommend?user=newcomer&k=3").await;
    assert!(!ids(&after).contains(&first));
}

#[tokio::test]
async fn search_and_similar_answer() {
    let s = server();
    let (status, body) = s.get("/search?q=galaxy%20android%20starship&k=5&explain=1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!ids(&body).is_empty());
    let anchor = ids(&body)[0].clone();
    let (status, similar) = s.get(&format!("/items/{anchor}/similar?k=3")).await;
    assert_eq!(status, StatusCode::OK, "{similar}");
    assert!(!ids(&similar).contains(&anchor));
}

#[tokio::test]
async fn misspelt_search_answers_did_you_mean_unless_exact() {
    let s = server();
    let (status, body) = s.get("/search?q=starshp%20signl&k=5").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["did_you_mean"], "starship signal", "{body}");
    assert!(!ids(&body).is_empty());
    let (status, exact) = s.get("/search?q=starshp%20signl&k=5&exact=true").await;
    assert_eq!(status, StatusCode::OK, "{exact}");
    assert!(exact.get("did_you_mean").is_none(), "{exact}");
    assert!(ids(&exact).is_empty(), "neither typed word is in the catalog: {exact}");
    let (status, bad) = s.get("/search?q=galaxy&exact=maybe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
}

#[tokio::test]
async fn malformed_json_is_400() {
    let s = server();
    assert_error(&s.post("/events", "[{\"user\": ").await, StatusCode::BAD_REQUEST, None);
    assert_error(&s.post("/events", "[] trailing").await, StatusCode::BAD_REQUEST, None);
    assert_error(&s.post("/items", vec![b'[', b'"', 0xff, 0xfe, b'"', b']']).await, StatusCode::BAD_REQUEST, None);
}

#[tokio::test]
async fn wrong_types_and_invalid_values_are_422_naming_the_field() {
    let s = server();
    let wrong_type = json!([{"user": "u", "item": "i", "kind": "click", "timestamp": 1},
                            {"user": "u", "item": "i", "kind": "click", "timestamp": "noon"}]);
    assert_error(
        &s.post("/events", wrong_type.to_string()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("[1].timestamp"),
    );
    let bad_kind = json!([{"user": "u", "item": "i", "kind": "teleport", "timestamp": 1}]);
    assert_error(&s.post("/events", bad_kind.to_string()).await, StatusCode::UNPROCESSABLE_ENTITY, Some("[0].kind"));
    let bad_value =
        json!([{"user": "u", "item": "i", "kind": "click", "timestamp": 1, "context": {"propensity": 2.0}}]);
    assert_error(
        &s.post("/events", bad_value.to_string()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("[0].context.propensity"),
    );
    let unknown_field = json!([{"id": "x", "colour": "red"}]);
    assert_error(
        &s.post("/items", unknown_field.to_string()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("[0].colour"),
    );
    let empty_id = json!([{"id": ""}]);
    assert_error(&s.post("/users", empty_id.to_string()).await, StatusCode::UNPROCESSABLE_ENTITY, Some("[0].id"));
    assert_error(&s.post("/events", "{}").await, StatusCode::UNPROCESSABLE_ENTITY, Some("(body)"));
    assert_error(&s.post("/events", "[]").await, StatusCode::UNPROCESSABLE_ENTITY, Some("(body)"));
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let s = server();
    let big = format!("[{}]", vec![r#"{"id":"x"}"#; 10_000].join(","));
    let got = s.post("/items", big).await;
    assert_error(&got, StatusCode::PAYLOAD_TOO_LARGE, None);
}

#[tokio::test]
async fn bad_parameters_and_unknown_ids_are_named() {
    let s = server();
    assert_error(&s.get("/recommend?k=ten").await, StatusCode::BAD_REQUEST, Some("k"));
    assert_error(&s.get("/recommend?k=0").await, StatusCode::BAD_REQUEST, Some("k"));
    assert_error(&s.get("/recommend?k=100000").await, StatusCode::BAD_REQUEST, Some("k"));
    assert_error(&s.get("/recommend?usr=1").await, StatusCode::BAD_REQUEST, Some("usr"));
    assert_error(&s.get("/recommend?explain=maybe").await, StatusCode::BAD_REQUEST, Some("explain"));
    assert_error(&s.get("/recommend?surface=nowhere").await, StatusCode::BAD_REQUEST, Some("surface"));
    assert_error(&s.get("/search?k=3").await, StatusCode::BAD_REQUEST, Some("q"));
    assert_error(&s.get("/search?q=a&rerank_depth=-1").await, StatusCode::BAD_REQUEST, Some("rerank_depth"));
    assert_error(&s.get("/search?q=a&rerank_depth=201").await, StatusCode::BAD_REQUEST, Some("rerank_depth"));
    assert_error(&s.get("/search?q=a&rerank_depth=").await, StatusCode::BAD_REQUEST, Some("rerank_depth"));
    assert_error(&s.get("/items/no-such-item/similar").await, StatusCode::NOT_FOUND, Some("id"));
    assert_error(&s.get("/nowhere").await, StatusCode::NOT_FOUND, None);
}

#[tokio::test]
async fn without_a_snapshot_queries_are_503_and_writes_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let state =
        Arc::new(AppState::open(&DataDir::new(dir.path()), EngineConfig::default(), Default::default()).unwrap());
    let s = Server { data: DataDir::new(dir.path()), _dir: dir, state };
    assert_error(&s.get("/recommend").await, StatusCode::SERVICE_UNAVAILABLE, None);
    let (status, _) = s.post("/items", json!([{"id": "a", "title": "A"}]).to_string()).await;
    assert_eq!(status, StatusCode::OK);
    let (_, health) = s.get("/health").await;
    assert_eq!(health["snapshot"], Value::Null);
}

#[tokio::test]
async fn a_newer_snapshot_is_swapped_in_while_serving() {
    let s = server();
    let (_, health) = s.get("/health").await;
    assert_eq!(health["snapshot"], "v000001");
    // Train from a reader while the server holds the writer lock, as `funnel train` does.
    let reader = funnel_store::LogReader::new(s.data.log());
    train(&reader, &s.data.snapshots(), &EngineConfig::default(), None, &mut |_| {}).unwrap();
    assert_eq!(s.state.reload_if_newer().unwrap().as_deref(), Some("v000002"));
    let (_, health) = s.get("/health").await;
    assert_eq!(health["snapshot"], "v000002");
    assert_eq!(s.state.reload_if_newer().unwrap(), None);
}

#[tokio::test]
async fn openapi_and_metrics_describe_the_service() {
    let s = server();
    let (status, doc) = s.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    for path in ["/items", "/users", "/events", "/recommend", "/search", "/items/{id}/similar", "/health", "/metrics"] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from the OpenAPI document");
    }
    s.get("/recommend?k=2").await;
    let (status, text) = s.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().unwrap();
    assert!(text.contains("funnel_http_requests_total"), "{text}");
    assert!(text.contains("funnel_stage_duration_seconds"), "{text}");
    assert!(text.contains(r#"endpoint="/recommend""#), "{text}");
}
