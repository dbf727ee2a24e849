//! Tests of key parsing and project resolution (configured keys; store-backed keys are covered
//! end to end by `loupe keys create` in the app's integration tests).

use expect_test::expect;

use super::*;

fn project(id: &str) -> ProjectId {
    ProjectId::new(id).unwrap()
}

fn auth(require_key: bool) -> Auth {
    let keys = vec![
        ConfiguredKey { project: project("alpha"), key_sha256: hash_key("key-a") },
        ConfiguredKey { project: project("beta"), key_sha256: hash_key("key-b").to_uppercase() },
    ];
    Auth::new(AuthConfig { keys, require_key }, None)
}

#[track_caller]
fn check(auth: &Auth, headers: &[(&str, &str)], expect: expect_test::Expect) {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        map.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let res = match runtime.block_on(auth.resolve_headers(&map)) {
        Ok(project) => format!("project {project}"),
        Err(error) => format!("{:?}: {error}", error.code()),
    };
    expect.assert_eq(&res);
}

#[test]
fn keys_resolve_to_their_projects() {
    let auth = auth(true);
    check(&auth, &[("authorization", "Bearer key-a")], expect!["project alpha"]);
    check(&auth, &[("authorization", "bearer   key-b ")], expect!["project beta"]);
    check(&auth, &[("x-loupe-api-key", "key-b")], expect!["project beta"]);
    check(&auth, &[("x-loupe-api-key", "nope")], expect!["Unauthorized: the api key is not valid"]);
    check(
        &auth,
        &[],
        expect![
            "Unauthorized: an api key is required: send `Authorization: Bearer <key>` or `x-loupe-api-key`"
        ],
    );
    check(
        &auth,
        &[("authorization", "Basic Zm9vOmJhcg==")],
        expect!["Unauthorized: the authorization header is malformed: expected `Bearer <key>`"],
    );
}

#[test]
fn open_mode_uses_the_default_project_but_still_checks_keys() {
    let auth = auth(false);
    check(&auth, &[], expect!["project default"]);
    check(&auth, &[("authorization", "Bearer key-a")], expect!["project alpha"]);
    check(
        &auth,
        &[("authorization", "Bearer wrong")],
        expect!["Unauthorized: the api key is not valid"],
    );
    check(&Auth::open(), &[], expect!["project default"]);
}

#[test]
fn new_keys_are_random_and_only_their_hash_is_kept() {
    let (key, record) = new_key(project("alpha"), "ci", 7).unwrap();
    let (other, _) = new_key(project("alpha"), "ci", 7).unwrap();
    assert_ne!(key, other);
    assert_eq!(key.len(), 43);
    assert!(key.starts_with("lp_"));
    assert_eq!(record.key_hash, hash_key(&key));
    assert!(!record.key_hash.contains(&key[3..]));
    assert_eq!(record.prefix, &key[..7]);
    expect!["2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"]
        .assert_eq(&hash_key("foo"));
}
