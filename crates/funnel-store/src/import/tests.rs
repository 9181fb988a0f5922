use std::io::Write;
use std::path::PathBuf;

use funnel_core::{EventKind, Record};

use super::*;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        if name.ends_with(".gz") {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(bytes).unwrap();
            std::fs::write(&path, encoder.finish().unwrap()).unwrap();
        } else {
            std::fs::write(&path, bytes).unwrap();
        }
        path
    }

    fn log(&self) -> FileLog {
        FileLog::open(self.dir.path().join("log")).unwrap()
    }
}

fn import(log: &FileLog, path: &Path, kind: Kind, format: Format, skip_bad: bool) -> Result<ImportReport, ImportError> {
    import_file(log, path, &ImportOptions { kind, format, skip_bad }, &mut |_| {})
}

fn records(log: &FileLog) -> Vec<Record> {
    let mut out = Vec::new();
    log.reader()
        .scan(&mut |r| {
            out.push(r);
            Ok(())
        })
        .unwrap();
    out
}

const EVENTS: &str = r#"{"user":"u1","item":"i1","kind":"click","timestamp":100}
{"user":"u1","item":"i2","kind":"watch","value":31.5,"timestamp":101,"context":{"position":2,"propensity":0.5}}

{"user":"u2","item":"i1","kind":"purchase","value":9.99,"timestamp":102}
"#;

#[test]
fn jsonl_events_import_and_read_back() {
    let fx = Fixture::new();
    let log = fx.log();
    let path = fx.file("events.jsonl", EVENTS.as_bytes());
    let report = import(&log, &path, Kind::Events, Format::Auto, false).unwrap();
    assert_eq!(report.records, 3);
    let Record::Event(second) = &records(&log)[1] else { panic!("not an event") };
    assert_eq!(second.kind, EventKind::Watch);
    assert_eq!(second.context.propensity, Some(0.5));
}

#[test]
fn gzip_is_read_directly() {
    let fx = Fixture::new();
    let log = fx.log();
    let path = fx.file("events.jsonl.gz", EVENTS.as_bytes());
    assert_eq!(import(&log, &path, Kind::Events, Format::Auto, false).unwrap().records, 3);
}

#[test]
fn a_bad_line_names_file_line_and_field_and_imports_nothing() {
    let fx = Fixture::new();
    let log = fx.log();
    let text = format!("{EVENTS}{}", r#"{"user":"u3","item":"i9","kind":"click","timestamp":"soon"}"#);
    let path = fx.file("events.jsonl", text.as_bytes());
    let err = import(&log, &path, Kind::Events, Format::Auto, false).unwrap_err().to_string();
    assert!(err.contains("events.jsonl:5: field `timestamp`"), "{err}");
    assert!(err.contains("nothing was imported"), "{err}");
    assert!(records(&log).is_empty(), "a failed import must leave nothing behind");
}

#[test]
fn skip_bad_counts_and_explains_what_it_skipped() {
    let fx = Fixture::new();
    let log = fx.log();
    let text = format!("{EVENTS}not json\n{}\n", r#"{"user":"u","item":"i","kind":"teleport","timestamp":1}"#);
    let path = fx.file("events.jsonl", text.as_bytes());
    let report = import(&log, &path, Kind::Events, Format::Auto, true).unwrap();
    assert_eq!((report.records, report.skipped), (3, 2));
    assert_eq!(report.skipped_examples[0].line, 5);
    assert_eq!(report.skipped_examples[1].field.as_deref(), Some("kind"));
}

#[test]
fn csv_events_map_headers_and_aliases() {
    let fx = Fixture::new();
    let log = fx.log();
    let path = fx.file("ratings.csv", b"userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n1,1029,3.0,2009-12-14\n");
    assert_eq!(import(&log, &path, Kind::Events, Format::Auto, false).unwrap().records, 2);
    let Record::Event(first) = &records(&log)[0] else { panic!("not an event") };
    assert_eq!(
        (first.user.as_str(), first.item.as_str(), first.kind, first.value),
        ("1", "31", EventKind::Rating, Some(2.5))
    );
}

#[test]
fn csv_errors_name_line_and_column() {
    let fx = Fixture::new();
    let log = fx.log();
    let path = fx.file("e.csv", b"user,item,kind,timestamp\na,b,click,1\na,b,clack,2\n");
    let err = import(&log, &path, Kind::Events, Format::Auto, false).unwrap_err().to_string();
    assert!(err.contains("e.csv:3: field `kind`: unknown event kind `clack`"), "{err}");

    let path = fx.file("nouser.csv", b"who,item\na,b\n");
    let err = import(&log, &path, Kind::Events, Format::Auto, false).unwrap_err().to_string();
    assert!(err.contains("nouser.csv:1: the header has no `user` column"), "{err}");
}

#[test]
fn non_utf8_csv_is_a_clear_error() {
    let fx = Fixture::new();
    let log = fx.log();
    let path = fx.file("items.csv", b"id,title\n1,Caf\xe9\n");
    let err = import(&log, &path, Kind::Items, Format::Auto, false).unwrap_err().to_string();
    assert!(err.contains("items.csv:2") && err.contains("not valid UTF-8"), "{err}");
    let path = fx.file("items.jsonl", b"{\"id\":\"1\",\"title\":\"Caf\xe9\"}\n");
    let err = import(&log, &path, Kind::Items, Format::Auto, false).unwrap_err().to_string();
    assert!(err.contains("items.jsonl:1") && err.contains("not valid UTF-8"), "{err}");
}

#[test]
fn csv_items_keep_extra_columns() {
    let fx = Fixture::new();
    let log = fx.log();
    let path = fx.file(
        "items.csv",
        b"movieId,title,genres,price,studio,available\n1,Toy Story (1995),Animation|Comedy,9.5,Pixar,false\n",
    );
    import(&log, &path, Kind::Items, Format::Auto, false).unwrap();
    let Record::Item(item) = &records(&log)[0] else { panic!("not an item") };
    assert_eq!(item.categories, ["Animation", "Comedy"]);
    assert_eq!(item.attributes["price"], 9.5);
    assert_eq!(item.fields["studio"], "Pixar");
    assert!(!item.available);
}

#[test]
fn beir_corpus_lines_become_items() {
    let fx = Fixture::new();
    let log = fx.log();
    let path = fx.file(
        "corpus.jsonl",
        br#"{"_id": "0-0-1", "title": "0-0-1", "text": "A lib for tfrecords", "month": "2017-12", "rank": 12}
"#,
    );
    import(&log, &path, Kind::Items, Format::Beir, false).unwrap();
    let Record::Item(item) = &records(&log)[0] else { panic!("not an item") };
    assert_eq!(item.id, "0-0-1");
    assert_eq!(item.fields["text"], "A lib for tfrecords");
    assert_eq!(item.attributes["rank"], 12.0);
}

#[test]
fn movielens_100k_files_parse_including_latin1_titles() {
    let fx = Fixture::new();
    let log = fx.log();
    let data = fx.file("u.data", b"196\t242\t3\t881250949\n186\t302\t3\t891717742\n");
    let items = fx.file(
        "u.item",
        b"1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n\
          2|Mis\xe9rables|01-Jan-1995||http://y|0|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0\n",
    );
    let users = fx.file("u.user", b"1|24|M|technician|85711\n");
    assert_eq!(import(&log, &data, Kind::Events, Format::Auto, false).unwrap().records, 2);
    assert_eq!(import(&log, &items, Kind::Items, Format::Auto, false).unwrap().records, 2);
    assert_eq!(import(&log, &users, Kind::Users, Format::Auto, false).unwrap().records, 1);
    let all = records(&log);
    let Record::Item(toy) = &all[2] else { panic!("not an item") };
    assert_eq!(toy.categories, ["Animation", "Children's", "Comedy"]);
    assert_eq!(toy.created_at, Some(788_918_400));
    let Record::Item(les) = &all[3] else { panic!("not an item") };
    assert_eq!(les.title, "Misérables");
}

#[test]
fn unknown_format_asks_for_one() {
    let fx = Fixture::new();
    let log = fx.log();
    let path = fx.file("data.bin", b"");
    let err = import(&log, &path, Kind::Events, Format::Auto, false).unwrap_err().to_string();
    assert!(err.contains("--format"), "{err}");
    let err = import(&log, &fx.dir.path().join("missing.csv"), Kind::Events, Format::Auto, false).unwrap_err();
    assert!(err.to_string().contains("missing.csv: not found"), "{err}");
}

#[test]
fn qrels_and_queries_read_beir_and_trec_layouts() {
    let fx = Fixture::new();
    let beir = fx.file("test.tsv", b"query-id\tcorpus-id\tscore\n1\t184\t3\n1\t29\t2\n");
    let trec = fx.file("qrels.txt", b"1 0 184 3\n");
    assert_eq!(read_qrels(&beir).unwrap().len(), 2);
    assert_eq!(read_qrels(&trec).unwrap()[0], Qrel { query: "1".into(), doc: "184".into(), grade: 3 });
    let queries = fx.file("queries.jsonl", br#"{"_id": "1", "text": "what similarity laws"}"#);
    assert_eq!(read_beir_queries(&queries).unwrap()[0].text, "what similarity laws");
}
