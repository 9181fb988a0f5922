//! Spell correction of queries from the catalog's own vocabulary.
//!
//! Candidates within edit distance 2 (optimal string alignment: insertions, deletions,
//! substitutions, adjacent transpositions) are found with symmetric deletes (SymSpell):
//! every vocabulary word is indexed under the strings left after deleting up to two
//! characters of its first [`PREFIX`] characters, and a query word looks up its own
//! deletes. The choice among candidates is a noisy channel: each candidate scores
//! `ln(count) − distance · ln(edit_penalty)`, the word as typed included when the catalog
//! has it, so a rare spelling gives way only to a much more frequent neighbour.

use crate::analyzer::{is_stop_word, nfkc};
use rust_stemmers::{Algorithm, Stemmer};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// Only the first characters of a word are indexed by their deletes (SymSpell's prefix
/// length); candidates are then checked against the whole word.
const PREFIX: usize = 7;
/// The largest distance any word is corrected by.
const MAX_DISTANCE: usize = 2;

/// Words of the catalog with how often each occurs, sorted by word.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Vocabulary {
    words: Vec<String>,
    counts: Vec<u32>,
}

impl Vocabulary {
    /// Counts the words of `texts` (NFKC, lower case, split on anything that is not a
    /// letter or digit).
    pub fn build<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        let mut counts: FxHashMap<String, u32> = FxHashMap::default();
        for text in texts {
            for_each_word(&nfkc(text), |_, word| {
                if let Some(count) = counts.get_mut(word) {
                    *count = count.saturating_add(1);
                } else {
                    counts.insert(word.to_owned(), 1);
                }
            });
        }
        let mut pairs: Vec<(String, u32)> = counts.into_iter().collect();
        pairs.sort_unstable();
        let (words, counts) = pairs.into_iter().unzip();
        Self { words, counts }
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    fn count(&self, word: &str) -> Option<u32> {
        self.words.binary_search_by(|w| w.as_str().cmp(word)).ok().map(|i| self.counts[i])
    }
}

/// Settings of the corrector.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpellConfig {
    /// Correct queries at all (the vocabulary is kept in the snapshot only when on).
    pub enabled: bool,
    /// How many times more frequent a word one edit away must be to replace a word the
    /// catalog knows (two edits: the square of this).
    pub edit_penalty: f32,
    /// Words seen fewer times are never proposed as corrections (typos of the catalog
    /// itself).
    pub min_count: u32,
    /// Shorter words are left alone; words of up to `min_length + 1` characters are
    /// corrected by one edit at most, longer ones by two.
    pub min_length: usize,
}

impl Default for SpellConfig {
    fn default() -> Self {
        Self { enabled: true, edit_penalty: 100.0, min_count: 2, min_length: 3 }
    }
}

/// One replaced word.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Correction {
    pub from: String,
    pub to: String,
    pub distance: u8,
}

/// A query after correction: its text with the replaced words, and what was replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Corrected {
    pub text: String,
    pub corrections: Vec<Correction>,
}

/// The corrector: a vocabulary and its delete index.
pub struct Speller {
    vocabulary: Vocabulary,
    config: SpellConfig,
    /// (hash of a delete string, word index), sorted.
    deletes: Vec<(u64, u32)>,
    /// The highest count of a word that can be proposed: a known word more than
    /// `edit_penalty` times rarer than this has no rival, and is not looked up.
    max_count: u32,
    /// With stemming, how often each stem occurs: a word the catalog has only in another
    /// form (`interested` when it says `interest`) is known to the index, not a typo.
    stems: Option<(Stemmer, FxHashMap<String, u32>)>,
}

impl std::fmt::Debug for Speller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Speller").field("words", &self.vocabulary.len()).field("config", &self.config).finish()
    }
}

impl Speller {
    /// `stem`: whether the index stems words (then a query word counts as known when its
    /// stem is).
    pub fn new(vocabulary: Vocabulary, config: SpellConfig, stem: bool) -> Self {
        let mut deletes = Vec::new();
        let mut variants = Vec::new();
        for (index, (word, &count)) in vocabulary.words.iter().zip(&vocabulary.counts).enumerate() {
            if count < config.min_count || !is_correction_target(word) {
                continue;
            }
            deletes_of(word, MAX_DISTANCE, &mut variants);
            deletes.extend(variants.iter().map(|&hash| (hash, index as u32)));
        }
        deletes.sort_unstable();
        deletes.dedup();
        let max_count = deletes.iter().map(|&(_, index)| vocabulary.counts[index as usize]).max().unwrap_or(0);
        let stems = stem.then(|| {
            let stemmer = Stemmer::create(Algorithm::English);
            let mut counts: FxHashMap<String, u32> = FxHashMap::default();
            for (word, &count) in vocabulary.words.iter().zip(&vocabulary.counts) {
                let total = counts.entry(stemmer.stem(word).into_owned()).or_default();
                *total = total.saturating_add(count);
            }
            (stemmer, counts)
        });
        Self { vocabulary, config, deletes, max_count, stems }
    }

    /// How often the catalog has `word`, or any word with its stem.
    fn known_count(&self, word: &str) -> Option<u32> {
        let own = self.vocabulary.count(word);
        let stem = self.stems.as_ref().and_then(|(stemmer, counts)| counts.get(stemmer.stem(word).as_ref()).copied());
        own.max(stem)
    }

    pub fn vocabulary(&self) -> &Vocabulary {
        &self.vocabulary
    }

    /// `query` with each misspelt word replaced by its most likely intended word.
    pub fn correct(&self, query: &str) -> Corrected {
        let normalized = nfkc(query);
        let mut text = String::with_capacity(normalized.len());
        let mut corrections = Vec::new();
        let mut copied = 0;
        for_each_word(&normalized, |span, word| {
            if let Some((to, distance)) = self.correct_word(word) {
                text.push_str(&normalized[copied..span.start]);
                text.push_str(to);
                copied = span.end;
                corrections.push(Correction { from: word.to_owned(), to: to.to_owned(), distance });
            }
        });
        if corrections.is_empty() {
            return Corrected { text: query.to_owned(), corrections };
        }
        text.push_str(&normalized[copied..]);
        Corrected { text, corrections }
    }

    /// The replacement of one lower-case word and its distance, when it needs one.
    fn correct_word(&self, word: &str) -> Option<(&str, u8)> {
        let length = word.chars().count();
        if length < self.config.min_length || !is_correction_target(word) {
            return None;
        }
        let max_distance = if length <= self.config.min_length + 1 { 1 } else { MAX_DISTANCE };
        let penalty = f64::from(self.config.edit_penalty.max(1.0)).ln();
        let score = |count: u32, distance: usize| f64::from(count).ln() - distance as f64 * penalty;
        let own = self.known_count(word).map(|count| score(count, 0));
        if own.is_some_and(|own| own + penalty >= f64::from(self.max_count).ln()) {
            return None;
        }
        let mut best: Option<(f64, usize, u32)> = None;
        let mut variants = Vec::new();
        deletes_of(word, max_distance, &mut variants);
        let mut candidates: Vec<u32> = Vec::new();
        for hash in variants {
            let start = self.deletes.partition_point(|&(h, _)| h < hash);
            candidates.extend(self.deletes[start..].iter().take_while(|&&(h, _)| h == hash).map(|&(_, index)| index));
        }
        candidates.sort_unstable();
        candidates.dedup();
        // A known word gives way only to a word at least `edit_penalty` times more frequent:
        // rarer candidates are dropped before any distance is computed.
        let floor = own.map_or(f64::NEG_INFINITY, |own| own + penalty);
        for index in candidates {
            let count = self.vocabulary.counts[index as usize];
            let candidate = &self.vocabulary.words[index as usize];
            if f64::from(count).ln() <= floor || candidate.chars().count().abs_diff(length) > max_distance {
                continue;
            }
            let distance = strsim::osa_distance(word, candidate);
            if distance == 0 || distance > max_distance {
                continue;
            }
            let s = score(count, distance);
            let better = match best {
                None => true,
                Some((b, d, i)) => {
                    (s, std::cmp::Reverse(distance), std::cmp::Reverse(index))
                        > (b, std::cmp::Reverse(d), std::cmp::Reverse(i))
                }
            };
            if better {
                best = Some((s, distance, index));
            }
        }
        let (s, distance, index) = best?;
        if own.is_some_and(|own| own >= s) {
            return None;
        }
        Some((&self.vocabulary.words[index as usize], distance as u8))
    }
}

/// Words worth correcting, or proposing: letters only, and not a stop word (`form` must
/// never become `from`).
fn is_correction_target(word: &str) -> bool {
    word.chars().all(char::is_alphabetic) && !is_stop_word(word)
}

/// Hashes of `word`'s first [`PREFIX`] characters and of every string left after
/// deleting up to `max_distance` of those characters; sorted and distinct.
fn deletes_of(word: &str, max_distance: usize, out: &mut Vec<u64>) {
    out.clear();
    let prefix: Vec<char> = word.chars().take(PREFIX).collect();
    let mut frontier = vec![prefix];
    out.push(hash(&frontier[0]));
    for _ in 0..max_distance {
        let mut next = Vec::new();
        for chars in &frontier {
            for skip in 0..chars.len() {
                let mut shorter = chars.clone();
                shorter.remove(skip);
                next.push(shorter);
            }
        }
        next.sort_unstable();
        next.dedup();
        out.extend(next.iter().map(|chars| hash(chars)));
        frontier = next;
    }
    out.sort_unstable();
    out.dedup();
}

/// FNV-1a over the characters.
fn hash(chars: &[char]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &c in chars {
        h = (h ^ u64::from(c)).wrapping_mul(0x100_0000_01b3);
    }
    // The length too, so that strings of different lengths never share a bucket.
    (h ^ chars.len() as u64).wrapping_mul(0x100_0000_01b3)
}

/// The lower-case words (runs of letters and digits) of `text` after NFKC: the words the
/// vocabulary counts and the query facets match.
pub fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    for_each_word(&nfkc(text), |_, word| words.push(word.to_owned()));
    words
}

/// Calls `emit` with the byte span and the lower-cased text of each word of `text`.
fn for_each_word(text: &str, mut emit: impl FnMut(std::ops::Range<usize>, &str)) {
    let mut lower = String::new();
    let mut start = None;
    for (i, c) in text.char_indices().chain(std::iter::once((text.len(), ' '))) {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                lower.clear();
                lower.extend(text[s..i].chars().flat_map(char::to_lowercase));
                emit(s..i, &lower);
                start = None;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn speller(texts: &[&str]) -> Speller {
        Speller::new(Vocabulary::build(texts.iter().copied()), SpellConfig::default(), true)
    }

    #[test]
    fn vocabulary_counts_lower_case_words() {
        let vocabulary = Vocabulary::build(["Web framework, web SERVER", "framework"]);
        assert_eq!(vocabulary.count("web"), Some(2));
        assert_eq!(vocabulary.count("framework"), Some(2));
        assert_eq!(vocabulary.count("server"), Some(1));
        assert_eq!(vocabulary.count("Web"), None);
    }

    #[test]
    fn every_kind_of_single_edit_is_undone() {
        let s = speller(&["asynchronous framework"; 5]);
        for typo in ["asynchronus", "asynchronxous", "asynchrpnous", "asnychronous", "framewrok", "fraemwork"] {
            let corrected = s.correct(typo);
            assert!(corrected.text == "asynchronous" || corrected.text == "framework", "{typo} -> {}", corrected.text);
            assert_eq!(corrected.corrections.len(), 1);
        }
        // Two edits on a long word, also in the first characters (the indexed prefix).
        assert_eq!(s.correct("sayncronous").text, "asynchronous");
        assert_eq!(s.correct("xasynchronous").text, "asynchronous");
    }

    #[test]
    fn the_text_around_a_correction_is_kept() {
        let s = speller(&["fast web framework"; 3]);
        let corrected = s.correct("Fast  web-framwork!");
        assert_eq!(corrected.text, "Fast  web-framework!");
        assert_eq!(
            corrected.corrections,
            [Correction { from: "framwork".into(), to: "framework".into(), distance: 1 }]
        );
        assert_eq!(s.correct("fast web").corrections, []);
    }

    #[test]
    fn frequency_decides_between_known_words() {
        // `sever` is known but 200 times rarer than `server`, one edit away (penalty 100).
        let mut texts = vec!["server"; 2000];
        texts.extend(["sever"; 10]);
        assert_eq!(speller(&texts).correct("sever").text, "server");
        // Only 50 times rarer: a word in its own right.
        let mut texts = vec!["server"; 500];
        texts.extend(["sever"; 10]);
        assert_eq!(speller(&texts).correct("sever").corrections, []);
        // Closer beats more frequent unless the frequency outweighs an edit.
        let s = speller(&["parser"; 3].into_iter().chain(["paper"; 100]).collect::<Vec<_>>());
        assert_eq!(s.correct("parsr").text, "parser");
    }

    #[test]
    fn stop_words_digits_short_words_and_rare_words_are_left_alone() {
        let s = speller(&["from the form of data", "from the form of data", "python3 data", "python3", "zebra"]);
        assert_eq!(s.correct("fron").corrections, [], "from is a stop word: not a target");
        assert_eq!(s.correct("pythn3").corrections, []);
        assert_eq!(s.correct("da").corrections, [], "shorter than min_length");
        assert_eq!(s.correct("dta").text, "data");
        assert_eq!(s.correct("frxm").corrections, [], "3-4 letters: one edit at most, and `form` is two away");
        assert_eq!(s.correct("zebar").corrections, [], "zebra was seen once: below min_count");
        assert_eq!(s.correct("frm").text, "form");
    }

    #[test]
    fn a_word_the_catalog_has_in_another_form_is_not_a_typo() {
        let s = speller(&["interest rates and interests"; 3]);
        assert_eq!(s.correct("interested").corrections, []);
        let unstemmed = Speller::new(Vocabulary::build(["interest rates"; 3]), SpellConfig::default(), false);
        assert_eq!(unstemmed.correct("interested").text, "interest");
    }

    #[test]
    fn non_ascii_queries_are_normalised_and_corrected() {
        let s = speller(&["café crème"; 3]);
        assert_eq!(s.correct("Ｃafé crme").text, "Café crème");
        // A catalog in decomposed form (e + combining accent) knows the composed word.
        let decomposed = speller(&["cafe\u{301} cre\u{300}me"; 3]);
        assert_eq!(decomposed.correct("café").corrections, []);
        assert_eq!(decomposed.correct("crme").text, "crème");
    }

    #[test]
    fn min_count_one_proposes_words_seen_once() {
        let config = SpellConfig { min_count: 1, ..SpellConfig::default() };
        let s = Speller::new(Vocabulary::build(["zebra"]), config, true);
        assert_eq!(s.correct("zebar").text, "zebra");
    }
}
