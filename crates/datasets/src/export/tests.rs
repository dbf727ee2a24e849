//! Tests for the exports: golden files per format for every `test_data/export/*.items.json`,
//! checked against each format's rules, and round trips through the importer.

use std::collections::HashSet;
use std::path::Path;

use expect_test::{expect, expect_file};
use model::DatasetItem;
use serde_json::Value;

use crate::{ExportContext, ExportFormat, Exporter, ImportFormat, SplitConfig, import};

fn context() -> ExportContext {
    ExportContext {
        dataset: "refunds".to_owned(),
        version: 3,
        exported_at_ns: 1_773_921_600_000_000_000,
    }
}

fn export(format: ExportFormat, items: &[DatasetItem]) -> (String, crate::ExportStats) {
    let mut exporter = Exporter::new(format, &context(), Vec::new()).unwrap();
    for item in items {
        exporter.write_item(item).unwrap();
    }
    let (bytes, stats) = exporter.finish().unwrap();
    (String::from_utf8(bytes).unwrap(), stats)
}

fn load_items(path: &Path) -> Vec<DatasetItem> {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data/export");
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(".items.json"))
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty());
    for input in inputs {
        let items = load_items(&input);
        let stem = input.file_name().unwrap().to_string_lossy().replace(".items.json", "");
        for format in ExportFormat::ALL {
            let (text, stats) = export(format, &items);
            let golden = dir.join(format!("{stem}.{}", format.file_extension()));
            expect_file![golden].assert_eq(&text);
            let n_records = check_format(format, &text);
            assert_eq!(n_records as u64, stats.n_written, "{stem} {}", format.as_str());
            assert_eq!(stats.n_written + stats.n_skipped, items.len() as u64);
        }
    }
}

/// Checks an export against its format's rules; returns the number of records.
fn check_format(format: ExportFormat, text: &str) -> usize {
    match format {
        ExportFormat::Csv => {
            let mut reader = csv::Reader::from_reader(text.as_bytes());
            assert_eq!(reader.headers().unwrap().len(), crate::export::CSV_COLUMNS.len());
            let mut n_records = 0;
            for record in reader.records() {
                record.unwrap();
                n_records += 1;
            }
            n_records
        }
        ExportFormat::EvalYaml => {
            let suite: serde_norway::Value = serde_norway::from_str(text).unwrap();
            let cases = suite["cases"].as_sequence().unwrap();
            for case in cases {
                assert!(case["id"].is_string());
                assert!(case["variables"]["input"].is_string());
                for assertion in case["assertions"].as_sequence().unwrap() {
                    assert!(assertion["type"].is_string());
                }
            }
            cases.len()
        }
        _ => {
            let lines: Vec<Value> =
                text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
            for record in &lines {
                match format {
                    ExportFormat::OpenAi => check_openai_messages(&record["messages"], true),
                    ExportFormat::Preference => {
                        check_openai_messages(&record["input"]["messages"], false);
                        for side in ["preferred_output", "non_preferred_output"] {
                            let output = record[side].as_array().unwrap();
                            assert!(!output.is_empty());
                            assert!(output.iter().all(|m| m["role"] == "assistant"));
                        }
                    }
                    ExportFormat::Anthropic => check_anthropic(record),
                    ExportFormat::HuggingFace => {
                        let messages = record["messages"].as_array().unwrap();
                        assert!(messages.iter().all(|m| m["content"].is_string()));
                        assert_eq!(messages.last().unwrap()["role"], "assistant");
                    }
                    _ => unreachable!(),
                }
            }
            lines.len()
        }
    }
}

/// OpenAI chat rules: known roles, tool results answer an earlier call by id, arguments are
/// JSON strings, and (for training) the conversation ends with the assistant.
fn check_openai_messages(messages: &Value, ends_with_assistant: bool) {
    let messages = messages.as_array().unwrap();
    let mut call_ids = HashSet::new();
    for message in messages {
        let role = message["role"].as_str().unwrap();
        assert!(["system", "developer", "user", "assistant", "tool"].contains(&role), "{role}");
        if let Some(calls) = message["tool_calls"].as_array() {
            for call in calls {
                assert_eq!(call["type"], "function");
                let arguments = call["function"]["arguments"].as_str().unwrap();
                serde_json::from_str::<Value>(arguments).unwrap();
                call_ids.insert(call["id"].as_str().unwrap().to_owned());
            }
        }
        if role == "tool" {
            assert!(call_ids.contains(message["tool_call_id"].as_str().unwrap()));
        }
    }
    if ends_with_assistant {
        assert_eq!(messages.last().unwrap()["role"], "assistant");
    }
}

/// Anthropic rules: user and assistant alternate starting with the user, tool results answer
/// an earlier tool use, no system role inside the messages.
fn check_anthropic(record: &Value) {
    let messages = record["messages"].as_array().unwrap();
    let mut tool_use_ids = HashSet::new();
    for (i, message) in messages.iter().enumerate() {
        let expected_role = if i % 2 == 0 { "user" } else { "assistant" };
        assert_eq!(message["role"], expected_role);
        for block in message["content"].as_array().unwrap() {
            match block["type"].as_str().unwrap() {
                "tool_use" => {
                    assert!(block["input"].is_object());
                    tool_use_ids.insert(block["id"].as_str().unwrap().to_owned());
                }
                "tool_result" => {
                    assert!(tool_use_ids.contains(block["tool_use_id"].as_str().unwrap()));
                }
                "text" | "image" => {}
                other => panic!("unexpected block {other}"),
            }
        }
    }
    assert_eq!(messages.last().unwrap()["role"], "assistant");
}

#[test]
fn empty_dataset_gives_an_empty_suite() {
    let (text, stats) = export(ExportFormat::EvalYaml, &[]);
    expect![[r#"
        name: dataset-refunds-v3
        source: loupe-dataset
        metadata:
          dataset: refunds
          version: 3
          exported_at: 2026-03-19T12:00:00.000Z
        cases: []
    "#]]
    .assert_eq(&text);
    assert_eq!(check_format(ExportFormat::EvalYaml, &text), 0);
    assert_eq!(stats.n_written, 0);
}

#[test]
fn unknown_format_is_a_clear_error() {
    let error = "parquet".parse::<ExportFormat>().unwrap_err();
    expect![[
        r#"unknown export format "parquet": use openai, preference, anthropic, hf, csv or eval"#
    ]]
    .assert_eq(&error.to_string());
}

/// Re-imports an export and renders each item's input and expected output as text.
fn round_trip(format: ExportFormat, import_format: ImportFormat, items: &[DatasetItem]) -> String {
    let (text, _) = export(format, items);
    let mut res = String::new();
    let report =
        import::<_, crate::Error>(import_format, text.as_bytes(), SplitConfig::default(), |item| {
            let roles: Vec<&str> = item.input.messages.iter().map(|m| m.role.as_str()).collect();
            res.push_str(&format!(
                "system={:?} roles={roles:?} expected={:?} recorded={}\n",
                crate::item::parts_text(&item.input.system),
                crate::export::messages_text(&item.expected),
                item.recorded.len(),
            ));
            Ok(())
        })
        .unwrap();
    res.push_str(&format!("imported={} rejected={}\n", report.n_imported, report.n_rejected));
    res
}

#[test]
fn exports_import_back() {
    let items = load_items(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data/export/refunds.items.json"),
    );
    expect![[r#"
        system="" roles=["system", "user"] expected="Refunds are accepted within 30 days of delivery [pol_refund_v7]. Order 4481 qualifies: ₹1,250 will be refunded." recorded=0
        system="" roles=["system", "user", "assistant", "tool"] expected="It is 18°C in Paris." recorded=0
        system="" roles=["user", "assistant", "tool"] expected="{\"order\": 4481, \"refundable\": true}" recorded=0
        imported=3 rejected=0
    "#]]
    .assert_eq(&round_trip(ExportFormat::OpenAi, ImportFormat::Jsonl, &items));
    expect![[r#"
        system="You are a refund assistant. Answer only from the policy documents provided. Cite the policy id." roles=["user"] expected="Refunds are accepted within 30 days of delivery [pol_refund_v7]. Order 4481 qualifies: ₹1,250 will be refunded." recorded=0
        system="Use the tools to answer." roles=["user", "assistant", "tool"] expected="It is 18°C in Paris." recorded=0
        system="" roles=["user", "assistant", "tool"] expected="{\"order\": 4481, \"refundable\": true}" recorded=0
        imported=3 rejected=0
    "#]]
    .assert_eq(&round_trip(ExportFormat::Anthropic, ImportFormat::Jsonl, &items));
    expect![[r#"
        system="" roles=["system", "user"] expected="Refunds are accepted within 30 days of delivery [pol_refund_v7]. Order 4481 qualifies: ₹1,250 will be refunded." recorded=1
        system="" roles=["user", "assistant", "tool"] expected="{\"order\": 4481, \"refundable\": true}" recorded=1
        imported=2 rejected=0
    "#]]
    .assert_eq(&round_trip(ExportFormat::Preference, ImportFormat::Jsonl, &items));
    expect![[r#"
        system="You are a refund assistant. Answer only from the policy documents provided. Cite the policy id." roles=["user"] expected="Refunds are accepted within 30 days of delivery [pol_refund_v7]. Order 4481 qualifies: ₹1,250 will be refunded." recorded=0
        system="" roles=["system", "user", "assistant", "tool"] expected="It is 18°C in Paris." recorded=0
        system="" roles=["user", "assistant", "tool"] expected="{\"order\": 4481, \"refundable\": true}" recorded=0
        system="" roles=["user"] expected="" recorded=0
        imported=4 rejected=0
    "#]]
    .assert_eq(&round_trip(ExportFormat::Csv, ImportFormat::Csv, &items));
}

#[test]
fn csv_round_trip_keeps_messages_exactly() {
    let items = load_items(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data/export/refunds.items.json"),
    );
    let (text, _) = export(ExportFormat::Csv, &items);
    let mut imported = Vec::new();
    import::<_, crate::Error>(ImportFormat::Csv, text.as_bytes(), SplitConfig::default(), |item| {
        imported.push(item);
        Ok(())
    })
    .unwrap();
    for (before, after) in items.iter().zip(&imported) {
        assert_eq!(before.input.messages, after.input.messages);
        assert_eq!(before.expected, after.expected);
        assert_eq!(before.input.tools, after.input.tools);
    }
}

/// Counts bytes and keeps none of them.
#[derive(Default)]
struct CountingSink {
    n_bytes: usize,
}

impl std::io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.n_bytes += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn every_format_writes_each_item_as_it_is_given() {
    let items = load_items(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data/export/refunds.items.json"),
    );
    for format in ExportFormat::ALL {
        let mut exporter = Exporter::new(format, &context(), CountingSink::default()).unwrap();
        for i in 0..2_000 {
            let item = &items[i % 3];
            let before = exporter.writer_mut().n_bytes;
            let written = exporter.write_item(item).unwrap();
            // Nothing is held back: a written item's record reached the writer before the call
            // returned, and a skipped one wrote nothing.
            assert_eq!(exporter.writer_mut().n_bytes > before, written, "{}", format.as_str());
        }
        let (_, stats) = exporter.finish().unwrap();
        let expected_skipped = if format == ExportFormat::Preference { 667 } else { 0 };
        assert_eq!(stats.n_written + stats.n_skipped, 2_000);
        assert_eq!(stats.n_skipped, expected_skipped, "{}", format.as_str());
    }
}
