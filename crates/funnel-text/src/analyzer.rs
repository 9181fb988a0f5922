use std::borrow::Cow;

use rust_stemmers::{Algorithm, Stemmer};
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

/// Common English function words that carry no topic.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "for", "from", "has", "have", "if", "in", "into",
    "is", "it", "its", "no", "not", "of", "on", "or", "s", "such", "t", "that", "the", "their", "then", "there",
    "these", "they", "this", "to", "was", "were", "will", "with",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalyzerConfig {
    pub stem: bool,
    pub stop_words: bool,
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        Self { stem: true, stop_words: true }
    }
}

/// Turns text into index terms: NFKC, lowercase, split on anything that is not a letter
/// or digit, drop stop words and lone letters, English (Porter2) stemming.
pub struct Analyzer {
    config: AnalyzerConfig,
    stemmer: Stemmer,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer").field("config", &self.config).finish()
    }
}

impl Analyzer {
    pub fn new(config: AnalyzerConfig) -> Self {
        Self { config, stemmer: Stemmer::create(Algorithm::English) }
    }

    pub fn config(&self) -> AnalyzerConfig {
        self.config
    }

    /// Calls `emit` with each term of `text`, in order.
    pub fn for_each_term(&self, text: &str, mut emit: impl FnMut(&str)) {
        let text = nfkc(text);
        let mut word = String::new();
        for token in text.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()) {
            word.clear();
            word.extend(token.chars().flat_map(char::to_lowercase));
            if self.config.stop_words && (is_single_letter(&word) || is_stop_word(&word)) {
                continue;
            }
            if self.config.stem {
                emit(&self.stemmer.stem(&word));
            } else {
                emit(&word);
            }
        }
    }

    pub fn terms(&self, text: &str) -> Vec<String> {
        let mut terms = Vec::new();
        self.for_each_term(text, |t| terms.push(t.to_owned()));
        terms
    }
}

/// `text` in Unicode normal form KC (ASCII, the common case, is returned as it is): the
/// one normalisation of index terms, the spelling vocabulary and query facets.
pub fn nfkc(text: &str) -> Cow<'_, str> {
    if text.is_ascii() { Cow::Borrowed(text) } else { Cow::Owned(text.nfkc().collect()) }
}

pub(crate) fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.binary_search(&word).is_ok()
}

/// A lone letter ("x", "é") says nothing about a topic; a lone digit may ("3 phase").
fn is_single_letter(word: &str) -> bool {
    let mut chars = word.chars();
    matches!((chars.next(), chars.next()), (Some(c), None) if c.is_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words_are_sorted_for_binary_search() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn normalises_splits_stops_and_stems() {
        let analyzer = Analyzer::new(AnalyzerConfig::default());
        assert_eq!(analyzer.terms("The Running DOGS of Ｗｅｂ-frameworks!"), ["run", "dog", "web", "framework"]);
        assert_eq!(analyzer.terms("Children's Café"), ["children", "café"]);
        assert_eq!(analyzer.terms("Vitamin C, 3 phase, x"), ["vitamin", "3", "phase"]);
        let plain = Analyzer::new(AnalyzerConfig { stem: false, stop_words: false });
        assert_eq!(plain.terms("The Running C"), ["the", "running", "c"]);
    }
}
