//! API keys and project resolution, shared by every receiver (`ingest`, `gateway`) and by `api`.
//!
//! A key is a random token (`lp_` + 40 hex characters). Only its SHA-256 hash is ever kept: in
//! `loupe.toml` (`[[auth.keys]]`) or in the store (keys made with `loupe keys create`). A request
//! names its key with `Authorization: Bearer <key>` or `x-loupe-api-key: <key>`.
//!
//! The rules, in one place ([`Auth::resolve`]):
//! - a request that presents a key gets the key's project, or [`Error::WrongKey`] when no key
//!   has that hash;
//! - a request without a key gets the default project, unless keys are required
//!   ([`AuthConfig::require_key`]), in which case it gets [`Error::MissingKey`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use model::{ErrorCode, ProjectId, UnixNanos};
use sha2::{Digest, Sha256};
use store::{ApiKeyRecord, Store};

/// The header Loupe's own clients use; `Authorization: Bearer` works everywhere too.
pub const API_KEY_HEADER: &str = "x-loupe-api-key";

/// How every generated key starts, so a key can be told apart from a provider's (the gateway
/// relies on this to find a Loupe key in `Authorization` or `x-api-key`).
pub const KEY_PREFIX: &str = "lp_";

/// How long a key found in the store is trusted before it is looked up again (so a revoked key
/// stops working within this time).
const STORE_CACHE_TTL: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("an api key is required: send `Authorization: Bearer <key>` or `x-loupe-api-key`")]
    MissingKey,
    #[error("the api key is not valid")]
    WrongKey,
    #[error("the authorization header is malformed: {0}")]
    MalformedHeader(&'static str),
    #[error("api key lookup failed")]
    Store(#[source] store::Error),
    #[error("no randomness available to generate a key: {0}")]
    Random(String),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::MissingKey | Error::WrongKey | Error::MalformedHeader(_) => {
                ErrorCode::Unauthorized
            }
            Error::Store(error) => match error.code() {
                ErrorCode::Unavailable => ErrorCode::Unavailable,
                _ => ErrorCode::Internal,
            },
            Error::Random(_) => ErrorCode::Internal,
        }
    }
}

/// A key configured in `loupe.toml`, already hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredKey {
    pub project: ProjectId,
    /// Lowercase hex SHA-256 of the key.
    pub key_sha256: String,
}

/// Validated auth settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    pub keys: Vec<ConfiguredKey>,
    /// Whether a request without a key is refused (else it goes to the default project).
    pub require_key: bool,
}

/// Resolves requests to projects. Cheap to clone.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    configured: HashMap<String, ProjectId>,
    require_key: bool,
    store: Option<Arc<dyn Store>>,
    /// Keys found in the store, by hash, with when they were found.
    cache: Mutex<HashMap<String, (ProjectId, Instant)>>,
}

impl Auth {
    /// Keys from the config, then from the store (when given).
    pub fn new(config: AuthConfig, store: Option<Arc<dyn Store>>) -> Auth {
        let configured =
            config.keys.into_iter().map(|key| (key.key_sha256.to_ascii_lowercase(), key.project));
        Auth {
            inner: Arc::new(Inner {
                configured: configured.collect(),
                require_key: config.require_key,
                store,
                cache: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// No keys at all: every request without a key goes to the default project.
    pub fn open() -> Auth {
        Auth::new(AuthConfig::default(), None)
    }

    pub fn requires_key(&self) -> bool {
        self.inner.require_key
    }

    /// The project of a request that presented `key` (or none).
    pub async fn resolve(&self, key: Option<&str>) -> Result<ProjectId, Error> {
        let Some(key) = key else {
            if self.inner.require_key {
                return Err(Error::MissingKey);
            }
            return Ok(ProjectId::default_project());
        };
        let key_hash = hash_key(key);
        if let Some(project) = self.inner.configured.get(&key_hash) {
            return Ok(project.clone());
        }
        let Some(store) = &self.inner.store else { return Err(Error::WrongKey) };
        if let Some(project) = self.cached(&key_hash) {
            return Ok(project);
        }
        match store.find_api_key(&key_hash).await.map_err(Error::Store)? {
            Some(record) => {
                self.remember(key_hash, record.project.clone());
                Ok(record.project)
            }
            None => Err(Error::WrongKey),
        }
    }

    /// The project of an HTTP request, from its headers.
    pub async fn resolve_headers(&self, headers: &http::HeaderMap) -> Result<ProjectId, Error> {
        let key = key_from_headers(headers)?;
        self.resolve(key).await
    }

    fn cached(&self, key_hash: &str) -> Option<ProjectId> {
        let cache = self.inner.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match cache.get(key_hash) {
            Some((project, found)) if found.elapsed() < STORE_CACHE_TTL => Some(project.clone()),
            _ => None,
        }
    }

    fn remember(&self, key_hash: String, project: ProjectId) {
        let mut cache = self.inner.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Bounded: a cache this size only holds real keys, which are few.
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(key_hash, (project, Instant::now()));
    }
}

/// The key a request presents: `Authorization: Bearer <key>`, else `x-loupe-api-key`.
pub fn key_from_headers(headers: &http::HeaderMap) -> Result<Option<&str>, Error> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| Error::MalformedHeader("not ascii"))?;
        return parse_authorization(value).map(Some);
    }
    match headers.get(API_KEY_HEADER) {
        Some(value) => {
            let value = value.to_str().map_err(|_| Error::MalformedHeader("not ascii"))?;
            Ok(Some(value.trim()))
        }
        None => Ok(None),
    }
}

/// The token of an `Authorization` header value (`Bearer <key>`, scheme case-insensitive).
pub fn parse_authorization(value: &str) -> Result<&str, Error> {
    let value = value.trim();
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            let token = token.trim();
            if token.is_empty() {
                Err(Error::MalformedHeader("empty bearer token"))
            } else {
                Ok(token)
            }
        }
        _ => Err(Error::MalformedHeader("expected `Bearer <key>`")),
    }
}

/// Lowercase hex SHA-256 of a key.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new random key: `lp_` and 40 hex characters (160 bits).
pub fn generate_key() -> Result<String, Error> {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|error| Error::Random(error.to_string()))?;
    Ok(format!("{KEY_PREFIX}{}", hex::encode(bytes)))
}

/// A new key for `project` and the record to store for it. The key itself is returned once and
/// never stored.
pub fn new_key(
    project: ProjectId,
    name: &str,
    now_ns: UnixNanos,
) -> Result<(String, ApiKeyRecord), Error> {
    let key = generate_key()?;
    let key_hash = hash_key(&key);
    let record = ApiKeyRecord {
        id: format!("key_{}", &key_hash[..12]),
        project,
        name: name.to_owned(),
        prefix: key[..7].to_owned(),
        key_hash,
        created_ns: now_ns,
        labels: Default::default(),
    };
    Ok((key, record))
}

#[cfg(test)]
mod tests;
