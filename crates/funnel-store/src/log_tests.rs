use std::fs::OpenOptions;
use std::io::Write;

use funnel_core::{Event, EventContext, EventKind, Item, Record};

use super::*;

fn event(user: &str, n: i64) -> Record {
    Record::Event(Event {
        user: user.into(),
        item: format!("i{n}"),
        kind: EventKind::Click,
        value: None,
        timestamp: n,
        context: EventContext::default(),
    })
}

fn all(dir: &Path) -> Vec<Record> {
    let mut out = Vec::new();
    LogReader::new(dir)
        .scan(&mut |r| {
            out.push(r);
            Ok(())
        })
        .unwrap();
    out
}

#[test]
fn appended_batches_read_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(dir.path()).unwrap();
    log.append(&[event("a", 1), event("a", 2)]).unwrap();
    log.append(&[Record::Item(Item::bare("x"))]).unwrap();
    assert_eq!(all(dir.path()), vec![event("a", 1), event("a", 2), Record::Item(Item::bare("x"))]);
}

#[test]
fn a_torn_tail_is_truncated_on_open_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = FileLog::open(dir.path()).unwrap();
        log.append(&[event("a", 1)]).unwrap();
    }
    let segment = dir.path().join(segment_name(1));
    let good_len = fs::metadata(&segment).unwrap().len();
    // A crash in the middle of writing a frame: a header promising 100 bytes, 3 given.
    let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
    file.write_all(&100u32.to_le_bytes()).unwrap();
    file.write_all(&[1, 2, 3, 4, 5, 6, 7]).unwrap();
    drop(file);
    // A reader beside a writer sees the torn frame as "not yet written".
    assert_eq!(all(dir.path()), vec![event("a", 1)]);

    let log = FileLog::open(dir.path()).unwrap();
    assert_eq!(fs::metadata(&segment).unwrap().len(), good_len);
    log.append(&[event("a", 2)]).unwrap();
    assert_eq!(all(dir.path()), vec![event("a", 1), event("a", 2)]);
}

#[test]
fn a_flipped_byte_fails_the_checksum_and_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = FileLog::open(dir.path()).unwrap();
        log.append(&[event("a", 1)]).unwrap();
        log.append(&[event("a", 2)]).unwrap();
    }
    let segment = dir.path().join(segment_name(1));
    let mut bytes = fs::read(&segment).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0xff;
    fs::write(&segment, bytes).unwrap();
    FileLog::open(dir.path()).unwrap();
    assert_eq!(all(dir.path()), vec![event("a", 1)]);
}

#[test]
fn corruption_before_the_newest_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = FileLog::open(dir.path()).unwrap();
        log.append(&[event("a", 1)]).unwrap();
        let mut tx = log.begin_import().unwrap();
        tx.push(&event("b", 2)).unwrap();
        tx.commit().unwrap();
    }
    let first = dir.path().join(segment_name(1));
    let mut bytes = fs::read(&first).unwrap();
    bytes.truncate(bytes.len() - 2);
    fs::write(&first, bytes).unwrap();
    let err = LogReader::new(dir.path()).scan(&mut |_| Ok(())).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
}

#[test]
fn an_import_is_invisible_until_commit_and_gone_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(dir.path()).unwrap();
    log.append(&[event("a", 1)]).unwrap();
    {
        let mut tx = log.begin_import().unwrap();
        for n in 0..10_000 {
            tx.push(&event("b", n)).unwrap();
        }
        assert_eq!(all(dir.path()).len(), 1);
        // dropped here: an import that failed half way
    }
    assert_eq!(all(dir.path()).len(), 1);
    assert!(fs::read_dir(dir.path()).unwrap().all(|e| e.unwrap().path().extension().is_none_or(|x| x != "tmp")));

    let mut tx = log.begin_import().unwrap();
    for n in 0..10_000 {
        tx.push(&event("b", n)).unwrap();
    }
    assert_eq!(tx.commit().unwrap(), 10_000);
    log.append(&[event("c", 1)]).unwrap();
    let records = all(dir.path());
    assert_eq!(records.len(), 10_002);
    assert_eq!(records.last(), Some(&event("c", 1)), "appends go after the import");
    assert!(LogReader::new(dir.path()).stats().unwrap().frames > 2, "large imports span frames");
}

#[test]
fn leftovers_of_a_crashed_import_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("import-1-0.tmp"), b"half an import").unwrap();
    FileLog::open(dir.path()).unwrap();
    assert!(!dir.path().join("import-1-0.tmp").exists());
}

#[test]
fn a_second_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = FileLog::open(dir.path()).unwrap();
    let err = FileLog::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
}

#[test]
fn a_segment_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = header().to_vec();
    bytes[8..12].copy_from_slice(&99u32.to_le_bytes());
    fs::write(dir.path().join(segment_name(1)), bytes).unwrap();
    let err = LogReader::new(dir.path()).scan(&mut |_| Ok(())).unwrap_err();
    assert!(matches!(err, StoreError::Newer { found: 99, .. }), "{err}");
}
