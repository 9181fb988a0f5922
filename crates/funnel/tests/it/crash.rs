//! Durability: every event acknowledged with a 2xx survives `kill -9` of the server,
//! and a torn tail left by a crash is repaired on restart.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use funnel_core::Record;
use funnel_store::LogReader;

struct Served {
    child: Child,
    url: String,
}

fn start_server(data: &Path, stderr: &Path) -> Served {
    let log = std::fs::File::create(stderr).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_funnel"))
        .arg("--data-dir")
        .arg(data)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Served { child, url }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(5))).build().into()
}

#[test]
fn acknowledged_events_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = start_server(&data, &dir.path().join("first.log"));

    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let batches = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..3)
        .map(|writer| {
            let (url, acknowledged, stop, batches) =
                (server.url.clone(), acknowledged.clone(), stop.clone(), batches.clone());
            std::thread::spawn(move || {
                let agent = agent();
                for batch in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let items: Vec<String> = (0..5).map(|n| format!("w{writer}-b{batch}-{n}")).collect();
                    let body: Vec<_> = items
                        .iter()
                        .map(|item| serde_json::json!({"user": "crash", "item": item, "kind": "click", "timestamp": 1}))
                        .collect();
                    let sent = agent
                        .post(format!("{url}/events"))
                        .header("content-type", "application/json")
                        .send(serde_json::to_string(&body).unwrap());
                    match sent {
                        Ok(response) if response.status().is_success() => {
                            acknowledged.lock().unwrap().extend(items);
                            batches.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => break, // the server is gone
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while batches.load(Ordering::Relaxed) < 150 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.child.kill().unwrap(); // SIGKILL, while the writers are still sending
    server.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 150 * 5, "only {} events were acknowledged", acknowledged.len());

    // A crash in the middle of a write leaves a torn frame; simulate one on top.
    let newest = std::fs::read_dir(data.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .max()
        .unwrap();
    OpenOptions::new().append(true).open(&newest).unwrap().write_all(&[64, 0, 0, 0, 1, 2, 3]).unwrap();

    let restart_log = dir.path().join("second.log");
    let mut server = start_server(&data, &restart_log);
    let health = agent().get(format!("{}/health", server.url)).call().unwrap();
    assert!(health.status().is_success());
    let more = serde_json::json!([{"user": "crash", "item": "after-restart", "kind": "click", "timestamp": 2}]);
    agent().post(format!("{}/events", server.url)).send(more.to_string()).unwrap();
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let stderr = std::fs::read_to_string(&restart_log).unwrap();
    assert!(stderr.contains("torn frame"), "the repair must be logged: {stderr}");

    let mut stored = std::collections::HashSet::new();
    LogReader::new(data.join("log"))
        .scan(&mut |record| {
            if let Record::Event(event) = record {
                stored.insert(event.item);
            }
            Ok(())
        })
        .unwrap();
    let lost: Vec<&String> = acknowledged.iter().filter(|item| !stored.contains(*item)).collect();
    assert!(lost.is_empty(), "{} acknowledged events were lost, e.g. {:?}", lost.len(), &lost[..lost.len().min(5)]);
    assert!(stored.contains("after-restart"), "appends after the repair must land");
}
