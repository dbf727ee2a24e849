//! Checking feedback against the annotation schema, and editing it with history.
//!
//! A score must be defined by a [`ScoreConfig`] before it is used, and its value must fit the
//! config: a number inside a numeric score's range, one of a categorical score's values, a
//! boolean for a boolean score. A correction is the improved output of the call, in the normalized
//! message shape: a non-empty list of `assistant` (or `tool`) messages ending with an
//! `assistant` message that says something.

use model::{
    Feedback, FeedbackContent, FeedbackRevision, FeedbackSource, Message, Part, Rating,
    ScoreConfig, ScoreKind, ScoreValue, UnixNanos,
};

use crate::Error;

/// The longest comment accepted, in characters.
pub const MAX_COMMENT_CHARS: usize = 20_000;

/// Checks a score config: a usable name, a non-empty finite range, distinct non-empty values.
pub fn validate_score_config(config: &ScoreConfig) -> Result<(), Error> {
    let invalid = |reason: &str| Error::InvalidScoreConfig {
        name: config.name.clone(),
        reason: reason.to_owned(),
    };
    if !is_valid_score_name(&config.name) {
        return Err(invalid("a name is 1 to 64 letters, digits, '_' or '-'"));
    }
    match &config.kind {
        ScoreKind::Numeric { min, max } => {
            if !min.is_finite() || !max.is_finite() {
                return Err(invalid("min and max must be finite numbers"));
            }
            if min >= max {
                return Err(invalid(&format!("min ({min}) must be less than max ({max})")));
            }
        }
        ScoreKind::Categorical { values } => {
            if values.is_empty() {
                return Err(invalid("a categorical score needs at least one value"));
            }
            for (i, value) in values.iter().enumerate() {
                if value.trim().is_empty() {
                    return Err(invalid("categorical values must not be empty"));
                }
                if values[..i].contains(value) {
                    return Err(invalid(&format!("value {value:?} is listed twice")));
                }
            }
        }
        ScoreKind::Boolean => {}
    }
    Ok(())
}

fn is_valid_score_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks a feedback entry's content against the project's score configs.
pub fn validate_feedback(content: &FeedbackContent, configs: &[ScoreConfig]) -> Result<(), Error> {
    if content.is_empty() {
        return Err(Error::EmptyFeedback);
    }
    if let Some(Rating::Stars(n)) = content.rating
        && !(1..=5).contains(&n)
    {
        return Err(Error::InvalidRating(n.to_string()));
    }
    for (name, value) in &content.scores {
        let Some(config) = configs.iter().find(|config| &config.name == name) else {
            let defined = if configs.is_empty() {
                "none".to_owned()
            } else {
                configs.iter().map(|config| config.name.as_str()).collect::<Vec<_>>().join(", ")
            };
            return Err(Error::UnknownScore { name: name.clone(), defined });
        };
        check_score(config, value)?;
    }
    if let Some(correction) = &content.correction {
        validate_correction(correction)?;
    }
    for tag in &content.tags {
        let n_chars = tag.chars().count();
        if tag.trim().is_empty() || n_chars > 64 || tag.chars().any(char::is_control) {
            return Err(Error::InvalidTag(tag.clone()));
        }
    }
    if let Some(comment) = &content.comment {
        let n_chars = comment.chars().count();
        if n_chars > MAX_COMMENT_CHARS {
            return Err(Error::CommentTooLong { n_chars, max: MAX_COMMENT_CHARS });
        }
    }
    Ok(())
}

fn check_score(config: &ScoreConfig, value: &ScoreValue) -> Result<(), Error> {
    let invalid = |reason: String| Error::InvalidScore {
        name: config.name.clone(),
        value: value.to_string(),
        reason,
    };
    match (&config.kind, value) {
        (ScoreKind::Numeric { min, max }, ScoreValue::Number(n)) => {
            if !n.is_finite() || n < min || n > max {
                return Err(invalid(format!("must be between {min} and {max}")));
            }
        }
        (ScoreKind::Numeric { min, max }, _) => {
            return Err(invalid(format!("must be a number between {min} and {max}")));
        }
        (ScoreKind::Categorical { values }, ScoreValue::Category(c)) => {
            if !values.contains(c) {
                return Err(invalid(format!("must be one of {}", quoted_list(values))));
            }
        }
        (ScoreKind::Categorical { values }, _) => {
            return Err(invalid(format!("must be one of {}", quoted_list(values))));
        }
        (ScoreKind::Boolean, ScoreValue::Bool(_)) => {}
        (ScoreKind::Boolean, _) => return Err(invalid("must be true or false".to_owned())),
    }
    Ok(())
}

fn quoted_list(values: &[String]) -> String {
    values.iter().map(|value| format!("{value:?}")).collect::<Vec<_>>().join(", ")
}

/// Checks that a correction can stand in for a recorded output.
pub fn validate_correction(messages: &[Message]) -> Result<(), Error> {
    let malformed = |reason: String| Error::MalformedCorrection(reason);
    let Some(last) = messages.last() else {
        return Err(malformed("it has no messages".to_owned()));
    };
    for (i, message) in messages.iter().enumerate() {
        if message.role != "assistant" && message.role != "tool" {
            return Err(malformed(format!(
                "message {i} has role {:?}; a correction is the call's output, so its messages \
                 are assistant (or tool) messages",
                message.role
            )));
        }
        if message.parts.is_empty() {
            return Err(malformed(format!("message {i} has no parts")));
        }
        for part in &message.parts {
            if let Part::ToolCall { name, .. } = part
                && name.trim().is_empty()
            {
                return Err(malformed(format!("message {i} has a tool call without a name")));
            }
        }
    }
    if last.role != "assistant" {
        return Err(malformed("the last message must be an assistant message".to_owned()));
    }
    let says_something = last.parts.iter().any(|part| match part {
        Part::Text { content } => !content.trim().is_empty(),
        Part::ToolCall { .. } | Part::Media { .. } => true,
        _ => false,
    });
    if !says_something {
        return Err(malformed(
            "the last message has no text, tool call or media: an empty output cannot be a \
             correction"
                .to_owned(),
        ));
    }
    Ok(())
}

/// A correction given as plain text: one assistant message.
pub fn correction_from_text(text: &str) -> Vec<Message> {
    vec![Message::text("assistant", text)]
}

/// Parses a rating as the CLI and forms write it: `up`, `down`, or 1 to 5.
pub fn parse_rating(text: &str) -> Result<Rating, Error> {
    match text.trim().to_ascii_lowercase().as_str() {
        "up" | "thumbs_up" | "+1" | "good" => Ok(Rating::Up),
        "down" | "thumbs_down" | "-1" | "bad" => Ok(Rating::Down),
        other => match other.parse::<u8>() {
            Ok(n) if (1..=5).contains(&n) => Ok(Rating::Stars(n)),
            _ => Err(Error::InvalidRating(text.to_owned())),
        },
    }
}

/// Parses `NAME=VALUE`: `true`/`false` are booleans, numbers are numbers, anything else is a
/// category.
pub fn parse_score_arg(text: &str) -> Result<(String, ScoreValue), Error> {
    let Some((name, value)) = text.split_once('=') else {
        return Err(Error::InvalidScoreArg(text.to_owned()));
    };
    let (name, value) = (name.trim(), value.trim());
    if name.is_empty() || value.is_empty() {
        return Err(Error::InvalidScoreArg(text.to_owned()));
    }
    let value = match value {
        "true" => ScoreValue::Bool(true),
        "false" => ScoreValue::Bool(false),
        _ => match value.parse::<f64>() {
            Ok(n) if n.is_finite() => ScoreValue::Number(n),
            _ => ScoreValue::Category(value.to_owned()),
        },
    };
    Ok((name.to_owned(), value))
}

/// Replaces a feedback entry's content, keeping what it said before in its history.
pub fn apply_edit(
    feedback: &mut Feedback,
    content: FeedbackContent,
    source: FeedbackSource,
    author: Option<String>,
    time_ns: UnixNanos,
) {
    let previous = FeedbackRevision {
        content: std::mem::replace(&mut feedback.content, content),
        source: feedback.source,
        author: feedback.author.take(),
        time_ns: feedback.updated_ns,
    };
    feedback.history.push(previous);
    feedback.source = source;
    feedback.author = author;
    feedback.updated_ns = time_ns;
}

#[cfg(test)]
mod tests;
