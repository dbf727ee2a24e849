//! Tidy checks: every Rust file says what it is for, every crate manifest describes itself and
//! uses the workspace lints, and dependencies point the way ARCHITECTURE.md says.

use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, res: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if name != "target" && name != "test_data" && !name.starts_with('.') {
                rust_files(&path, res);
            }
        } else if name.ends_with(".rs") {
            res.push(path);
        }
    }
}

fn crate_manifests() -> Vec<(String, toml::Table)> {
    let crates_dir = tidy::workspace_root().join("crates");
    let mut res = Vec::new();
    for entry in fs::read_dir(&crates_dir).expect("crates/ exists").flatten() {
        let manifest = entry.path().join("Cargo.toml");
        if let Ok(text) = fs::read_to_string(&manifest) {
            let table: toml::Table = text.parse().expect("manifest parses");
            res.push((entry.file_name().to_string_lossy().into_owned(), table));
        }
    }
    res.sort_by(|a, b| a.0.cmp(&b.0));
    res
}

fn dependencies(manifest: &toml::Table) -> Vec<String> {
    manifest
        .get("dependencies")
        .and_then(|d| d.as_table())
        .map(|d| d.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn every_rust_file_starts_with_a_doc_comment() {
    let mut files = Vec::new();
    rust_files(&tidy::workspace_root().join("crates"), &mut files);
    assert!(files.len() > 10, "found only {} files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = fs::read_to_string(path).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a leading `//!` comment:\n{}", missing.join("\n"));
}

#[test]
fn every_crate_describes_itself_and_uses_workspace_lints() {
    for (name, manifest) in crate_manifests() {
        let package = manifest["package"].as_table().expect("[package]");
        assert_eq!(package["name"].as_str(), Some(name.as_str()), "folder name = crate name");
        assert!(package.contains_key("description"), "{name}: add a description");
        let lints = manifest.get("lints").and_then(|l| l.get("workspace"));
        assert_eq!(lints.and_then(|w| w.as_bool()), Some(true), "{name}: add [lints] workspace");
    }
}

#[test]
fn dependencies_point_one_way() {
    let manifests = crate_manifests();
    for (name, manifest) in &manifests {
        let deps = dependencies(manifest);
        if name == "model" {
            for forbidden in ["tokio", "axum", "rusqlite", "reqwest", "tonic", "prost", "store"] {
                assert!(
                    !deps.contains(&forbidden.to_owned()),
                    "model must not depend on {forbidden}"
                );
            }
        }
        // `vault` keeps its own `keys.db` (keys must not live in the span store).
        if !name.starts_with("store-")
            && !["test-support", "bench", "vault"].contains(&name.as_str())
        {
            assert!(!deps.contains(&"rusqlite".to_owned()), "{name}: only store-* crates use SQL");
        }
        if ["store", "normalize", "otlp"].contains(&name.as_str()) {
            for forbidden in ["pipeline", "ingest", "gateway", "api", "app"] {
                assert!(
                    !deps.contains(&forbidden.to_owned()),
                    "{name} must not depend on {forbidden}"
                );
            }
        }
    }
}
