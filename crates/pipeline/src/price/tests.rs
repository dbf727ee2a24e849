//! Tests of the `price` processor: golden files in `test_data/` (`NAME.toml` is the
//! `[pipeline.price]` section), model-name resolution, the price file's integrity, and the
//! pure helpers for `loupe pricing`.

use expect_test::expect;

use super::{PriceProcessor, PriceTable, RawPriceConfig, find_price, unknown_models};
use crate::golden::{check_dir, golden_dir};
use crate::price::config::parse_date;

fn table(toml_text: &str) -> PriceTable {
    let raw: RawPriceConfig = toml::from_str(toml_text).expect("price config parses");
    PriceTable::from_raw(&raw).expect("price config is valid")
}

#[test]
fn golden() {
    check_dir(&golden_dir("price"), |toml_text| Box::new(PriceProcessor::new(table(toml_text))));
}

#[test]
fn model_names_resolve_to_entries() {
    let table = table("");
    let day = parse_date("2026-01-01").expect("valid date");
    let cases = [
        ("openai", "gpt-4o-mini-2024-07-18"),
        ("openai", "gpt-4o-2024-08-06"),
        ("openai", "gpt-4o-2024-05-13"),
        ("openai", "GPT-4o"),
        ("openai", "gpt-3.5-turbo-0125"),
        ("openai", "openai/gpt-4.1-mini"),
        ("anthropic", "claude-3-5-sonnet-20241022"),
        ("anthropic", "claude-sonnet-4-5-20250929"),
        ("anthropic", "claude-opus-4-5-20251101"),
        ("anthropic", "claude-opus-4-1-20250805"),
        ("gcp.vertex_ai", "claude-3-5-sonnet@20240620"),
        ("aws.bedrock", "anthropic.claude-3-haiku-20240307-v1:0"),
        ("gcp.gemini", "models/gemini-2.5-flash"),
        ("gcp.gemini", "gemini-2.5-flash-lite"),
        ("mistral_ai", "mistral-small-latest"),
        ("groq", "llama-3.3-70b-versatile"),
        ("together_ai", "meta-llama/Llama-3.3-70B-Instruct-Turbo"),
        ("", "deepseek-chat"),
        ("openai", "gpt-4o-realtime-preview"),
    ];
    let mut res = String::new();
    for (provider, model) in cases {
        let found = find_price(&table, Some(provider), model, day);
        let found = match found {
            Some(p) => format!("{}/{} in={} out={}", p.provider, p.pattern, p.input, p.output),
            None => "unknown".to_owned(),
        };
        res.push_str(&format!("{provider:<14} {model:<42} -> {found}\n"));
    }
    expect![[r#"
        openai         gpt-4o-mini-2024-07-18                     -> openai/gpt-4o-mini in=0.15 out=0.60
        openai         gpt-4o-2024-08-06                          -> openai/gpt-4o in=2.50 out=10.00
        openai         gpt-4o-2024-05-13                          -> openai/gpt-4o-2024-05-13 in=5.00 out=15.00
        openai         GPT-4o                                     -> openai/gpt-4o in=2.50 out=10.00
        openai         gpt-3.5-turbo-0125                         -> openai/gpt-3.5-turbo in=0.50 out=1.50
        openai         openai/gpt-4.1-mini                        -> openai/gpt-4.1-mini in=0.40 out=1.60
        anthropic      claude-3-5-sonnet-20241022                 -> anthropic/claude-3-5-sonnet in=3.00 out=15.00
        anthropic      claude-sonnet-4-5-20250929                 -> anthropic/claude-sonnet-4* in=3.00 out=15.00
        anthropic      claude-opus-4-5-20251101                   -> anthropic/claude-opus-4-5 in=5.00 out=25.00
        anthropic      claude-opus-4-1-20250805                   -> anthropic/claude-opus-4* in=15.00 out=75.00
        gcp.vertex_ai  claude-3-5-sonnet@20240620                 -> anthropic/claude-3-5-sonnet in=3.00 out=15.00
        aws.bedrock    anthropic.claude-3-haiku-20240307-v1:0     -> anthropic/claude-3-haiku in=0.25 out=1.25
        gcp.gemini     models/gemini-2.5-flash                    -> google/gemini-2.5-flash in=0.30 out=2.50
        gcp.gemini     gemini-2.5-flash-lite                      -> google/gemini-2.5-flash-lite in=0.10 out=0.40
        mistral_ai     mistral-small-latest                       -> mistral/mistral-small* in=0.10 out=0.30
        groq           llama-3.3-70b-versatile                    -> groq/llama-3.3-70b-versatile in=0.59 out=0.79
        together_ai    meta-llama/Llama-3.3-70B-Instruct-Turbo    -> together/meta-llama/llama-3.3-70b-instruct-turbo* in=0.88 out=0.88
                       deepseek-chat                              -> deepseek/deepseek-chat in=0.27 out=1.10
        openai         gpt-4o-realtime-preview                    -> unknown
    "#]].assert_eq(&res);
}

#[test]
fn builtin_table_is_valid_and_unambiguous() {
    let table = table("");
    assert!(table.entries().len() >= 50, "{} entries", table.entries().len());
    for (i, a) in table.entries().iter().enumerate() {
        for b in &table.entries()[i + 1..] {
            let same = a.provider == b.provider && a.pattern == b.pattern;
            assert!(
                !(same && a.effective_day == b.effective_day),
                "{}/{} is listed twice for one date",
                a.provider,
                a.pattern
            );
        }
    }
    let no_builtin = self::table("builtin = false");
    assert!(no_builtin.entries().is_empty());
}

#[test]
fn unknown_models_are_listed_by_frequency() {
    let text = std::fs::read_to_string(golden_dir("price").join("models.in.json")).expect("input");
    let spans: Vec<model::StoredSpan> = serde_json::from_str(&text).expect("spans");
    let unknown = unknown_models(&table(""), &spans);
    expect![[r#"
        [
            UnknownModel {
                provider: "openai",
                model: "ft:gpt-4o-mini-2024-07-18:acme::abc123",
                n_spans: 1,
            },
            UnknownModel {
                provider: "acme-internal",
                model: "house-model-7b",
                n_spans: 1,
            },
        ]
    "#]]
    .assert_debug_eq(&unknown);
}

#[test]
fn config_errors() {
    let errors: Vec<String> = [
        "[[models]]\nprovider = \"x\"\npattern = \"m\"\ninput = \"-1\"\noutput = \"1\"",
        "[[models]]\nprovider = \"x\"\npattern = \"m\"\ninput = \"abc\"\noutput = \"1\"",
        "[[models]]\nprovider = \"x\"\npattern = \"m\"\ninput = \"1\"\noutput = \"1\"\neffective = \"2024-13-01\"",
        "[[models]]\nprovider = \"x\"\npattern = \"\"\ninput = \"1\"\noutput = \"1\"",
    ]
    .iter()
    .map(|text| {
        let raw: RawPriceConfig = toml::from_str(text).expect("parses");
        PriceTable::from_raw(&raw).err().map(|e| e.to_string()).unwrap_or_default()
    })
    .collect();
    expect![[r#"
        [
            "invalid pipeline config: price.models[0].input: Text(\"-1\") is not a non-negative price",
            "invalid pipeline config: price.models[0].input: Text(\"abc\") is not a non-negative price",
            "invalid pipeline config: price.models[0]: effective date \"2024-13-01\" is not YYYY-MM-DD",
            "invalid pipeline config: price.models[0]: provider and pattern must not be empty",
        ]
    "#]].assert_debug_eq(&errors);
}
