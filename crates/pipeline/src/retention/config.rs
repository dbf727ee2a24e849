//! The `[retention]` section of `loupe.toml` and its validated form.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::Error;
use crate::sample::{Policy, RawPolicy, RawSampleConfig, SampleConfig};

const HOUR_NS: u64 = 3_600 * 1_000_000_000;
const DAY_NS: u64 = 24 * HOUR_NS;

/// Tiered retention: how long spans keep their content, their structure and their
/// fingerprints, and retention-time downsampling. Ages are durations like `90s`, `30m`, `24h`,
/// `30d`, counted from a span's start time.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetentionConfig {
    /// Run retention in the background of `loupe serve`. Default: `false` (`loupe retention
    /// run` works either way).
    pub enabled: Option<bool>,
    /// Time between background passes. Default: `5m`.
    pub interval: Option<String>,
    /// Spans rewritten, or traces decided, per store call; the runner yields between batches.
    /// Default: `500`.
    pub batch_size: Option<u32>,
    /// Age after which message content is removed and the structure kept. Default: `24h`.
    pub structure_after: Option<String>,
    /// Age after which only the span's skeleton and content fingerprints are kept. Default:
    /// `30d`.
    pub fingerprints_after: Option<String>,
    /// Age after which whole traces are deleted (when every span is older). Default: `365d`.
    pub delete_after: Option<String>,
    /// Retention-time downsampling by the tail-sampling policies.
    #[serde(default)]
    pub downsample: RawDownsampleConfig,
    /// Settings for one project (key: project id); unset fields fall back to the top level.
    #[serde(default)]
    pub projects: BTreeMap<String, RawRetentionProject>,
}

/// `[retention.downsample]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDownsampleConfig {
    /// Downsample at all. Default: `false`.
    pub enabled: Option<bool>,
    /// Traces that started longer ago than this are decided. Default: `1h`.
    pub after: Option<String>,
    /// The policies, with the vocabulary of `[pipeline.sample]`: a trace is kept when any
    /// matches and deleted otherwise.
    #[serde(default)]
    pub policies: Vec<RawPolicy>,
}

/// `[retention.projects.NAME]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetentionProject {
    pub structure_after: Option<String>,
    pub fingerprints_after: Option<String>,
    pub delete_after: Option<String>,
    /// Downsample this project (when `[retention.downsample]` is enabled). Default: `true`.
    pub downsample: Option<bool>,
}

/// The ages in force for one project, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ages {
    pub structure_after_ns: u64,
    pub fingerprints_after_ns: u64,
    pub delete_after_ns: u64,
    pub downsample: bool,
}

/// Validated downsampling settings.
#[derive(Debug, Clone)]
pub struct DownsampleConfig {
    pub after_ns: u64,
    pub policies: Vec<Policy>,
}

/// Validated retention settings.
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    pub enabled: bool,
    pub interval: Duration,
    pub batch_size: u32,
    pub defaults: Ages,
    pub projects: BTreeMap<String, Ages>,
    /// `None` when downsampling is off.
    pub downsample: Option<DownsampleConfig>,
}

impl Default for RetentionConfig {
    fn default() -> RetentionConfig {
        RetentionConfig::from_raw(&RawRetentionConfig::default())
            .expect("the default retention config is valid")
    }
}

/// Parses an age like `90s`, `30m`, `24h` or `30d` into nanoseconds.
pub fn parse_age(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_ns = match unit.trim() {
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => HOUR_NS,
        "d" => DAY_NS,
        _ => {
            return Err(format!(
                "{text:?} is not an age; write a whole number and a unit, like `90s`, `30m`, \
                 `24h` or `30d`"
            ));
        }
    };
    let n: u64 = number.parse().map_err(|_| {
        format!("{text:?} is not an age; write a whole number and a unit, like `24h` or `30d`")
    })?;
    n.checked_mul(unit_ns).ok_or_else(|| format!("{text:?} is too long"))
}

fn age(place: &str, text: Option<&str>, default: u64) -> Result<u64, Error> {
    match text {
        None => Ok(default),
        Some(text) => parse_age(text).map_err(|e| Error::Config(format!("{place}: {e}"))),
    }
}

fn check_order(place: &str, ages: &Ages) -> Result<(), Error> {
    if ages.structure_after_ns > ages.fingerprints_after_ns
        || ages.fingerprints_after_ns > ages.delete_after_ns
    {
        return Err(Error::Config(format!(
            "{place}: the ages must grow: structure_after <= fingerprints_after <= delete_after"
        )));
    }
    Ok(())
}

impl RetentionConfig {
    pub fn from_raw(raw: &RawRetentionConfig) -> Result<RetentionConfig, Error> {
        let interval_ns =
            age("retention.interval", raw.interval.as_deref(), 5 * 60 * 1_000_000_000)?;
        if interval_ns < 1_000_000_000 {
            return Err(Error::Config("retention.interval: must be at least `1s`".into()));
        }
        let batch_size = raw.batch_size.unwrap_or(500);
        if !(1..=100_000).contains(&batch_size) {
            return Err(Error::Config(format!(
                "retention.batch_size: must be between 1 and 100000, got {batch_size}"
            )));
        }
        let defaults = Ages {
            structure_after_ns: age(
                "retention.structure_after",
                raw.structure_after.as_deref(),
                24 * HOUR_NS,
            )?,
            fingerprints_after_ns: age(
                "retention.fingerprints_after",
                raw.fingerprints_after.as_deref(),
                30 * DAY_NS,
            )?,
            delete_after_ns: age(
                "retention.delete_after",
                raw.delete_after.as_deref(),
                365 * DAY_NS,
            )?,
            downsample: true,
        };
        check_order("retention", &defaults)?;
        let mut projects = BTreeMap::new();
        for (name, project) in &raw.projects {
            let place = format!("retention.projects.{name}");
            model::ProjectId::new(name).map_err(|e| Error::Config(format!("{place}: {e}")))?;
            let ages = Ages {
                structure_after_ns: age(
                    &format!("{place}.structure_after"),
                    project.structure_after.as_deref(),
                    defaults.structure_after_ns,
                )?,
                fingerprints_after_ns: age(
                    &format!("{place}.fingerprints_after"),
                    project.fingerprints_after.as_deref(),
                    defaults.fingerprints_after_ns,
                )?,
                delete_after_ns: age(
                    &format!("{place}.delete_after"),
                    project.delete_after.as_deref(),
                    defaults.delete_after_ns,
                )?,
                downsample: project.downsample.unwrap_or(true),
            };
            check_order(&place, &ages)?;
            projects.insert(name.clone(), ages);
        }
        let downsample = match raw.downsample.enabled.unwrap_or(false) {
            false => None,
            true => {
                let after_ns =
                    age("retention.downsample.after", raw.downsample.after.as_deref(), HOUR_NS)?;
                let sample = RawSampleConfig {
                    policies: raw.downsample.policies.clone(),
                    ..RawSampleConfig::default()
                };
                let policies = SampleConfig::from_raw(&sample)
                    .map_err(|e| Error::Config(format!("retention.downsample: {e}")))?
                    .policies;
                if policies.is_empty() {
                    return Err(Error::Config(
                        "retention.downsample: enabled without policies would delete every \
                         trace; add `[[retention.downsample.policies]]` or set enabled = false"
                            .into(),
                    ));
                }
                Some(DownsampleConfig { after_ns, policies })
            }
        };
        Ok(RetentionConfig {
            enabled: raw.enabled.unwrap_or(false),
            interval: Duration::from_nanos(interval_ns),
            batch_size,
            defaults,
            projects,
            downsample,
        })
    }

    /// The ages in force for a project.
    pub fn ages(&self, project: &str) -> Ages {
        self.projects.get(project).copied().unwrap_or(self.defaults)
    }
}
