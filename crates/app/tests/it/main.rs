//! The integration tests: each drives the real `loupe` binary over HTTP, gRPC or its command
//! line (see `test_support::spawn_app`). One module per area.

mod bad_input;
mod cli;
mod console;
mod durability;
mod erasure;
mod evals;
mod fanout;
mod feedback;
mod gateway;
mod grpc;
mod http;
mod logs;
mod pii;
mod pricing;
mod projects;
mod python_sdk;
mod query;
mod retention;
mod sampling;

use test_support::Response;

/// A config with gRPC on (the default) and nothing else.
pub(crate) const ZERO_CONFIG: &str = "";

/// A random-looking trace id from a small number, so tests never collide.
/// Runs `tests/it/python/{script}` with `args` on the test interpreter (`LOUPE_TEST_PYTHON`)
/// and returns its standard output, trimmed (the scripts print the trace id they exported).
pub(crate) fn run_python(script: &str, args: &[&str]) -> String {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/python").join(script);
    let output = std::process::Command::new(test_support::python())
        .arg(path)
        .args(args)
        .output()
        .expect("running python (set LOUPE_TEST_PYTHON to the venv's interpreter)");
    assert!(
        output.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

pub(crate) fn trace_id(n: u64) -> [u8; 16] {
    let mut res = [0u8; 16];
    res[..8].copy_from_slice(&0x4c6f_7570_6554_6573u64.to_be_bytes());
    res[8..].copy_from_slice(&n.to_be_bytes());
    res
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Names of a trace tree's spans, indented by depth, with flags.
pub(crate) fn render_tree(tree: &serde_json::Value) -> String {
    fn walk(node: &serde_json::Value, depth: usize, res: &mut String) {
        res.push_str(&format!(
            "{:indent$}{} type={} llm={} status={}{}\n",
            "",
            node["name"].as_str().unwrap_or("?"),
            node["span_type"].as_str().unwrap_or("?"),
            node["is_llm"],
            node["status"].as_str().unwrap_or("?"),
            if node["orphan"] == true { " ORPHAN" } else { "" },
            indent = depth * 2
        ));
        for child in node["children"].as_array().into_iter().flatten() {
            walk(child, depth + 1, res);
        }
    }
    let mut res = String::new();
    for node in tree["spans"].as_array().into_iter().flatten() {
        walk(node, 0, &mut res);
    }
    res
}

/// The `partialSuccess` of an OTLP/JSON response, as `rejected=N message`.
pub(crate) fn partial_success(response: &Response) -> String {
    let body = response.json();
    match body.get("partialSuccess") {
        None | Some(serde_json::Value::Null) => "none".to_owned(),
        Some(partial) => format!(
            "rejected={} {}",
            partial["rejectedSpans"],
            partial["errorMessage"].as_str().unwrap_or("")
        ),
    }
}
