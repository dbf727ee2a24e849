//! Baseline assertions for an eval case, generated from a known-good output, following the
//! toad-eye export rules: `max_length` = ceil(1.5 × the output's length in UTF-16 code units),
//! `not_contains` for each refusal phrase when the output did not refuse, `is_json: true` when
//! the output parses as JSON (bare scalars included, as `JSON.parse` accepts them), and, where a
//! correction exists, `equals` (for a short single-line or JSON correction) or `contains` (for a
//! longer one) of the correction.

use std::fmt::Write as _;

use crate::yaml;

/// Lower-case phrases that mark a refusal; matched case-insensitively. The first is toad-eye's
/// only marker.
pub(crate) const REFUSAL_PHRASES: [&str; 4] = ["i cannot", "i can't", "i am unable", "i'm unable"];

/// Corrections up to this many UTF-16 units on one line are checked with `equals`.
const EQUALS_MAX_LEN: usize = 80;

/// One assertion of an eval case.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Assertion {
    MaxLength(usize),
    NotContains(&'static str),
    IsJson,
    Equals(String),
    Contains(String),
}

impl Assertion {
    /// The assertion as a YAML sequence entry at `indent` spaces.
    pub(crate) fn write_yaml(&self, out: &mut String, indent: usize) {
        let pad = " ".repeat(indent);
        let (kind, value) = match self {
            Assertion::MaxLength(n) => ("max_length", n.to_string()),
            Assertion::NotContains(phrase) => ("not_contains", yaml::string(phrase)),
            Assertion::IsJson => ("is_json", "true".to_owned()),
            Assertion::Equals(text) => ("equals", yaml::string(text)),
            Assertion::Contains(text) => ("contains", yaml::string(text)),
        };
        // Writing to a `String` cannot fail.
        let _ = write!(out, "{pad}- type: {kind}\n{pad}  value: {value}\n");
    }
}

/// Whether `text` contains a refusal phrase.
pub(crate) fn refuses(text: &str) -> bool {
    let lower = text.to_lowercase().replace('\u{2019}', "'");
    REFUSAL_PHRASES.iter().any(|phrase| lower.contains(phrase))
}

/// The assertions for a case whose known-good output is `output` (`None` when nothing was
/// recorded, which gives none), plus the correction's check when there is one.
pub(crate) fn baseline(output: Option<&str>, correction: Option<&str>) -> Vec<Assertion> {
    let mut res = Vec::new();
    let Some(output) = output else {
        return res;
    };
    let length = output.encode_utf16().count();
    res.push(Assertion::MaxLength((length * 3).div_ceil(2)));
    if !refuses(output) {
        res.extend(REFUSAL_PHRASES.iter().map(|phrase| Assertion::NotContains(phrase)));
    }
    if serde_json::from_str::<serde_json::Value>(output.trim()).is_ok() {
        res.push(Assertion::IsJson);
    }
    if let Some(correction) = correction.map(str::trim).filter(|c| !c.is_empty()) {
        let short =
            correction.encode_utf16().count() <= EQUALS_MAX_LEN && !correction.contains('\n');
        let json = serde_json::from_str::<serde_json::Value>(correction).is_ok();
        if short || json {
            res.push(Assertion::Equals(correction.to_owned()));
        } else {
            res.push(Assertion::Contains(correction.to_owned()));
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toad_eye_rules() {
        let check = |output: Option<&str>, correction: Option<&str>| {
            baseline(output, correction)
                .iter()
                .map(|a| format!("{a:?}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        // "4" parses as JSON, as JSON.parse would; ceil(1 * 1.5) = 2.
        assert_eq!(
            check(Some("4"), None),
            r#"MaxLength(2) NotContains("i cannot") NotContains("i can't") NotContains("i am unable") NotContains("i'm unable") IsJson"#
        );
        // A refusal gets no not_contains; "₹" and "é" are one UTF-16 unit each, "😀" two.
        assert_eq!(check(Some("I CANNOT pay ₹é😀"), None), "MaxLength(26)");
        assert_eq!(check(None, Some("x")), "");
        assert_eq!(
            check(Some("I can’t help"), Some("Refund approved.")),
            r#"MaxLength(18) Equals("Refund approved.")"#
        );
    }
}
