//! Imports of JSONL and CSV files into dataset items, one record at a time.
//!
//! JSONL lines may be in any export shape: OpenAI chat (`messages`), Anthropic (`system` +
//! `messages`), Hugging Face chat (`messages`), OpenAI preference (`input`, `preferred_output`,
//! `non_preferred_output`), or Loupe's item JSON (`input{messages, system?, tools?, variables?}`,
//! `expected`). In the chat shapes the trailing assistant messages are the expected output and
//! the rest is the input. An optional `metadata` object is kept.
//!
//! CSV files need a header. The `input_messages` / `expected_messages` columns (JSON, as the CSV
//! export writes them) win over the `input` / `expected` text columns; `system`, `tools` (JSON)
//! and `metadata` (JSON object) are read when present; any other column becomes a metadata
//! entry, and the export's own bookkeeping columns are ignored.
//!
//! A record that cannot be read is reported in [`ImportReport::rejected`] and skipped; the rest
//! are imported. Only unreadable input (bad UTF-8, an I/O error) stops an import.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::str::FromStr;

use model::{DatasetItem, ExpectedSource, ItemInput, Message, Part};
use serde_json::{Map, Value};

use crate::item::{SplitConfig, assign_split, import_item_id, input_fingerprint};
use crate::{Error, chat};

/// The most rejected records listed one by one; the rest are only counted.
pub const MAX_LISTED_REJECTIONS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    Jsonl,
    Csv,
}

impl FromStr for ImportFormat {
    type Err = Error;

    fn from_str(text: &str) -> Result<ImportFormat, Error> {
        match text {
            "jsonl" | "json" | "ndjson" => Ok(ImportFormat::Jsonl),
            "csv" => Ok(ImportFormat::Csv),
            other => Err(Error::UnknownImportFormat(other.to_owned())),
        }
    }
}

/// A record that was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRejected {
    /// 1-based line (JSONL) or record (CSV, not counting the header) number.
    pub record: u64,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImportReport {
    pub n_imported: u64,
    pub n_rejected: u64,
    /// The first [`MAX_LISTED_REJECTIONS`] rejections.
    pub rejected: Vec<ImportRejected>,
}

impl ImportReport {
    fn reject(&mut self, record: u64, reason: String) {
        self.n_rejected += 1;
        if self.rejected.len() < MAX_LISTED_REJECTIONS {
            self.rejected.push(ImportRejected { record, reason });
        }
    }
}

/// Reads `reader` and hands each item to `on_item` as soon as it is read. An error returned by
/// `on_item` stops the import and is returned.
pub fn import<R: BufRead, E: From<Error>>(
    format: ImportFormat,
    reader: R,
    split_config: SplitConfig,
    mut on_item: impl FnMut(DatasetItem) -> Result<(), E>,
) -> Result<ImportReport, E> {
    let mut report = ImportReport::default();
    match format {
        ImportFormat::Jsonl => {
            for (index, line) in reader.lines().enumerate() {
                let line = line.map_err(Error::from)?;
                if line.trim().is_empty() {
                    continue;
                }
                match jsonl_item(&line, split_config) {
                    Ok(item) => {
                        on_item(item)?;
                        report.n_imported += 1;
                    }
                    Err(reason) => report.reject(index as u64 + 1, reason),
                }
            }
        }
        ImportFormat::Csv => {
            let mut csv_reader = csv::ReaderBuilder::new().flexible(false).from_reader(reader);
            let headers = csv_reader.headers().map_err(|e| Error::Csv(e.to_string()))?.clone();
            for (index, record) in csv_reader.records().enumerate() {
                let number = index as u64 + 1;
                let record = match record {
                    Ok(record) => record,
                    Err(e) if e.is_io_error() => return Err(Error::Csv(e.to_string()).into()),
                    Err(e) => {
                        report.reject(number, e.to_string());
                        continue;
                    }
                };
                let fields: BTreeMap<&str, &str> = headers.iter().zip(record.iter()).collect();
                match csv_item(&fields, split_config) {
                    Ok(item) => {
                        on_item(item)?;
                        report.n_imported += 1;
                    }
                    Err(reason) => report.reject(number, reason),
                }
            }
        }
    }
    Ok(report)
}

fn finish_item(
    input: ItemInput,
    expected: Vec<Message>,
    recorded: Vec<Message>,
    metadata: BTreeMap<String, Value>,
    split_config: SplitConfig,
) -> Result<DatasetItem, String> {
    if input.messages.is_empty() {
        return Err("no input messages".to_owned());
    }
    let id = import_item_id(&input, &expected);
    Ok(DatasetItem {
        split: assign_split(&id, split_config),
        id,
        input_fingerprint: input_fingerprint(&input),
        input,
        expected,
        expected_source: ExpectedSource::Imported,
        recorded,
        metadata,
        source: None,
        merged_from: Vec::new(),
    })
}

fn metadata_of(object: &Map<String, Value>) -> Result<BTreeMap<String, Value>, String> {
    match object.get("metadata") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => Ok(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        Some(_) => Err("metadata must be an object".to_owned()),
    }
}

fn array<'a>(object: &'a Map<String, Value>, key: &str) -> Result<&'a [Value], String> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(values)) => Ok(values),
        Some(_) => Err(format!("{key} must be a list")),
    }
}

fn system_parts(value: Option<&Value>) -> Result<Vec<Part>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![Part::Text { content: text.clone() }]),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .map(|block| match block {
                Value::String(text) => Ok(Part::Text { content: text.clone() }),
                other => serde_json::from_value::<Part>(other.clone()).or_else(|_| {
                    match other.get("text").and_then(Value::as_str) {
                        Some(text) => Ok(Part::Text { content: text.to_owned() }),
                        None => Err("unreadable system block".to_owned()),
                    }
                }),
            })
            .collect(),
        Some(_) => Err("system must be a string or a list".to_owned()),
    }
}

/// Splits a conversation into input and expected output: the trailing assistant messages.
fn split_conversation(mut messages: Vec<Message>) -> (Vec<Message>, Vec<Message>) {
    let n_trailing = messages.iter().rev().take_while(|m| m.role == "assistant").count();
    let expected = messages.split_off(messages.len() - n_trailing);
    (messages, expected)
}

fn jsonl_item(line: &str, split_config: SplitConfig) -> Result<DatasetItem, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(object) = value else {
        return Err("a line must be a JSON object".to_owned());
    };
    let metadata = metadata_of(&object)?;

    if object.contains_key("preferred_output") {
        let Some(Value::Object(input)) = object.get("input") else {
            return Err("a preference record needs an input object".to_owned());
        };
        let messages = chat::from_chat(array(input, "messages")?)?;
        let tools = array(input, "tools")?.to_vec();
        let expected = chat::from_chat(array(&object, "preferred_output")?)?;
        let recorded = chat::from_chat(array(&object, "non_preferred_output")?)?;
        let input = ItemInput { system: Vec::new(), messages, tools, variables: BTreeMap::new() };
        return finish_item(input, expected, recorded, metadata, split_config);
    }

    if let Some(Value::Object(input)) = object.get("input") {
        let messages = chat::from_chat(array(input, "messages")?)?;
        let variables = match input.get("variables") {
            Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            _ => BTreeMap::new(),
        };
        let input = ItemInput {
            system: system_parts(input.get("system"))?,
            messages,
            tools: array(input, "tools")?.to_vec(),
            variables,
        };
        let expected = chat::from_chat(array(&object, "expected")?)?;
        return finish_item(input, expected, Vec::new(), metadata, split_config);
    }

    if object.contains_key("messages") {
        let all = chat::from_chat(array(&object, "messages")?)?;
        let (messages, expected) = split_conversation(all);
        let input = ItemInput {
            system: system_parts(object.get("system"))?,
            messages,
            tools: array(&object, "tools")?.to_vec(),
            variables: BTreeMap::new(),
        };
        return finish_item(input, expected, Vec::new(), metadata, split_config);
    }

    Err("unrecognized record: expected messages, input + expected, or a preference pair".to_owned())
}

const CSV_BOOKKEEPING: [&str; 8] = [
    "id",
    "split",
    "expected_source",
    "recorded",
    "source_trace_id",
    "source_span_id",
    "input_fingerprint",
    "variables",
];

fn csv_item(
    fields: &BTreeMap<&str, &str>,
    split_config: SplitConfig,
) -> Result<DatasetItem, String> {
    let get = |key: &str| fields.get(key).copied().filter(|value| !value.is_empty());
    let parse_messages = |key: &str| -> Result<Option<Vec<Message>>, String> {
        match get(key) {
            None => Ok(None),
            Some(text) => {
                let values: Vec<Value> =
                    serde_json::from_str(text).map_err(|e| format!("column {key}: {e}"))?;
                chat::from_chat(&values).map(Some).map_err(|e| format!("column {key}: {e}"))
            }
        }
    };
    let messages = match parse_messages("input_messages")? {
        Some(messages) => messages,
        None => match get("input") {
            Some(text) => vec![Message::text("user", text)],
            None => return Err("no input: fill the input or input_messages column".to_owned()),
        },
    };
    let expected = match parse_messages("expected_messages")? {
        Some(messages) => messages,
        None => {
            get("expected").map(|text| vec![Message::text("assistant", text)]).unwrap_or_default()
        }
    };
    let tools = match get("tools") {
        Some(text) => serde_json::from_str(text).map_err(|e| format!("column tools: {e}"))?,
        None => Vec::new(),
    };
    let mut metadata = match get("metadata") {
        Some(text) => serde_json::from_str(text).map_err(|e| format!("column metadata: {e}"))?,
        None => BTreeMap::new(),
    };
    let known =
        ["input", "input_messages", "expected", "expected_messages", "system", "tools", "metadata"];
    for (key, value) in fields {
        if !known.contains(key) && !CSV_BOOKKEEPING.contains(key) && !value.is_empty() {
            metadata.insert((*key).to_owned(), Value::String((*value).to_owned()));
        }
    }
    let system = get("system").map(|text| vec![Part::Text { content: text.to_owned() }]);
    let input = ItemInput {
        system: system.unwrap_or_default(),
        messages,
        tools,
        variables: BTreeMap::new(),
    };
    finish_item(input, expected, Vec::new(), metadata, split_config)
}

#[cfg(test)]
mod tests;
