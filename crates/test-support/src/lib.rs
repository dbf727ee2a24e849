//! Test helpers: spawn the real `loupe` binary ([`spawn_app`]), build OTLP requests
//! ([`otlp`]), find the shared fixtures, poll for an eventual result, and a fake LLM upstream
//! ([`fake_llm`]).

pub mod fake_llm;
pub mod otlp;
pub mod spawn;

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use spawn::{App, Response, spawn_app};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.ancestors().nth(2).map(PathBuf::from).unwrap_or(manifest_dir)
}

/// A file of the shared fixtures (`../shared/fixtures` beside the workspace).
pub fn fixture(name: &str) -> String {
    let path = workspace_root().join("../shared/fixtures").join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading fixture {}: {error}", path.display()))
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(res) = f().await {
            return res;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Python interpreter for SDK tests: `LOUPE_TEST_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("LOUPE_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}
