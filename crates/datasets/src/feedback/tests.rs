//! Tests for feedback validation: what is accepted, and the error for everything that is not.

use expect_test::{Expect, expect};
use model::{
    Feedback, FeedbackContent, FeedbackSource, FeedbackTarget, Message, Part, ProjectId, Rating,
    ScoreConfig, ScoreValue, TraceId,
};

use crate::{apply_edit, parse_rating, parse_score_arg, validate_feedback, validate_score_config};

fn configs() -> Vec<ScoreConfig> {
    serde_json::from_str(
        r#"[
            {"name": "helpfulness", "type": "numeric", "min": 0, "max": 1},
            {"name": "tone", "type": "categorical", "values": ["polite", "rude"]},
            {"name": "policy_correct", "type": "boolean"}
        ]"#,
    )
    .unwrap()
}

/// Parses feedback content from JSON (as the API receives it) and validates it.
#[track_caller]
fn check(content_json: &str, expect: Expect) {
    let res = match serde_json::from_str::<FeedbackContent>(content_json) {
        Err(e) => format!("parse error: {e}"),
        Ok(content) => match validate_feedback(&content, &configs()) {
            Ok(()) => "ok".to_owned(),
            Err(e) => format!("{:?}: {e}", e.code()),
        },
    };
    expect.assert_eq(&res);
}

#[test]
fn accepted_feedback() {
    check(r#"{"rating": "down"}"#, expect!["ok"]);
    check(r#"{"rating": 4, "tags": ["refund"], "comment": "cites a draft"}"#, expect!["ok"]);
    check(
        r#"{"scores": {"helpfulness": 0.2, "tone": "polite", "policy_correct": false}}"#,
        expect!["ok"],
    );
    check(
        r#"{"correction": [{"role": "assistant", "parts": [{"type": "text", "content": "Refunds are accepted within 30 days."}]}]}"#,
        expect!["ok"],
    );
}

#[test]
fn rejected_feedback() {
    check(
        r#"{}"#,
        expect![
            "BadRequest: empty feedback: give a rating, a score, a correction, a tag or a comment"
        ],
    );
    check(
        r#"{"rating": 7}"#,
        expect![[
            r#"parse error: invalid rating 7: use "up", "down" or a number from 1 to 5 at line 1 column 13"#
        ]],
    );
    check(
        r#"{"rating": "meh"}"#,
        expect![[
            r#"parse error: invalid rating "meh": use "up", "down" or a number from 1 to 5 at line 1 column 17"#
        ]],
    );
    check(
        r#"{"scores": {"helpfulness": 1.5}}"#,
        expect![[
            r#"BadRequest: invalid value 1.5 for score "helpfulness": must be between 0 and 1"#
        ]],
    );
    check(
        r#"{"scores": {"helpfulness": "high"}}"#,
        expect![[
            r#"BadRequest: invalid value "high" for score "helpfulness": must be a number between 0 and 1"#
        ]],
    );
    check(
        r#"{"scores": {"tone": "snarky"}}"#,
        expect![[
            r#"BadRequest: invalid value "snarky" for score "tone": must be one of "polite", "rude""#
        ]],
    );
    check(
        r#"{"scores": {"policy_correct": 1}}"#,
        expect![[
            r#"BadRequest: invalid value 1 for score "policy_correct": must be true or false"#
        ]],
    );
    check(
        r#"{"scores": {"accuracy": 1}}"#,
        expect![[
            r#"BadRequest: unknown score "accuracy": define it first with a score config (defined: helpfulness, tone, policy_correct)"#
        ]],
    );
    check(r#"{"correction": []}"#, expect!["BadRequest: malformed correction: it has no messages"]);
    check(
        r#"{"correction": [{"role": "user", "parts": [{"type": "text", "content": "x"}]}]}"#,
        expect![[
            r#"BadRequest: malformed correction: message 0 has role "user"; a correction is the call's output, so its messages are assistant (or tool) messages"#
        ]],
    );
    check(
        r#"{"correction": [{"role": "assistant", "parts": [{"type": "text", "content": "  "}]}]}"#,
        expect![
            "BadRequest: malformed correction: the last message has no text, tool call or media: an empty output cannot be a correction"
        ],
    );
    check(
        r#"{"correction": [{"role": "assistant", "parts": []}]}"#,
        expect!["BadRequest: malformed correction: message 0 has no parts"],
    );
    check(
        r#"{"correction": "just text"}"#,
        expect![[
            r#"parse error: invalid type: string "just text", expected a sequence at line 1 column 26"#
        ]],
    );
    check(
        r#"{"tags": [""]}"#,
        expect![[
            r#"BadRequest: invalid tag "": use 1 to 64 characters without control characters"#
        ]],
    );
}

#[test]
fn score_configs() {
    let check_config = |json: &str| -> String {
        match serde_json::from_str::<ScoreConfig>(json) {
            Err(e) => format!("parse error: {e}"),
            Ok(config) => match validate_score_config(&config) {
                Ok(()) => "ok".to_owned(),
                Err(e) => e.to_string(),
            },
        }
    };
    let res = [
        r#"{"name": "helpfulness", "type": "numeric", "min": 0, "max": 1}"#,
        r#"{"name": "helpfulness", "type": "numeric", "min": 1, "max": 1}"#,
        r#"{"name": "tone", "type": "categorical", "values": []}"#,
        r#"{"name": "tone", "type": "categorical", "values": ["a", "a"]}"#,
        r#"{"name": "has space", "type": "boolean"}"#,
        r#"{"name": "x", "type": "stars"}"#,
    ]
    .map(check_config)
    .join("\n");
    expect![[r#"
        ok
        invalid score config "helpfulness": min (1) must be less than max (1)
        invalid score config "tone": a categorical score needs at least one value
        invalid score config "tone": value "a" is listed twice
        invalid score config "has space": a name is 1 to 64 letters, digits, '_' or '-'
        parse error: unknown variant `stars`, expected one of `numeric`, `categorical`, `boolean` at line 1 column 30"#]]
    .assert_eq(&res);
}

#[test]
fn cli_arguments() {
    assert_eq!(parse_rating("down").unwrap(), Rating::Down);
    assert_eq!(parse_rating("4").unwrap(), Rating::Stars(4));
    expect![[r#"invalid rating "6": use up, down or a number from 1 to 5"#]]
        .assert_eq(&parse_rating("6").unwrap_err().to_string());
    assert_eq!(
        parse_score_arg("helpfulness=0.2").unwrap(),
        ("helpfulness".to_owned(), ScoreValue::Number(0.2))
    );
    assert_eq!(
        parse_score_arg("tone = polite").unwrap(),
        ("tone".to_owned(), ScoreValue::Category("polite".to_owned()))
    );
    assert_eq!(
        parse_score_arg("policy_correct=false").unwrap(),
        ("policy_correct".to_owned(), ScoreValue::Bool(false))
    );
    expect![[r#"invalid score argument "helpfulness": write NAME=VALUE, e.g. helpfulness=0.8"#]]
        .assert_eq(&parse_score_arg("helpfulness").unwrap_err().to_string());
}

#[test]
fn edits_keep_history() {
    let mut feedback = Feedback {
        id: "fb_1".to_owned(),
        project: ProjectId::default_project(),
        target: FeedbackTarget::Trace {
            trace_id: TraceId::from_hex("48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f").unwrap(),
        },
        content: FeedbackContent { rating: Some(Rating::Down), ..FeedbackContent::default() },
        source: FeedbackSource::Api,
        author: Some("bot".to_owned()),
        created_ns: 10,
        updated_ns: 10,
        history: Vec::new(),
    };
    let correction = vec![Message {
        role: "assistant".to_owned(),
        parts: vec![Part::Text { content: "Refunds within 30 days.".to_owned() }],
        name: None,
        finish_reason: None,
    }];
    apply_edit(
        &mut feedback,
        FeedbackContent {
            rating: Some(Rating::Stars(2)),
            correction: Some(correction),
            ..FeedbackContent::default()
        },
        FeedbackSource::Human,
        Some("ana".to_owned()),
        20,
    );
    expect![[r#"
        {
          "id": "fb_1",
          "project": "default",
          "target": {
            "kind": "trace",
            "trace_id": "48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f"
          },
          "rating": 2,
          "correction": [
            {
              "role": "assistant",
              "parts": [
                {
                  "type": "text",
                  "content": "Refunds within 30 days."
                }
              ]
            }
          ],
          "source": "human",
          "author": "ana",
          "created_ns": 10,
          "updated_ns": 20,
          "history": [
            {
              "content": {
                "rating": "down"
              },
              "source": "api",
              "author": "bot",
              "time_ns": 10
            }
          ]
        }"#]]
    .assert_eq(&serde_json::to_string_pretty(&feedback).unwrap());
    let back: Feedback = serde_json::from_str(&serde_json::to_string(&feedback).unwrap()).unwrap();
    assert_eq!(back, feedback);
}
