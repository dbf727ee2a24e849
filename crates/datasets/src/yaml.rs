//! A small YAML writer for the eval-suite files: block mappings and sequences of strings,
//! numbers and booleans, written a case at a time so a suite of any size streams.
//!
//! Strings are written plain only when they cannot be read as anything but that string (no
//! YAML indicators, no leading digit or sign, not a YAML 1.1 boolean or null word); everything
//! else is double-quoted with escapes, which every YAML 1.1 and 1.2 reader accepts.

/// A YAML scalar for `text`.
pub(crate) fn string(text: &str) -> String {
    if is_plain_safe(text) { text.to_owned() } else { quoted(text) }
}

fn is_plain_safe(text: &str) -> bool {
    const WORDS: [&str; 13] = [
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", "nan", "inf", "infinity",
    ];
    let Some(first) = text.chars().next() else {
        return false;
    };
    if !first.is_ascii_alphabetic() && first != '_' && first != '/' {
        return false;
    }
    if text.ends_with(' ') || text.contains("  ") {
        return false;
    }
    if WORDS.iter().any(|word| word.eq_ignore_ascii_case(text)) {
        return false;
    }
    text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '-' | '.' | '/'))
}

/// A double-quoted YAML scalar. Escapes quotes, backslashes, control characters and the
/// characters YAML 1.1 treats as line breaks.
pub(crate) fn quoted(text: &str) -> String {
    let mut res = String::with_capacity(text.len() + 2);
    res.push('"');
    for c in text.chars() {
        match c {
            '"' => res.push_str("\\\""),
            '\\' => res.push_str("\\\\"),
            '\n' => res.push_str("\\n"),
            '\t' => res.push_str("\\t"),
            '\r' => res.push_str("\\r"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                res.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => res.push(c),
        }
    }
    res.push('"');
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_only_when_unambiguous() {
        let rendered: Vec<String> = [
            "gpt-4o-mini",
            "i cannot",
            "48f9c3e1",
            "true",
            "No",
            "",
            "a: b",
            "say \"hi\"\nnow",
            "₹1,250",
            "-dash",
            "trailing ",
        ]
        .iter()
        .map(|text| string(text))
        .collect();
        expect_test::expect![[r#"
            [
                "gpt-4o-mini",
                "i cannot",
                "\"48f9c3e1\"",
                "\"true\"",
                "\"No\"",
                "\"\"",
                "\"a: b\"",
                "\"say \\\"hi\\\"\\nnow\"",
                "\"₹1,250\"",
                "\"-dash\"",
                "\"trailing \"",
            ]
        "#]]
        .assert_debug_eq(&rendered);
    }
}
