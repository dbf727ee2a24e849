//! Golden-file tests shared by the processors: each `test_data/NAME.in.json` (a JSON array of
//! stored spans) is run through a processor configured by `NAME.toml` (the processor's section
//! of `loupe.toml`; empty when absent), and the result must equal `NAME.out.json`. Update the
//! expected files with `UPDATE_EXPECT=1 cargo test -p pipeline`.

use std::fs;
use std::path::{Path, PathBuf};

use model::StoredSpan;

use crate::Processor;

/// The `test_data` folder of a processor, e.g. `golden_dir("redact")`.
pub(crate) fn golden_dir(processor: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(processor).join("test_data")
}

/// Runs every golden case in `dir`; `make` builds the processor from the case's TOML text.
#[track_caller]
pub(crate) fn check_dir(dir: &Path, make: impl Fn(&str) -> Box<dyn Processor>) {
    let mut inputs: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.to_string_lossy().ends_with(".in.json"))
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no *.in.json cases in {}", dir.display());
    for input in inputs {
        let stem = input.to_string_lossy().trim_end_matches(".in.json").to_owned();
        let config = fs::read_to_string(format!("{stem}.toml")).unwrap_or_default();
        let processor = make(&config);
        let text = fs::read_to_string(&input).unwrap_or_else(|e| panic!("{stem}: {e}"));
        let mut spans: Vec<StoredSpan> =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{stem}.in.json: {e}"));
        processor.process(&mut spans);
        let rendered = serde_json::to_string_pretty(&spans).expect("spans serialize") + "\n";
        expect_test::expect_file![format!("{stem}.out.json")].assert_eq(&rendered);
    }
}
