//! Per-user erasure by crypto-shredding. Every recorded content field of a span that names a
//! user (`view.user_id`) is sealed, before it reaches the store, into one AES-256-GCM envelope
//! under a data key of that user; the keys live in their own SQLite file, `keys.db`, beside (not
//! inside) the span store. Destroying a user's key makes their content unreadable everywhere at
//! once: in the store, in its backups and in any copy of them.
//!
//! - [`Vault`]: the key file, the in-memory key cache and the audit log of erasures.
//! - [`seal`] / [`unseal`]: a span's content into and out of its envelope.
//! - [`SealingStore`]: a [`store::Store`] wrapper that seals on every write path and unseals on
//!   every read path, so no caller can write plaintext content of a user or bypass erasure.
//! - [`Eraser`]: erases a user (destroys the keys, removes content the user's traces still carry
//!   in plaintext, purges the backend, writes the audit record).
//!
//! **Architecture Invariant:** key material never leaves `keys.db` and this crate's memory; the
//! audit log names users by key id only, never by the user id.
//!
//! **Architecture Invariant:** apart from `store-*`, this is the one crate with SQL, for its own
//! file `keys.db` only: keys must not be in the span store, or every backup of the store would
//! hold the keys to its own content.

mod erase;
mod seal;
mod sealing_store;
#[cfg(test)]
mod tests;
mod vault;

pub use erase::{Eraser, Erasure};
pub use seal::{ERASED_ATTR, SEALED_ATTR, SEALED_KEY_ATTR, SEALED_VIEW_METADATA, seal, unseal};
pub use sealing_store::SealingStore;
pub use vault::{KEYS_FILE, Vault};

use model::ErrorCode;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `keys.db` cannot be opened, read or written.
    #[error("key vault {path}: {message}; check that the data dir is writable and not full")]
    Keys { path: String, message: String },
    /// An envelope does not decrypt with its key: it was changed, or moved to another span.
    #[error(
        "sealed content of span {span} does not verify: it was altered or copied from another span"
    )]
    Tampered { span: String },
    /// An envelope could not be built or read (not produced by this version).
    #[error("sealed content of span {span} is malformed: {message}")]
    Malformed { span: String, message: String },
    /// Generating a key or a nonce failed (no OS randomness).
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    #[error(transparent)]
    Store(#[from] store::Error),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Keys { .. } | Error::Random(_) => ErrorCode::Internal,
            Error::Tampered { .. } | Error::Malformed { .. } => ErrorCode::Internal,
            Error::Store(error) => error.code(),
        }
    }
}

impl From<Error> for store::Error {
    fn from(error: Error) -> store::Error {
        match error {
            Error::Store(error) => error,
            Error::Tampered { .. } | Error::Malformed { .. } => {
                store::Error::Corrupt(error.to_string())
            }
            other => store::Error::Internal(other.to_string()),
        }
    }
}
