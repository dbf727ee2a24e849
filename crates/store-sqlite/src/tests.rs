//! The backend-neutral suite run against fresh SQLite stores, and the schema golden test.

use std::path::Path;

use store::Store;

use crate::{SqliteConfig, SqliteStore};

/// Fresh stores live in temporary dirs that are kept alive (leaked) for the test's duration.
fn fresh_store() -> SqliteStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.keep();
    SqliteStore::open(SqliteConfig::new(path)).expect("open store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_suite() {
    store::suite::run_all(|| async { Box::new(fresh_store()) as Box<dyn Store> }).await;
}

#[test]
fn data_dir_is_created() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("a/b");
    let store = SqliteStore::open(SqliteConfig::new(&data_dir)).expect("open");
    assert!(Path::new(store.path()).exists());
}
