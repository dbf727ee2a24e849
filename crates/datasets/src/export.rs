//! Streaming dataset exports. An [`Exporter`] writes a format's header when it is made, one
//! record per [`Exporter::write_item`] call, and the footer on [`Exporter::finish`]; nothing is
//! kept between items, so memory stays bounded whatever the dataset's size.
//!
//! | format | one record | items skipped |
//! |---|---|---|
//! | `openai` | `{"messages": [...], "tools"?: [...]}`: chat fine-tuning, expected output as the final assistant turn(s) | no input or no expected output |
//! | `preference` | `{"input": {"messages", "tools"?}, "preferred_output", "non_preferred_output"}` (OpenAI DPO) | no correction, or no recorded output to reject |
//! | `anthropic` | `{"system"?, "messages": [...], "tools"?}`: Anthropic Messages shape | no input or no expected output |
//! | `hf` | `{"messages": [...], "tools"?}`: Hugging Face chat-template shape | no input or no expected output |
//! | `csv` | one row, header first | none |
//! | `eval` | one case of the eval-suite YAML | none |

use std::io::Write;
use std::str::FromStr;

use model::{DatasetItem, ExpectedSource, Message, UnixNanos};
use serde_json::{Map, Value, json};

use crate::assertions::baseline;
use crate::item::parts_text;
use crate::{Error, chat, yaml};

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    OpenAi,
    Preference,
    Anthropic,
    HuggingFace,
    Csv,
    EvalYaml,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 6] = [
        ExportFormat::OpenAi,
        ExportFormat::Preference,
        ExportFormat::Anthropic,
        ExportFormat::HuggingFace,
        ExportFormat::Csv,
        ExportFormat::EvalYaml,
    ];

    /// The name used in URLs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::OpenAi => "openai",
            ExportFormat::Preference => "preference",
            ExportFormat::Anthropic => "anthropic",
            ExportFormat::HuggingFace => "hf",
            ExportFormat::Csv => "csv",
            ExportFormat::EvalYaml => "eval",
        }
    }

    /// The file name ending, e.g. `openai.jsonl`.
    pub fn file_extension(self) -> &'static str {
        match self {
            ExportFormat::OpenAi => "openai.jsonl",
            ExportFormat::Preference => "preference.jsonl",
            ExportFormat::Anthropic => "anthropic.jsonl",
            ExportFormat::HuggingFace => "hf.jsonl",
            ExportFormat::Csv => "csv",
            ExportFormat::EvalYaml => "eval.yaml",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::EvalYaml => "application/yaml",
            _ => "application/jsonl",
        }
    }
}

impl FromStr for ExportFormat {
    type Err = Error;

    fn from_str(text: &str) -> Result<ExportFormat, Error> {
        match text {
            "openai" | "openai-chat" => Ok(ExportFormat::OpenAi),
            "preference" | "dpo" => Ok(ExportFormat::Preference),
            "anthropic" => Ok(ExportFormat::Anthropic),
            "hf" | "huggingface" => Ok(ExportFormat::HuggingFace),
            "csv" => Ok(ExportFormat::Csv),
            "eval" | "eval-yaml" | "yaml" => Ok(ExportFormat::EvalYaml),
            other => Err(Error::UnknownExportFormat(other.to_owned())),
        }
    }
}

/// What is being exported, for the formats that name it (the eval suite's header).
#[derive(Debug, Clone, PartialEq)]
pub struct ExportContext {
    pub dataset: String,
    pub version: u32,
    pub exported_at_ns: UnixNanos,
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportStats {
    pub n_written: u64,
    /// Items the format cannot express (see the module docs).
    pub n_skipped: u64,
}

/// The CSV columns, in order.
pub const CSV_COLUMNS: [&str; 14] = [
    "id",
    "split",
    "system",
    "input",
    "expected",
    "expected_source",
    "recorded",
    "input_messages",
    "expected_messages",
    "tools",
    "metadata",
    "source_trace_id",
    "source_span_id",
    "input_fingerprint",
];

/// A streaming writer of one export.
pub struct Exporter<W: Write> {
    format: ExportFormat,
    writer: W,
    stats: ExportStats,
}

impl<W: Write> Exporter<W> {
    /// Starts an export, writing the format's header.
    pub fn new(
        format: ExportFormat,
        context: &ExportContext,
        mut writer: W,
    ) -> Result<Exporter<W>, Error> {
        match format {
            ExportFormat::Csv => {
                write_csv_record(&mut writer, CSV_COLUMNS.iter().map(|c| c.to_string()))?
            }
            ExportFormat::EvalYaml => {
                let name = format!("dataset-{}-v{}", context.dataset, context.version);
                write!(
                    writer,
                    "name: {}\nsource: loupe-dataset\nmetadata:\n  dataset: {}\n  version: {}\n  \
                     exported_at: {}\ncases:",
                    yaml::string(&name),
                    yaml::string(&context.dataset),
                    context.version,
                    crate::format_rfc3339_millis(context.exported_at_ns),
                )?;
            }
            _ => {}
        }
        Ok(Exporter { format, writer, stats: ExportStats::default() })
    }

    /// Writes one item; returns `false` when the format cannot express it and it was skipped.
    pub fn write_item(&mut self, item: &DatasetItem) -> Result<bool, Error> {
        let written = match self.format {
            ExportFormat::OpenAi => write_json_line(&mut self.writer, openai_record(item))?,
            ExportFormat::Preference => write_json_line(&mut self.writer, preference_record(item))?,
            ExportFormat::Anthropic => write_json_line(&mut self.writer, anthropic_record(item))?,
            ExportFormat::HuggingFace => write_json_line(&mut self.writer, hf_record(item))?,
            ExportFormat::Csv => {
                write_csv_record(&mut self.writer, csv_record(item))?;
                true
            }
            ExportFormat::EvalYaml => {
                self.writer.write_all(eval_case(item).as_bytes())?;
                true
            }
        };
        if written {
            self.stats.n_written += 1;
        } else {
            self.stats.n_skipped += 1;
        }
        Ok(written)
    }

    /// The writer, e.g. to drain a `Vec<u8>` buffer into a response body between items.
    pub fn writer_mut(&mut self) -> &mut W {
        &mut self.writer
    }

    pub fn stats(&self) -> ExportStats {
        self.stats
    }

    /// Writes the footer and flushes; returns the writer and what was written.
    pub fn finish(mut self) -> Result<(W, ExportStats), Error> {
        if self.format == ExportFormat::EvalYaml {
            let end = if self.stats.n_written == 0 { " []\n" } else { "\n" };
            self.writer.write_all(end.as_bytes())?;
        }
        self.writer.flush()?;
        Ok((self.writer, self.stats))
    }
}

fn write_json_line<W: Write>(writer: &mut W, record: Option<Value>) -> Result<bool, Error> {
    let Some(record) = record else {
        return Ok(false);
    };
    serde_json::to_writer(&mut *writer, &record).map_err(std::io::Error::from)?;
    writer.write_all(b"\n")?;
    Ok(true)
}

fn write_csv_record<W: Write>(
    writer: &mut W,
    fields: impl IntoIterator<Item = String>,
) -> Result<(), Error> {
    let mut csv_writer = csv::WriterBuilder::new().has_headers(false).from_writer(writer);
    csv_writer.write_record(fields).map_err(|e| Error::Csv(e.to_string()))?;
    csv_writer.flush()?;
    Ok(())
}

fn trainable(item: &DatasetItem) -> bool {
    !item.input.messages.is_empty() && !item.expected.is_empty()
}

fn with_tools(mut record: Map<String, Value>, tools: Vec<Value>) -> Value {
    if !tools.is_empty() {
        record.insert("tools".to_owned(), Value::Array(tools));
    }
    Value::Object(record)
}

fn openai_record(item: &DatasetItem) -> Option<Value> {
    if !trainable(item) {
        return None;
    }
    let messages = chat::to_openai(&item.input.system, &[&item.input.messages, &item.expected]);
    let mut record = Map::new();
    record.insert("messages".to_owned(), Value::Array(messages));
    Some(with_tools(record, chat::openai_tools(&item.input.tools)))
}

fn preference_record(item: &DatasetItem) -> Option<Value> {
    if item.expected_source == ExpectedSource::Recorded
        || item.recorded.is_empty()
        || !trainable(item)
    {
        return None;
    }
    let messages = chat::to_openai(&item.input.system, &[&item.input.messages]);
    let mut input = Map::new();
    input.insert("messages".to_owned(), Value::Array(messages));
    let input = with_tools(input, chat::openai_tools(&item.input.tools));
    Some(json!({
        "input": input,
        "preferred_output": chat::to_openai(&[], &[&item.expected]),
        "non_preferred_output": chat::to_openai(&[], &[&item.recorded]),
    }))
}

fn anthropic_record(item: &DatasetItem) -> Option<Value> {
    if !trainable(item) {
        return None;
    }
    let (system, messages) =
        chat::to_anthropic(&item.input.system, &[&item.input.messages, &item.expected]);
    let mut record = Map::new();
    if !system.is_empty() {
        record.insert("system".to_owned(), Value::String(system));
    }
    record.insert("messages".to_owned(), Value::Array(messages));
    Some(with_tools(record, chat::anthropic_tools(&item.input.tools)))
}

fn hf_record(item: &DatasetItem) -> Option<Value> {
    if !trainable(item) {
        return None;
    }
    let messages = chat::to_hf(&item.input.system, &[&item.input.messages, &item.expected]);
    let mut record = Map::new();
    record.insert("messages".to_owned(), Value::Array(messages));
    Some(with_tools(record, chat::openai_tools(&item.input.tools)))
}

/// The text of the messages, one message per line block.
pub(crate) fn messages_text(messages: &[Message]) -> String {
    messages
        .iter()
        .map(Message::text_content)
        .filter(|text| !text.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

fn json_text<T: serde::Serialize>(value: &T) -> String {
    // Serializing model types cannot fail: they have string keys and no fallible impls.
    serde_json::to_string(value).unwrap_or_default()
}

fn csv_record(item: &DatasetItem) -> Vec<String> {
    let (trace_id, span_id) = match &item.source {
        Some(source) => (source.trace_id.to_hex(), source.span_id.to_hex()),
        None => (String::new(), String::new()),
    };
    let json_or_empty = |empty: bool, text: String| if empty { String::new() } else { text };
    vec![
        item.id.clone(),
        item.split.as_str().to_owned(),
        parts_text(&item.input.system),
        messages_text(&item.input.messages),
        messages_text(&item.expected),
        item.expected_source.as_str().to_owned(),
        messages_text(&item.recorded),
        json_text(&item.input.messages),
        json_text(&item.expected),
        json_or_empty(item.input.tools.is_empty(), json_text(&item.input.tools)),
        json_or_empty(item.metadata.is_empty(), json_text(&item.metadata)),
        trace_id,
        span_id,
        item.input_fingerprint.clone(),
    ]
}

/// One case of the eval-suite YAML, starting with a newline (the header ends with `cases:`).
fn eval_case(item: &DatasetItem) -> String {
    let input = messages_text(&item.input.messages);
    let expected = messages_text(&item.expected);
    let correction =
        (item.expected_source != ExpectedSource::Recorded).then_some(expected.as_str());
    let assertions = baseline((!item.expected.is_empty()).then_some(expected.as_str()), correction);
    let mut res = format!(
        "\n  - id: {}\n    variables:\n      input: {}\n",
        yaml::string(&item.id),
        yaml::string(&input)
    );
    let system = parts_text(&item.input.system);
    if !system.is_empty() {
        res.push_str(&format!("      system: {}\n", yaml::string(&system)));
    }
    for (name, value) in &item.input.variables {
        if name != "input" && name != "system" {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            res.push_str(&format!("      {}: {}\n", yaml::string(name), yaml::string(&text)));
        }
    }
    if assertions.is_empty() {
        res.push_str("    assertions: []\n");
    } else {
        res.push_str("    assertions:\n");
        for assertion in &assertions {
            assertion.write_yaml(&mut res, 6);
        }
    }
    res.push_str(&format!(
        "    metadata:\n      split: {}\n      expected_source: {}\n",
        item.split.as_str(),
        item.expected_source.as_str()
    ));
    if let Some(source) = &item.source {
        res.push_str(&format!(
            "      trace_id: {}\n      span_id: {}\n",
            yaml::string(&source.trace_id.to_hex()),
            yaml::string(&source.span_id.to_hex())
        ));
    }
    res.pop();
    res
}

#[cfg(test)]
mod tests;
