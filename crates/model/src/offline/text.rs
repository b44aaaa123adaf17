//! What the offline model reads from a text: title, body, words, keywords, language, and
//! keyword-based classification ([`super::lexicon`]). Plain heuristics, deterministic.

use std::collections::HashMap;

use super::lexicon::{
    CALM_WORDS, EXTRA_STOP_WORDS, FALLBACK_NAMES, FAMILIES, LEVEL_NAMES, LEVELS, NEGATIVE_NAMES,
    NEGATIVE_WORDS, NEUTRAL_NAMES, POSITIVE_NAMES, POSITIVE_WORDS, PROBLEM_WORDS, STOP_WORDS,
    URGENT_WORDS,
};

/// A text, read for the heuristics.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The first line, or a `Title:`/`Subject:` line.
    pub title: String,
    /// The rest, or a `Description:`/`Body:` section.
    pub body: String,
    /// Lowercased text, for phrase matches.
    lower: String,
    /// Lowercased words in order.
    words: Vec<String>,
}

/// A `Field name: ...` line: a capitalised label of at most four words before a colon.
fn is_field_line(line: &str) -> bool {
    let Some((label, _)) = line.split_once(':') else {
        return false;
    };
    let words: Vec<&str> = label.split_whitespace().collect();
    !words.is_empty()
        && words.len() <= 4
        && label.chars().next().is_some_and(char::is_uppercase)
        && label.chars().all(|c| c.is_alphabetic() || c == ' ')
}

impl Analysis {
    /// Reads `text`.
    pub fn of(text: &str) -> Self {
        let text = text.trim();
        let mut title = None;
        let mut body = None;
        let mut other_lines = Vec::new();
        // Whether the lines read now continue a `Description:`.
        let mut in_body = false;
        for line in text.lines() {
            let trimmed = line.trim();
            if let Some(rest) = field(trimmed, &["title", "subject"]) {
                title.get_or_insert_with(|| rest.to_string());
            } else if let Some(rest) = field(trimmed, &["description", "body"]) {
                body.get_or_insert_with(String::new).push_str(rest);
                in_body = true;
            } else if !trimmed.is_empty() {
                // Lines after a `Description:` line continue it, until another field
                // (`Priority: high`, `Related past tickets:`) starts.
                in_body &= !is_field_line(trimmed);
                match &mut body {
                    Some(body) if in_body => {
                        body.push(' ');
                        body.push_str(trimmed);
                    }
                    _ => other_lines.push(trimmed),
                }
            }
        }
        let title = title.unwrap_or_else(|| {
            let first = other_lines.first().copied().unwrap_or_default();
            truncate_words(first_sentence(first), 80)
        });
        let body = body.unwrap_or_else(|| {
            if other_lines.len() > 1 {
                other_lines[1..].join(" ")
            } else {
                other_lines.join(" ")
            }
        });
        let lower = text.to_lowercase();
        let words = lower
            .split(|c: char| !(c.is_alphanumeric() || c == '\''))
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect();
        Analysis {
            title,
            body,
            lower,
            words,
        }
    }

    /// Occurrences of `terms`: phrases as substrings, words exactly, or as a prefix for words
    /// of five letters or more (so "crash" finds "crashed" but "down" not "download").
    pub fn hits(&self, terms: &[&str]) -> usize {
        terms
            .iter()
            .map(|term| {
                if term.contains(' ') {
                    self.lower.matches(term).count()
                } else if term.chars().count() >= 5 {
                    self.words.iter().filter(|w| w.starts_with(term)).count()
                } else {
                    self.words.iter().filter(|w| w.as_str() == *term).count()
                }
            })
            .sum()
    }

    /// The terms of `terms` found, for explanations.
    pub fn found<'t>(&self, terms: &[&'t str]) -> Vec<&'t str> {
        terms
            .iter()
            .copied()
            .filter(|term| self.hits(&[term]) > 0)
            .collect()
    }

    /// Every signal word found (categories, urgency, sentiment), for explanations.
    pub fn signals(&self) -> Vec<&'static str> {
        let mut found: Vec<&'static str> = Vec::new();
        let lists = FAMILIES
            .iter()
            .map(|f| f.words)
            .chain([URGENT_WORDS, NEGATIVE_WORDS]);
        for list in lists {
            for term in self.found(list) {
                if !found.contains(&term) {
                    found.push(term);
                }
            }
        }
        found
    }

    /// How many signal words were found: a confidence measure.
    pub fn signal_count(&self) -> usize {
        self.signals().len()
    }

    /// The category family label with most hits, if any hit.
    pub fn category_label(&self) -> &'static str {
        FAMILIES
            .iter()
            .map(|family| (family.label, self.hits(family.words)))
            .filter(|(_, hits)| *hits > 0)
            .fold(None, |best: Option<(&str, usize)>, candidate| match best {
                Some(best) if best.1 >= candidate.1 => Some(best),
                _ => Some(candidate),
            })
            .map_or("other", |(label, _)| label)
    }

    /// The enum value of `values` the text points to: the family with most hits among the
    /// values' families (a value named in the text counts too), else a fallback value
    /// (`other`, `general`, ...), else the first.
    pub fn pick_category<'v>(&self, values: &'v [String]) -> Option<&'v String> {
        let mut best: Option<(&String, usize)> = None;
        for value in values {
            let name = normalise(value);
            let family = FAMILIES
                .iter()
                .find(|f| f.names.iter().any(|n| name == *n || name.contains(n)));
            let mut score = family.map_or(0, |f| self.hits(f.words));
            score += self.words.iter().filter(|w| **w == name).count();
            if score > 0 && best.is_none_or(|(_, top)| score > top) {
                best = Some((value, score));
            }
        }
        best.map(|(value, _)| value).or_else(|| {
            values
                .iter()
                .find(|v| FALLBACK_NAMES.contains(&normalise(v).as_str()))
                .or(values.first())
        })
    }

    /// Urgency from 0 (low) to 3 (critical).
    pub fn level(&self) -> u8 {
        let urgent = self.hits(URGENT_WORDS);
        if urgent >= 2 {
            3
        } else if urgent == 1 {
            2
        } else if self.hits(PROBLEM_WORDS) > 0 {
            1
        } else if self.hits(CALM_WORDS) > 0 {
            0
        } else {
            1
        }
    }

    /// `low`, `medium`, `high` or `critical`.
    pub fn level_label(&self) -> &'static str {
        LEVEL_NAMES[usize::from(self.level())]
    }

    /// The value of `values` closest to the urgency level; unknown names are skipped, and
    /// with none known, the first value.
    pub fn pick_level<'v>(&self, values: &'v [String]) -> Option<&'v String> {
        let target = i16::from(self.level());
        values
            .iter()
            .filter_map(|value| {
                let name = normalise(value);
                LEVELS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, level)| (value, *level))
            })
            .min_by_key(|(_, level)| (i16::from(*level) - target).abs())
            .map(|(value, _)| value)
            .or(values.first())
    }

    /// -1 negative, 0 neutral, 1 positive.
    pub fn sentiment(&self) -> i8 {
        let negative = self.hits(NEGATIVE_WORDS) + self.lower.matches("!!").count();
        let positive = self.hits(POSITIVE_WORDS);
        if negative > 0 && negative >= positive {
            -1
        } else if positive > negative {
            1
        } else {
            0
        }
    }

    /// `negative`, `neutral` or `positive`.
    pub fn sentiment_label(&self) -> &'static str {
        match self.sentiment() {
            -1 => "negative",
            1 => "positive",
            _ => "neutral",
        }
    }

    /// The value of `values` naming the sentiment, else the first.
    pub fn pick_sentiment<'v>(&self, values: &'v [String]) -> Option<&'v String> {
        let names = match self.sentiment() {
            -1 => NEGATIVE_NAMES,
            1 => POSITIVE_NAMES,
            _ => NEUTRAL_NAMES,
        };
        values
            .iter()
            .find(|v| names.contains(&normalise(v).as_str()))
            .or(values.first())
    }

    /// An ISO 639-1 guess from stop words; `en` unless another language clearly leads.
    pub fn language(&self) -> &'static str {
        let mut best = ("en", 0usize);
        for (language, stop_words) in STOP_WORDS {
            let hits = self
                .words
                .iter()
                .filter(|w| stop_words.contains(&w.as_str()))
                .count();
            if hits > best.1 {
                best = (language, hits);
            }
        }
        if best.1 >= 2 { best.0 } else { "en" }
    }

    /// The most frequent meaningful words (no stop words, three letters or more), ties in
    /// order of appearance.
    pub fn keywords(&self, count: usize) -> Vec<String> {
        let mut counts: HashMap<&str, (usize, usize)> = HashMap::new();
        for (position, word) in self.words.iter().enumerate() {
            let meaningful = word.chars().count() >= 3
                && !word.chars().all(|c| c.is_numeric())
                && !STOP_WORDS
                    .iter()
                    .any(|(_, stop)| stop.contains(&word.as_str()))
                && !EXTRA_STOP_WORDS.contains(&word.as_str());
            if meaningful {
                counts.entry(word).or_insert((0, position)).0 += 1;
            }
        }
        let mut ranked: Vec<(&str, (usize, usize))> = counts.into_iter().collect();
        ranked.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.1.1.cmp(&b.1.1)));
        ranked
            .into_iter()
            .take(count)
            .map(|(word, _)| word.to_string())
            .collect()
    }

    /// The body's first two sentences (one, if two would not fit), cut to `max_chars`; the
    /// title when there is no body.
    pub fn summary(&self, max_chars: usize) -> String {
        let source = if self.body.trim().is_empty() {
            &self.title
        } else {
            &self.body
        };
        let mut summary = String::new();
        for sentence in sentences(source).into_iter().take(SUMMARY_SENTENCES) {
            if !summary.is_empty() {
                if summary.chars().count() + 1 + sentence.chars().count() > max_chars {
                    break;
                }
                summary.push(' ');
            }
            summary.push_str(sentence);
        }
        truncate_words(&summary, max_chars)
    }
}

/// Sentences an extractive summary takes at most.
const SUMMARY_SENTENCES: usize = 2;

/// The rest of `line` after `name:` for one of `names` (case-insensitive).
fn field<'a>(line: &'a str, names: &[&str]) -> Option<&'a str> {
    let (head, rest) = line.split_once(':')?;
    let head = head.trim().to_ascii_lowercase();
    names.contains(&head.as_str()).then(|| rest.trim())
}

/// Lowercase, with spaces and dashes as underscores.
fn normalise(value: &str) -> String {
    value.trim().to_lowercase().replace([' ', '-'], "_")
}

/// Sentences of `text`: split after `.`, `!` or `?` followed by whitespace.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (i, (index, c)) in chars.iter().enumerate() {
        let ends = matches!(c, '.' | '!' | '?')
            && chars
                .get(i + 1)
                .is_none_or(|(_, next)| next.is_whitespace());
        if ends {
            let end = index + c.len_utf8();
            let sentence = text[start..end].trim();
            if !sentence.is_empty() {
                out.push(sentence);
            }
            start = end;
        }
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// The first sentence of `text`.
pub fn first_sentence(text: &str) -> &str {
    sentences(text).first().copied().unwrap_or(text)
}

/// `text` cut to at most `max_chars` at a word boundary, with `...` when cut.
pub fn truncate_words(text: &str, max_chars: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let budget = max_chars.saturating_sub(3);
    let cut: String = text.chars().take(budget).collect();
    let cut = match cut.rfind(char::is_whitespace) {
        Some(space) if space > budget / 2 => cut[..space].to_string(),
        _ => cut,
    };
    format!("{}...", cut.trim_end_matches([',', ';', ':', ' ']))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn reads_title_and_body() {
        let a = Analysis::of(
            "Title: Cannot log in\nDescription: Since this morning my password is rejected.\nIt says access denied.",
        );
        assert_eq!(a.title, "Cannot log in");
        assert_eq!(
            a.body,
            "Since this morning my password is rejected. It says access denied."
        );
        let b = Analysis::of("Refund please. I was charged twice for my subscription.");
        assert_eq!(b.title, "Refund please.");
    }

    #[test]
    fn classifies_by_keywords() {
        let categories = strings(&["bug", "billing", "access", "feature_request", "other"]);
        let pick = |text: &str| Analysis::of(text).pick_category(&categories).cloned();
        assert_eq!(
            pick("I was charged twice, I want a refund").as_deref(),
            Some("billing")
        );
        assert_eq!(
            pick("SSO login fails with wrong password").as_deref(),
            Some("access")
        );
        assert_eq!(
            pick("The export crashes with an exception").as_deref(),
            Some("bug")
        );
        assert_eq!(
            pick("Could you add support for dark mode? A feature I wish for").as_deref(),
            Some("feature_request")
        );
        assert_eq!(pick("Hello there").as_deref(), Some("other"));
    }

    #[test]
    fn urgency_sentiment_and_language() {
        let levels = strings(&["low", "medium", "high", "critical"]);
        let outage = Analysis::of("Production is down for all users, urgent!");
        assert_eq!(
            outage.pick_level(&levels).map(String::as_str),
            Some("critical")
        );
        let crash = Analysis::of("The app crashed once when I opened settings");
        assert_eq!(crash.pick_level(&levels).map(String::as_str), Some("high"));
        let question = Analysis::of("Quick question about the docs");
        assert_eq!(
            question.pick_level(&levels).map(String::as_str),
            Some("low")
        );

        assert_eq!(
            Analysis::of("This is unacceptable, I am so frustrated").sentiment_label(),
            "negative"
        );
        assert_eq!(
            Analysis::of("Thanks, great work").sentiment_label(),
            "positive"
        );
        assert_eq!(
            Analysis::of("Der Export ist nicht möglich, bitte helfen").language(),
            "de"
        );
        assert_eq!(Analysis::of("The export is not possible").language(), "en");
    }

    #[test]
    fn keywords_and_summary() {
        let a = Analysis::of(
            "Title: Export fails\nDescription: The CSV export fails. The export button shows an error. We tried twice.",
        );
        assert_eq!(a.keywords(3), vec!["export", "fails", "csv"]);
        assert_eq!(
            a.summary(200),
            "The CSV export fails. The export button shows an error."
        );
        let long = "word ".repeat(100);
        assert!(Analysis::of(&long).summary(50).chars().count() <= 50);
    }
}

#[cfg(test)]
mod field_line_tests {
    use super::*;

    #[test]
    fn another_field_ends_the_description() {
        let analysis = Analysis::of(
            "Title: Export fails\nDescription: The CSV export fails.\nIt shows an error.\nPriority: High\nRelated past tickets:\n- PROJ-1: export broken",
        );
        assert_eq!(analysis.body, "The CSV export fails. It shows an error.");
        assert!(is_field_line("Related past tickets:"));
        assert!(!is_field_line("It failed at 10:30"));
        assert!(!is_field_line("http://example.com"));
    }
}
