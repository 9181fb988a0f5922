//! TREC run files: `qid Q0 docid rank score tag`, one line per retrieved document.

use std::io::Write;
use std::path::Path;

use crate::EvalError;

/// One query's ranking: document ids with scores, best first.
pub type Ranking = Vec<(String, f64)>;

/// Orders a ranking as trec_eval reads a run: score descending, ties by document id
/// descending. Metrics computed on this order equal trec_eval's on the written file.
pub fn trec_order(ranking: &mut Ranking) {
    ranking.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
}

/// Writes rankings (query id, ranking) as a run with the given tag.
pub fn write_run(path: &Path, tag: &str, rankings: &[(String, Ranking)]) -> Result<(), EvalError> {
    let io = |source| EvalError::Io { path: path.to_owned(), source };
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    for (query, ranking) in rankings {
        for (rank, (doc, score)) in ranking.iter().enumerate() {
            writeln!(out, "{query} Q0 {doc} {} {score} {tag}", rank + 1).map_err(io)?;
        }
    }
    out.flush().map_err(io)
}

/// Reads a run file into (query id, ranking) in file order of first appearance.
pub fn read_run(path: &Path) -> Result<Vec<(String, Ranking)>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io { path: path.to_owned(), source })?;
    let mut runs: Vec<(String, Ranking)> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let bad = |reason: &str| EvalError::BadLine {
            path: path.to_owned(),
            line: number as u64 + 1,
            reason: reason.to_owned(),
        };
        let [query, _, doc, _, score, ..] = fields[..] else {
            return Err(bad("expected `qid Q0 docid rank score tag`"));
        };
        let score: f64 = score.parse().map_err(|_| bad("the score is not a number"))?;
        match runs.last_mut() {
            Some((last, ranking)) if last == query => ranking.push((doc.to_owned(), score)),
            _ => match runs.iter_mut().find(|(q, _)| q == query) {
                Some((_, ranking)) => ranking.push((doc.to_owned(), score)),
                None => runs.push((query.to_owned(), vec![(doc.to_owned(), score)])),
            },
        }
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_round_trip_in_trec_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.txt");
        let mut ranking = vec![("d1".to_owned(), 1.5), ("d3".to_owned(), 2.0), ("d2".to_owned(), 1.5)];
        trec_order(&mut ranking);
        assert_eq!(ranking.iter().map(|(d, _)| d.as_str()).collect::<Vec<_>>(), ["d3", "d2", "d1"]);
        write_run(&path, "bm25", &[("q1".into(), ranking.clone())]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().next(), Some("q1 Q0 d3 1 2 bm25"));
        assert_eq!(read_run(&path).unwrap(), vec![("q1".to_owned(), ranking)]);
    }
}
