//! The local durable spill: batches acknowledged while ClickHouse was unreachable.
//!
//! Each batch is one file of JSON lines (one [`StoredSpan`] per line), written to a temporary
//! name, fsync'd, renamed into place and made durable with an fsync of the directory, so a file
//! either holds a whole batch or does not exist. Files are named by a increasing sequence number
//! and replayed oldest first; a replayed file is deleted only after its spans are in ClickHouse.
//! The total size is bounded: past it, [`Spill::append`] fails and the caller answers
//! "unavailable".

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use model::StoredSpan;

use crate::Error;

pub(crate) struct Spill {
    dir: PathBuf,
    max_bytes: u64,
    /// Bytes of the files currently in `dir`.
    n_bytes: AtomicU64,
    next_seq: AtomicU64,
}

impl Spill {
    /// Opens (creating) the spill directory and counts what is already in it.
    pub(crate) fn open(dir: &Path, max_bytes: u64) -> Result<Spill, Error> {
        fs::create_dir_all(dir).map_err(Error::Spill)?;
        let mut n_bytes = 0;
        let mut max_seq = 0;
        for (seq, path) in list(dir)? {
            n_bytes += fs::metadata(&path).map_err(Error::Spill)?.len();
            max_seq = max_seq.max(seq);
        }
        // Leftover temporaries are batches whose write never completed (never acknowledged).
        for entry in fs::read_dir(dir).map_err(Error::Spill)? {
            let path = entry.map_err(Error::Spill)?.path();
            if path.extension().is_some_and(|ext| ext == "tmp") {
                let _ = fs::remove_file(path);
            }
        }
        Ok(Spill {
            dir: dir.to_owned(),
            max_bytes,
            n_bytes: AtomicU64::new(n_bytes),
            next_seq: AtomicU64::new(max_seq + 1),
        })
    }

    pub(crate) fn n_bytes(&self) -> u64 {
        self.n_bytes.load(Ordering::Relaxed)
    }

    /// Durably writes a batch. Fails with [`Error::SpillFull`] when it would pass the bound.
    pub(crate) async fn append(self: &Arc<Self>, spans: &[StoredSpan]) -> Result<(), Error> {
        let mut body = Vec::new();
        for span in spans {
            serde_json::to_writer(&mut body, span).map_err(|e| Error::Encode(e.to_string()))?;
            body.push(b'\n');
        }
        let n_body = body.len() as u64;
        // Reserve the space first so concurrent appends cannot pass the bound together.
        let reserved = self.n_bytes.fetch_add(n_body, Ordering::SeqCst);
        if reserved + n_body > self.max_bytes {
            self.n_bytes.fetch_sub(n_body, Ordering::SeqCst);
            return Err(Error::SpillFull { n_bytes: reserved, max_bytes: self.max_bytes });
        }
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        let this = self.clone();
        let res = tokio::task::spawn_blocking(move || this.write_file(seq, &body))
            .await
            .map_err(|e| Error::Spill(std::io::Error::other(e.to_string())))
            .and_then(|res| res.map_err(Error::Spill));
        if res.is_err() {
            self.n_bytes.fetch_sub(n_body, Ordering::SeqCst);
        }
        res
    }

    fn write_file(&self, seq: u64, body: &[u8]) -> std::io::Result<()> {
        let path = self.dir.join(format!("{seq:020}.spill"));
        let tmp = path.with_extension("tmp");
        let mut file = fs::File::create(&tmp)?;
        file.write_all(body)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, &path)?;
        fs::File::open(&self.dir)?.sync_all()
    }

    /// The oldest spilled batch, if any: its path and its spans, or why they cannot be read.
    pub(crate) async fn oldest(
        &self,
    ) -> Result<Option<(PathBuf, Result<Vec<StoredSpan>, String>)>, Error> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || -> Result<_, Error> {
            let Some((_, path)) = list(&dir)?.into_iter().next() else { return Ok(None) };
            let text = fs::read_to_string(&path).map_err(Error::Spill)?;
            let spans = text
                .lines()
                .filter(|line| !line.is_empty())
                .map(serde_json::from_str)
                .collect::<Result<Vec<StoredSpan>, _>>()
                .map_err(|e| format!("spill file {}: {e}", path.display()));
            Ok(Some((path, spans)))
        })
        .await
        .map_err(|e| Error::Spill(std::io::Error::other(e.to_string())))?
    }

    /// Deletes a replayed batch.
    pub(crate) fn remove(&self, path: &Path) -> Result<(), Error> {
        let n = fs::metadata(path).map_err(Error::Spill)?.len();
        fs::remove_file(path).map_err(Error::Spill)?;
        self.n_bytes.fetch_sub(n, Ordering::SeqCst);
        Ok(())
    }

    /// Moves an unreadable batch aside (kept for inspection, no longer replayed or counted).
    pub(crate) fn quarantine(&self, path: &Path) -> Result<(), Error> {
        let n = fs::metadata(path).map_err(Error::Spill)?.len();
        fs::rename(path, path.with_extension("bad")).map_err(Error::Spill)?;
        self.n_bytes.fetch_sub(n, Ordering::SeqCst);
        Ok(())
    }
}

/// Spill files in `dir`, oldest first.
fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, Error> {
    let mut res = Vec::new();
    for entry in fs::read_dir(dir).map_err(Error::Spill)? {
        let path = entry.map_err(Error::Spill)?.path();
        if path.extension().is_some_and(|ext| ext == "spill")
            && let Some(seq) =
                path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse().ok())
        {
            res.push((seq, path));
        }
    }
    res.sort();
    Ok(res)
}
