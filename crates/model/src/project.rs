//! Projects: every record belongs to exactly one.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A project's id, e.g. `default`. Lowercase letters, digits, `-` and `_`, 1 to 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProjectId(String);

impl ProjectId {
    /// The project used when no API key names another one.
    pub const DEFAULT: &'static str = "default";

    pub fn default_project() -> ProjectId {
        ProjectId(Self::DEFAULT.to_owned())
    }

    /// Validates a project id.
    pub fn new(id: &str) -> Result<ProjectId, String> {
        let valid = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if valid {
            Ok(ProjectId(id.to_owned()))
        } else {
            Err(format!(
                "invalid project id {id:?}: use 1 to 64 lowercase letters, digits, '-' or '_'"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
