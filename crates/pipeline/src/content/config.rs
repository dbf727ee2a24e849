//! The `[pipeline.content]` section of `loupe.toml` and its validated form.

use std::collections::{BTreeMap, HashMap};

use model::ProjectId;
use serde::Deserialize;

use crate::Error;

/// Content policy: whether message content (prompts, completions, tool arguments and results,
/// retrieved document text) is recorded, for which share of traces, and how large one field may
/// be. Model, token counts, timing and status are always recorded.
///
/// A setting is looked up from the most specific place that sets it:
/// `projects.<p>.services.<s>`, then `services.<s>`, then `projects.<p>`, then the top level.
/// Service rules sit above project rules because they usually describe the data a service
/// handles ("billing never records content"), whichever project it reports to.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContentConfig {
    /// Record message content at all. Default: `true`.
    pub record: Option<bool>,
    /// Percentage of traces (0 to 100, decimals allowed) whose content is recorded, chosen
    /// deterministically from the trace id, so a trace has content on all of its spans or on
    /// none. Default: `100`.
    pub sample_percent: Option<f64>,
    /// Largest size in bytes of one content field (a message part, an input or output value, a
    /// document's text); longer text is cut at this size and ends with a visible marker
    /// `…[truncated N bytes]`. `0` turns the cap off. Default: `65536`.
    pub max_field_bytes: Option<usize>,
    /// Settings for spans whose resource `service.name` is the key.
    #[serde(default)]
    pub services: BTreeMap<String, RawContentOverride>,
    /// Settings for one project (key: project id).
    #[serde(default)]
    pub projects: BTreeMap<String, RawContentProjectConfig>,
}

/// Content settings for one service; unset fields fall back as described on
/// [`RawContentConfig`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContentOverride {
    /// Record message content for this service.
    pub record: Option<bool>,
    /// Percentage of traces whose content is recorded.
    pub sample_percent: Option<f64>,
    /// Largest size in bytes of one content field; `0` turns the cap off.
    pub max_field_bytes: Option<usize>,
}

/// Content settings for one project.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContentProjectConfig {
    /// Record message content in this project.
    pub record: Option<bool>,
    /// Percentage of traces whose content is recorded.
    pub sample_percent: Option<f64>,
    /// Largest size in bytes of one content field; `0` turns the cap off.
    pub max_field_bytes: Option<usize>,
    /// Settings for one service of this project.
    #[serde(default)]
    pub services: BTreeMap<String, RawContentOverride>,
}

/// The content policy in force for one (project, service).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentPolicy {
    pub record: bool,
    /// Traces kept with content, in hundredths of a percent (0 to 10 000).
    pub sample_basis_points: u32,
    /// `None`: no cap.
    pub max_field_bytes: Option<usize>,
}

/// The policies of one project: its own, and per service.
#[derive(Debug, Clone)]
pub(crate) struct ScopePolicies {
    pub(crate) policy: ContentPolicy,
    pub(crate) services: HashMap<String, ContentPolicy>,
}

/// The validated content policy for every project and service.
#[derive(Debug, Clone)]
pub struct ContentConfig {
    pub(crate) default: ScopePolicies,
    pub(crate) projects: HashMap<String, ScopePolicies>,
}

/// The fields every level can set.
#[derive(Clone, Copy, Default)]
struct Level {
    record: Option<bool>,
    sample_percent: Option<f64>,
    max_field_bytes: Option<usize>,
}

impl Level {
    /// `self` where set, else `base`.
    fn over(self, base: Level) -> Level {
        Level {
            record: self.record.or(base.record),
            sample_percent: self.sample_percent.or(base.sample_percent),
            max_field_bytes: self.max_field_bytes.or(base.max_field_bytes),
        }
    }

    fn resolve(self, place: &str) -> Result<ContentPolicy, Error> {
        let percent = self.sample_percent.unwrap_or(100.0);
        if !(0.0..=100.0).contains(&percent) {
            return Err(Error::Config(format!(
                "content{place}.sample_percent must be between 0 and 100, got {percent}"
            )));
        }
        let max_field_bytes = self.max_field_bytes.unwrap_or(DEFAULT_MAX_FIELD_BYTES);
        if max_field_bytes != 0 && max_field_bytes < MIN_FIELD_BYTES {
            return Err(Error::Config(format!(
                "content{place}.max_field_bytes must be 0 (no cap) or at least {MIN_FIELD_BYTES}, \
                 got {max_field_bytes}"
            )));
        }
        Ok(ContentPolicy {
            record: self.record.unwrap_or(true),
            sample_basis_points: (percent * 100.0).round() as u32,
            max_field_bytes: (max_field_bytes != 0).then_some(max_field_bytes),
        })
    }
}

impl From<&RawContentOverride> for Level {
    fn from(raw: &RawContentOverride) -> Level {
        Level {
            record: raw.record,
            sample_percent: raw.sample_percent,
            max_field_bytes: raw.max_field_bytes,
        }
    }
}

/// The default cap of one content field.
pub const DEFAULT_MAX_FIELD_BYTES: usize = 64 * 1024;
/// The smallest cap accepted, so the truncation marker never dominates a field.
const MIN_FIELD_BYTES: usize = 64;

impl ContentConfig {
    pub fn from_raw(raw: &RawContentConfig) -> Result<ContentConfig, Error> {
        let top = Level {
            record: raw.record,
            sample_percent: raw.sample_percent,
            max_field_bytes: raw.max_field_bytes,
        };
        let scope = |project: Option<(&str, &RawContentProjectConfig)>| {
            let project_level = project
                .map(|(_, p)| Level {
                    record: p.record,
                    sample_percent: p.sample_percent,
                    max_field_bytes: p.max_field_bytes,
                })
                .unwrap_or_default();
            let prefix = project.map(|(id, _)| format!(".projects.{id}")).unwrap_or_default();
            let policy = project_level.over(top).resolve(&prefix)?;
            let mut services = HashMap::new();
            let project_services = project.map(|(_, p)| &p.services);
            let names =
                raw.services.keys().chain(project_services.into_iter().flat_map(|s| s.keys()));
            for name in names {
                let global = raw.services.get(name).map(Level::from).unwrap_or_default();
                let own =
                    project_services.and_then(|s| s.get(name)).map(Level::from).unwrap_or_default();
                let level = own.over(global.over(project_level.over(top)));
                services.insert(name.clone(), level.resolve(&format!("{prefix}.services.{name}"))?);
            }
            Ok::<ScopePolicies, Error>(ScopePolicies { policy, services })
        };
        let default = scope(None)?;
        let mut projects = HashMap::new();
        for (id, project) in &raw.projects {
            ProjectId::new(id).map_err(|e| Error::Config(format!("content.projects: {e}")))?;
            projects.insert(id.clone(), scope(Some((id, project)))?);
        }
        Ok(ContentConfig { default, projects })
    }

    /// The policy for spans of `service` in `project`.
    pub fn policy(&self, project: &str, service: &str) -> ContentPolicy {
        let scope = self.projects.get(project).unwrap_or(&self.default);
        scope.services.get(service).copied().unwrap_or(scope.policy)
    }
}

impl Default for ContentConfig {
    fn default() -> ContentConfig {
        // The default raw config has no fields to reject.
        ContentConfig::from_raw(&RawContentConfig::default())
            .unwrap_or_else(|_| unreachable!("the default content config is valid"))
    }
}
