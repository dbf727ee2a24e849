//! Config loading: every example config in `docs/` parses and validates, env overrides apply,
//! and mistakes get clear messages.

use expect_test::expect;

use super::*;

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

#[test]
fn every_example_config_in_docs_parses() {
    let mut n_checked = 0;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(docs_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    entries.sort();
    for path in entries {
        let raw = load(Some(&path), &[]).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        Config::from_raw(raw).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        n_checked += 1;
    }
    assert!(n_checked >= 1, "docs/loupe.toml is missing");
}

#[test]
fn env_overrides_file_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loupe.toml");
    std::fs::write(&path, "data_dir = \"a\"\n[server]\nhttp_addr = \"127.0.0.1:1\"\n").unwrap();
    let env = [
        ("LOUPE_DATA_DIR", "/tmp/loupe-b"),
        ("LOUPE_SERVER__HTTP_ADDR", "127.0.0.1:0"),
        ("LOUPE_INGEST__MAX_BODY_BYTES", "2048"),
        ("LOUPE_URL", "http://ignored"),
        ("LOUPE_TEST_PYTHON", "ignored"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let config = Config::from_raw(load(Some(&path), &env).unwrap()).unwrap();
    expect!["/tmp/loupe-b 127.0.0.1:0 Some(127.0.0.1:4317) 2048"].assert_eq(&format!(
        "{} {} {:?} {}",
        config.data_dir.display(),
        config.http_addr,
        config.grpc_addr,
        config.ingest.max_body_bytes
    ));
}

#[track_caller]
fn check_error(toml_text: &str, expect: expect_test::Expect) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loupe.toml");
    std::fs::write(&path, toml_text).unwrap();
    let res = load(Some(&path), &[]).and_then(Config::from_raw);
    let message = match res {
        Ok(_) => "ok".to_owned(),
        Err(error) => format!("{error:#}").replace(&path.display().to_string(), "loupe.toml"),
    };
    expect.assert_eq(&message);
}

#[test]
fn mistakes_are_explained() {
    check_error(
        "[server]\nhttp_adr = \"x\"\n",
        expect![[r#"
        reading loupe.toml: unknown field `http_adr`, expected one of `http_addr`, `grpc_addr`, `grpc_enabled`
        in `server`
    "#]],
    );
    check_error(
        "[server]\nhttp_addr = \"nowhere\"\n",
        expect![[
            r#"server.http_addr: "nowhere" is not an address like 127.0.0.1:4318: invalid socket address syntax"#
        ]],
    );
    check_error(
        "[[auth.keys]]\nproject = \"Bad Name\"\nkey = \"k\"\n",
        expect![[
            r#"auth.keys[0].project: invalid project id "Bad Name": use 1 to 64 lowercase letters, digits, '-' or '_'"#
        ]],
    );
    check_error(
        "[[auth.keys]]\nproject = \"a\"\n",
        expect!["auth.keys[0]: give exactly one of key_sha256 or key"],
    );
    check_error(
        "[ingest]\nmax_body_bytes = 10\n",
        expect!["ingest.max_body_bytes must be between 1024 and 1073741824, got 10"],
    );
}

#[test]
fn keys_in_the_file_require_keys_by_default() {
    let raw: RawConfig = toml::from_str(
        "[[auth.keys]]\nproject = \"a\"\nkey = \"secret\"\n[[auth.keys]]\nproject = \"b\"\nkey_sha256 = \"2C26B46B68FFC68FF99B453C1D30413413422D706483BFA0F98A5E886266E7AE\"\n",
    )
    .unwrap();
    let config = Config::from_raw(raw).unwrap();
    assert!(config.auth.require_key);
    assert_eq!(config.auth.keys[0].key_sha256, auth::hash_key("secret"));
    assert_eq!(config.auth.keys[1].key_sha256, auth::hash_key("foo"));
}

#[test]
fn store_url_selects_clickhouse_with_a_spill_in_the_data_dir() {
    let env = [
        ("LOUPE_STORE", "clickhouse://ignored-here:8123/db"),
        ("LOUPE_STORE__URL", "clickhouse://127.0.0.1:18123/traces"),
        ("LOUPE_DATA_DIR", "/tmp/loupe-x"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let raw = load(None, &env).unwrap();
    let config = Config::from_raw(raw).unwrap();
    let clickhouse = config.clickhouse.expect("clickhouse selected by the URL");
    assert_eq!(clickhouse.spill_dir, Some(PathBuf::from("/tmp/loupe-x/clickhouse-spill")));

    let mut raw = load(None, &[]).unwrap();
    raw.store.url = Some("postgres://x".to_owned());
    let error = Config::from_raw(raw).unwrap_err();
    assert!(format!("{error:#}").contains("not a store URL"), "{error:#}");

    let raw = load(None, &[]).unwrap();
    assert!(Config::from_raw(raw).unwrap().clickhouse.is_none(), "sqlite by default");
}

#[test]
fn feedback_grace_period_from_file_and_env() {
    let grace_period = |toml_text: &str, env: &[(&str, &str)]| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loupe.toml");
        std::fs::write(&path, toml_text).unwrap();
        let env: Vec<(String, String)> =
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        match load(Some(&path), &env).and_then(Config::from_raw) {
            Ok(config) => format!("{}s", config.feedback.grace_period_ns / 1_000_000_000),
            Err(error) => format!("{error:#}"),
        }
    };
    expect!["600s"].assert_eq(&grace_period("", &[]));
    expect!["30s"].assert_eq(&grace_period("[feedback]\ngrace_period = \"30s\"\n", &[]));
    expect!["7200s"].assert_eq(&grace_period(
        "[feedback]\ngrace_period = \"30s\"\n",
        &[("LOUPE_FEEDBACK__GRACE_PERIOD", "2h")],
    ));
    expect![[r#"feedback.grace_period: cannot read duration "soon"; use a duration with a unit, e.g. "30s", "10m" or "1h""#]]
        .assert_eq(&grace_period("[feedback]\ngrace_period = \"soon\"\n", &[]));
    expect![[r#"feedback.grace_period must be at least 1s; use a duration with a unit, e.g. "30s", "10m" or "1h""#]]
        .assert_eq(&grace_period("[feedback]\ngrace_period = \"500ms\"\n", &[]));
}
