//! The key vault: `keys.db` (SQLite, `secure_delete` on) holds one random 256-bit data key per
//! (project, user), a random salt for key ids, and the audit log of erasures. Keys are created
//! on first use and cached in memory; destroying one removes it from the cache and the file,
//! and truncates the write-ahead log so no copy of the key stays on disk.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{KeyInit, OsRng, rand_core::RngCore};
use aes_gcm::{Aes256Gcm, Key};
use hmac::{Hmac, Mac};
use model::ProjectId;
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::Sha256;

use crate::erase::Erasure;
use crate::{Error, Result};

/// The vault's file name in the data dir.
pub const KEYS_FILE: &str = "keys.db";

/// A cipher ready to use, with the id of its key.
#[derive(Clone)]
pub(crate) struct DataKey {
    pub id: String,
    pub cipher: Aes256Gcm,
}

/// The key vault. One per data dir; share it with `Arc`.
pub struct Vault {
    path: PathBuf,
    conn: Mutex<Connection>,
    /// Keys read or created so far, by key id; `None` records a key known not to exist.
    cache: Mutex<HashMap<String, Option<Aes256Gcm>>>,
    /// The current key of each user key id seen so far.
    current: Mutex<HashMap<String, DataKey>>,
    salt: [u8; 32],
}

impl Vault {
    /// Opens (or creates) `keys.db` in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Vault> {
        let path = data_dir.join(KEYS_FILE);
        let err = |error: &dyn std::fmt::Display| Error::Keys {
            path: path.display().to_string(),
            message: error.to_string(),
        };
        std::fs::create_dir_all(data_dir).map_err(|e| err(&e))?;
        let conn = Connection::open(&path).map_err(|e| err(&e))?;
        conn.execute_batch(
            "PRAGMA secure_delete = ON;
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS keys (
                 key_id TEXT PRIMARY KEY,
                 user_key_id TEXT NOT NULL UNIQUE,
                 project TEXT NOT NULL,
                 key BLOB NOT NULL,
                 created_ns INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS erasures (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 project TEXT NOT NULL,
                 key_ids TEXT NOT NULL,
                 time_ns INTEGER NOT NULL,
                 who TEXT NOT NULL,
                 keys_destroyed INTEGER NOT NULL,
                 traces INTEGER NOT NULL,
                 spans INTEGER NOT NULL
             );",
        )
        .map_err(|e| err(&e))?;
        let salt: Option<Vec<u8>> = conn
            .query_row("SELECT value FROM meta WHERE name = 'salt'", [], |row| row.get(0))
            .optional()
            .map_err(|e| err(&e))?;
        let salt = match salt {
            Some(salt) if salt.len() == 32 => {
                let mut res = [0u8; 32];
                res.copy_from_slice(&salt);
                res
            }
            Some(_) => return Err(err(&"the key id salt is damaged; restore keys.db from backup")),
            None => {
                let mut res = [0u8; 32];
                OsRng.try_fill_bytes(&mut res).map_err(|e| Error::Random(e.to_string()))?;
                conn.execute("INSERT INTO meta (name, value) VALUES ('salt', ?1)", [&res[..]])
                    .map_err(|e| err(&e))?;
                res
            }
        };
        Ok(Vault {
            path,
            conn: Mutex::new(conn),
            cache: Mutex::new(HashMap::new()),
            current: Mutex::new(HashMap::new()),
            salt,
        })
    }

    /// Where the vault lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The user key id of `user` in `project`: a keyed hash (with a salt kept in `keys.db`), so
    /// it names the user's key without revealing the user id. Each key the user gets has its
    /// own id, this id plus a random generation (`k_….<gen>`): a key made after an erasure
    /// never opens what the destroyed one sealed.
    pub fn key_id(&self, project: &ProjectId, user: &str) -> String {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.salt).expect("any key length");
        mac.update(project.as_str().as_bytes());
        mac.update(&[0]);
        mac.update(user.as_bytes());
        format!("k_{}", hex::encode(&mac.finalize().into_bytes()[..16]))
    }

    /// The key of `user`, created (durably) when there is none yet.
    pub(crate) fn key_for_write(&self, project: &ProjectId, user: &str) -> Result<DataKey> {
        let user_key_id = self.key_id(project, user);
        if let Some(key) = self.current.lock().get(&user_key_id) {
            return Ok(key.clone());
        }
        let conn = self.conn.lock();
        // Looked up again under the connection lock, so two writers never make two keys.
        let found: Option<(String, Vec<u8>)> = conn
            .query_row(
                "SELECT key_id, key FROM keys WHERE user_key_id = ?1",
                [&user_key_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let key = match found {
            Some((id, key)) => DataKey { cipher: self.cipher(&id, &key)?, id },
            None => {
                let mut generation = [0u8; 8];
                OsRng.try_fill_bytes(&mut generation).map_err(|e| Error::Random(e.to_string()))?;
                let id = format!("{user_key_id}.{}", hex::encode(generation));
                let key = Aes256Gcm::generate_key(OsRng);
                conn.execute(
                    "INSERT INTO keys (key_id, user_key_id, project, key, created_ns)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id, user_key_id, project.as_str(), &key[..], now_ns() as i64],
                )
                .map_err(|e| self.err(e))?;
                DataKey { id, cipher: Aes256Gcm::new(&key) }
            }
        };
        self.cache.lock().insert(key.id.clone(), Some(key.cipher.clone()));
        self.current.lock().insert(user_key_id, key.clone());
        Ok(key)
    }

    /// Makes sure each of these users has a key, creating the missing ones in one transaction
    /// (one sync to disk for a whole batch of new users, not one each).
    pub(crate) fn ensure_keys<'a>(
        &self,
        users: impl IntoIterator<Item = (&'a ProjectId, &'a str)>,
    ) -> Result<()> {
        let missing: Vec<(&ProjectId, &str, String)> = {
            let current = self.current.lock();
            users
                .into_iter()
                .map(|(project, user)| (project, user, self.key_id(project, user)))
                .filter(|(_, _, id)| !current.contains_key(id))
                .collect()
        };
        if missing.len() < 2 {
            return Ok(());
        }
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        for (project, _, user_key_id) in &missing {
            let exists: bool = tx
                .query_row("SELECT 1 FROM keys WHERE user_key_id = ?1", [user_key_id], |_| Ok(()))
                .optional()
                .map_err(|e| self.err(e))?
                .is_some();
            if exists {
                continue;
            }
            let mut generation = [0u8; 8];
            OsRng.try_fill_bytes(&mut generation).map_err(|e| Error::Random(e.to_string()))?;
            let id = format!("{user_key_id}.{}", hex::encode(generation));
            let key = Aes256Gcm::generate_key(OsRng);
            tx.execute(
                "INSERT INTO keys (key_id, user_key_id, project, key, created_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, user_key_id, project.as_str(), &key[..], now_ns() as i64],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// The key with this id, or `None` when it does not exist (never created, or destroyed).
    pub(crate) fn key_by_id(&self, id: &str) -> Result<Option<Aes256Gcm>> {
        if let Some(entry) = self.cache.lock().get(id) {
            return Ok(entry.clone());
        }
        let conn = self.conn.lock();
        let key: Option<Vec<u8>> = conn
            .query_row("SELECT key FROM keys WHERE key_id = ?1", [id], |row| row.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        let cipher = key.map(|key| self.cipher(id, &key)).transpose()?;
        self.cache.lock().insert(id.to_owned(), cipher.clone());
        Ok(cipher)
    }

    fn cipher(&self, id: &str, key: &[u8]) -> Result<Aes256Gcm> {
        if key.len() != 32 {
            return Err(self.err(format!("key {id} is damaged; restore keys.db from backup")));
        }
        Ok(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)))
    }

    /// Whether the user with this user key id (see [`Vault::key_id`]) has a key.
    pub fn has_key_id(&self, user_key_id: &str) -> Result<bool> {
        let conn = self.conn.lock();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM keys WHERE user_key_id = ?1", [user_key_id], |row| {
                row.get(0)
            })
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    /// Whether `user` has a key in `project`.
    pub fn has_key(&self, project: &ProjectId, user: &str) -> Result<bool> {
        self.has_key_id(&self.key_id(project, user))
    }

    /// Destroys the keys of these user ids (ids without a key are skipped): from the cache, the
    /// file (pages zeroed) and the write-ahead log (checkpointed and truncated). Returns the
    /// user key ids of these users and how many keys were destroyed.
    pub fn destroy(&self, project: &ProjectId, users: &[String]) -> Result<(Vec<String>, u64)> {
        let ids: Vec<String> = users.iter().map(|user| self.key_id(project, user)).collect();
        let conn = self.conn.lock();
        let mut n_destroyed = 0u64;
        for id in &ids {
            let key_id: Option<String> = conn
                .query_row("SELECT key_id FROM keys WHERE user_key_id = ?1", [id], |row| row.get(0))
                .optional()
                .map_err(|e| self.err(e))?;
            n_destroyed += conn
                .execute("DELETE FROM keys WHERE user_key_id = ?1", [id])
                .map_err(|e| self.err(e))? as u64;
            self.current.lock().remove(id);
            if let Some(key_id) = key_id {
                self.cache.lock().insert(key_id, None);
            }
        }
        checkpoint(&conn).map_err(|e| self.err(e))?;
        Ok((ids, n_destroyed))
    }

    /// Appends an erasure to the audit log.
    pub fn record_erasure(&self, erasure: &Erasure) -> Result<()> {
        let conn = self.conn.lock();
        conn.execute(
            "INSERT INTO erasures (project, key_ids, time_ns, who, keys_destroyed, traces, spans)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                erasure.project.as_str(),
                erasure.key_ids.join(","),
                erasure.time_ns as i64,
                erasure.who,
                erasure.keys_destroyed as i64,
                erasure.traces_purged as i64,
                erasure.spans_purged as i64,
            ],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The audit log of one project, oldest first.
    pub fn erasures(&self, project: &ProjectId) -> Result<Vec<Erasure>> {
        let conn = self.conn.lock();
        let mut statement = conn
            .prepare(
                "SELECT key_ids, time_ns, who, keys_destroyed, traces, spans FROM erasures
                 WHERE project = ?1 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = statement
            .query_map([project.as_str()], |row| {
                let key_ids: String = row.get(0)?;
                Ok(Erasure {
                    project: project.clone(),
                    key_ids: key_ids
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    time_ns: row.get::<_, i64>(1)? as u64,
                    who: row.get(2)?,
                    keys_destroyed: row.get::<_, i64>(3)? as u64,
                    traces_purged: row.get::<_, i64>(4)? as u64,
                    spans_purged: row.get::<_, i64>(5)? as u64,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    fn err(&self, error: impl std::fmt::Display) -> Error {
        Error::Keys { path: self.path.display().to_string(), message: error.to_string() }
    }
}

/// Moves the write-ahead log into the database file and truncates it, so deleted keys are not
/// left in the log.
fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
}

pub(crate) fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
