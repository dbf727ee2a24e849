//! The `[pipeline.price]` section of `loupe.toml`, the price file format, and the validated
//! price table.

use std::collections::HashMap;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Deserialize;

use crate::Error;

/// The provider of entries that apply whatever the span's provider.
pub(crate) const ANY_PROVIDER: &str = "any";

/// The built-in price table, shipped with the binary.
pub const BUILTIN_PRICES: &str = include_str!("prices.toml");

/// Cost per span from a price table: USD per million tokens, by provider and model pattern.
/// The built-in table (`crates/pipeline/src/price/prices.toml`) covers current OpenAI, Anthropic,
/// Google, Mistral, DeepSeek and xAI models and common open models served by API; entries here
/// are added to it, and an entry with the same `provider` and `pattern` as a built-in one
/// replaces it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPriceConfig {
    /// Compute costs. Default: `true`.
    pub enabled: Option<bool>,
    /// Use the built-in table. Default: `true`.
    pub builtin: Option<bool>,
    /// Extra or overriding prices, in the same shape as the built-in file's `[[model]]` entries.
    #[serde(default)]
    pub models: Vec<RawModelPrice>,
}

/// One price entry (a `[[model]]` of the price file or of `[[pipeline.price.models]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModelPrice {
    /// The vendor whose price this is: `openai`, `anthropic`, `google`, `mistral`, `deepseek`,
    /// `xai`, `groq`, `together`, or any provider name your spans carry.
    pub provider: String,
    /// The model name, matched without regard to case; `*` matches any run of characters. A
    /// dated snapshot (`gpt-4o-mini-2024-07-18`) also matches its family (`gpt-4o-mini`).
    pub pattern: String,
    /// The date (`YYYY-MM-DD`, UTC) from which this price applies. Default: `1970-01-01`.
    pub effective: Option<String>,
    /// USD per million input tokens (the uncached ones when the next two are set).
    pub input: PriceValue,
    /// USD per million output tokens.
    pub output: PriceValue,
    /// USD per million cache-read input tokens. Default: `input`.
    pub cached_input: Option<PriceValue>,
    /// USD per million cache-write input tokens. Default: `input`.
    pub cache_write: Option<PriceValue>,
    /// USD per million reasoning output tokens. Default: `output`.
    pub reasoning: Option<PriceValue>,
}

/// A price, written as a string (`"2.50"`, exact) or a number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PriceValue {
    Text(String),
    Integer(i64),
    Float(f64),
}

impl PriceValue {
    fn to_decimal(&self, place: &str) -> Result<Decimal, Error> {
        let res = match self {
            PriceValue::Text(text) => Decimal::from_str(text.trim()).ok(),
            PriceValue::Integer(n) => Some(Decimal::from(*n)),
            // A TOML float is read through its shortest decimal text, so `2.5` is exactly 2.5.
            PriceValue::Float(f) => Decimal::from_str(&f.to_string()).ok(),
        };
        match res {
            Some(price) if price >= Decimal::ZERO => Ok(price),
            _ => Err(Error::Config(format!("{place}: {self:?} is not a non-negative price"))),
        }
    }
}

/// A price file: a list of `[[model]]` entries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPriceFile {
    #[serde(default)]
    model: Vec<RawModelPrice>,
}

/// One validated price entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPrice {
    /// The canonical provider (see [`canonical_provider`]).
    pub provider: String,
    /// The pattern, lowercase.
    pub pattern: String,
    /// Days since 1970-01-01 from which the price applies.
    pub effective_day: i64,
    pub input: Decimal,
    pub output: Decimal,
    pub cached_input: Decimal,
    pub cache_write: Decimal,
    pub reasoning: Decimal,
    /// Came from the config rather than the built-in file.
    pub from_config: bool,
}

/// The validated price table.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    pub(crate) entries: Vec<ModelPrice>,
    /// Indexes into `entries` of the exact patterns, by pattern.
    pub(crate) exact: HashMap<String, Vec<usize>>,
    /// Indexes into `entries` of the `*` patterns.
    pub(crate) globs: Vec<usize>,
}

impl PriceTable {
    /// The built-in table plus the config's entries.
    pub fn from_raw(raw: &RawPriceConfig) -> Result<PriceTable, Error> {
        let mut entries = Vec::new();
        if raw.builtin.unwrap_or(true) {
            let file: RawPriceFile = toml::from_str(BUILTIN_PRICES)
                .map_err(|e| Error::Config(format!("built-in price table: {e}")))?;
            for (i, model) in file.model.iter().enumerate() {
                entries.push(validate(model, &format!("built-in price table entry {i}"), false)?);
            }
        }
        let mut own = Vec::new();
        for (i, model) in raw.models.iter().enumerate() {
            own.push(validate(model, &format!("price.models[{i}]"), true)?);
        }
        entries.retain(|builtin: &ModelPrice| {
            !own.iter().any(|o| o.provider == builtin.provider && o.pattern == builtin.pattern)
        });
        entries.extend(own);
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut globs = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            if entry.pattern.contains('*') {
                globs.push(i);
            } else {
                exact.entry(entry.pattern.clone()).or_default().push(i);
            }
        }
        Ok(PriceTable { entries, exact, globs })
    }

    pub fn entries(&self) -> &[ModelPrice] {
        &self.entries
    }
}

fn validate(raw: &RawModelPrice, place: &str, from_config: bool) -> Result<ModelPrice, Error> {
    if raw.pattern.trim().is_empty() || raw.provider.trim().is_empty() {
        return Err(Error::Config(format!("{place}: provider and pattern must not be empty")));
    }
    let effective_day = match &raw.effective {
        Some(date) => parse_date(date).ok_or_else(|| {
            Error::Config(format!("{place}: effective date {date:?} is not YYYY-MM-DD"))
        })?,
        None => 0,
    };
    let input = raw.input.to_decimal(&format!("{place}.input"))?;
    let output = raw.output.to_decimal(&format!("{place}.output"))?;
    let or = |value: &Option<PriceValue>, field: &str, default: Decimal| match value {
        Some(value) => value.to_decimal(&format!("{place}.{field}")),
        None => Ok(default),
    };
    Ok(ModelPrice {
        provider: canonical_provider(&raw.provider).unwrap_or_else(|| ANY_PROVIDER.to_owned()),
        pattern: raw.pattern.trim().to_lowercase(),
        effective_day,
        input,
        output,
        cached_input: or(&raw.cached_input, "cached_input", input)?,
        cache_write: or(&raw.cache_write, "cache_write", input)?,
        reasoning: or(&raw.reasoning, "reasoning", output)?,
        from_config,
    })
}

/// The vendor a provider name prices as: `azure.ai.openai` is `openai`, `gcp.vertex_ai` is
/// `google`, `mistral_ai` is `mistral`. Hosts that serve many vendors' models (`aws.bedrock`,
/// `openrouter`) give `None`: their spans are priced by model name alone.
pub fn canonical_provider(provider: &str) -> Option<String> {
    let lower = provider.trim().to_ascii_lowercase();
    let res = match lower.as_str() {
        "" | "aws.bedrock" | "bedrock" | "openrouter" | "litellm" | "any" => return None,
        "openai" | "azure.ai.openai" | "az.ai.openai" | "azure" | "azure_openai" => "openai",
        "anthropic" => "anthropic",
        "gcp.gemini" | "gcp.vertex_ai" | "gcp.gen_ai" | "google" | "vertex_ai" | "vertexai"
        | "gemini" | "google_genai" => "google",
        "mistral_ai" | "mistralai" | "mistral" => "mistral",
        "x_ai" | "xai" => "xai",
        "together_ai" | "together" | "togetherai" => "together",
        // Any other name prices as itself.
        _ => return Some(lower),
    };
    Some(res.to_owned())
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date.
pub(crate) fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.trim().splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}
