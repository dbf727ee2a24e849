//! Sealing round trips, destroyed and wrong keys, tampering, and erasure through a real SQLite
//! store with a scan of its files.

use std::sync::Arc;

use model::{AnyValue, Document, Event, KeyValue, Message, Part, StoredSpan};
use store::Store;
use store::suite::{llm, span};

use crate::{ERASED_ATTR, Eraser, Error, SEALED_ATTR, SealingStore, Vault, seal, unseal};

const SECRET_PROMPT: &str = "my card pin is 4417 and my dog is Biscuit";
const SECRET_ATTR: &str = "attribute secret: Quokka-Velvet-991";
const SECRET_EVENT: &str = "event secret: Marmalade-Zeppelin";
const SECRET_DOC: &str = "doc secret: Tangerine-Obelisk";
const CHILD_SECRET: &str = "child secret: Saffron-Harbour";

/// A span of user `user` carrying content everywhere content can be.
fn user_span(user: Option<&str>, trace: u64, id: u64, parent: Option<u64>) -> StoredSpan {
    let mut res =
        llm(span("default", trace, id, parent, "chat", 0, 10), "gpt-4o", 5, 7, SECRET_PROMPT);
    res.view.user_id = user.map(str::to_owned);
    res.view.system_instructions = vec![Part::Text { content: "be terse".to_owned() }];
    res.view.input_text = Some(SECRET_PROMPT.to_owned());
    res.view.output_text = Some("the answer".to_owned());
    res.view.documents = vec![Document {
        id: Some("d1".to_owned()),
        score: Some(0.5),
        content: Some(SECRET_DOC.to_owned()),
        metadata: None,
    }];
    res.raw.attributes = vec![
        KeyValue::string("gen_ai.request.model", "gpt-4o"),
        KeyValue::string("input.value", SECRET_ATTR),
        KeyValue::int("gen_ai.usage.input_tokens", 5),
        KeyValue::string("gen_ai.prompt.0.role", "user"),
        KeyValue::string("gen_ai.prompt.0.content", SECRET_PROMPT),
    ];
    if let Some(user) = user {
        res.raw.attributes.push(KeyValue::string("user.id", user));
    }
    res.raw.events = vec![Event {
        time_unix_nano: 1,
        name: "gen_ai.user.message".to_owned(),
        attributes: vec![
            KeyValue::string("gen_ai.system", "openai"),
            KeyValue::string("content", SECRET_EVENT),
        ],
        dropped_attributes_count: 0,
    }];
    res
}

fn vault() -> (tempfile::TempDir, Vault) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let vault = Vault::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    (dir, vault)
}

fn text_of(span: &StoredSpan) -> String {
    serde_json::to_string(span).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn seal_then_unseal_gives_back_the_same_span() {
    let (_dir, vault) = vault();
    let original = user_span(Some("alice"), 1, 1, None);
    let mut sealed = original.clone();
    seal(&vault, &mut sealed).unwrap_or_else(|e| panic!("{e}"));
    let text = text_of(&sealed);
    for secret in [SECRET_PROMPT, SECRET_ATTR, SECRET_EVENT, SECRET_DOC, "be terse", "the answer"] {
        assert!(!text.contains(secret), "{secret} left in the sealed span");
    }
    assert!(model::attr_get(&sealed.raw.attributes, SEALED_ATTR).is_some());
    // Structure stays readable.
    assert_eq!(model::attr_str(&sealed.raw.attributes, "user.id"), Some("alice"));
    assert_eq!(sealed.view.usage.input, Some(5));
    assert_eq!(sealed.view.documents[0].id.as_deref(), Some("d1"));

    let mut unsealed = sealed;
    unseal(&vault, &mut unsealed).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(unsealed, original);
}

#[test]
fn spans_without_a_user_are_not_sealed() {
    let (_dir, vault) = vault();
    let original = user_span(None, 1, 1, None);
    let mut span = original.clone();
    seal(&vault, &mut span).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(span, original);
}

#[test]
fn destroyed_key_leaves_the_span_without_content_and_marked() {
    let (_dir, vault) = vault();
    let project = model::ProjectId::default_project();
    let mut span = user_span(Some("alice"), 1, 1, None);
    seal(&vault, &mut span).unwrap_or_else(|e| panic!("{e}"));
    assert!(vault.has_key(&project, "alice").unwrap_or_else(|e| panic!("{e}")));
    let (_, n) = vault.destroy(&project, &["alice".to_owned()]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 1);
    assert!(!vault.has_key(&project, "alice").unwrap_or_else(|e| panic!("{e}")));
    unseal(&vault, &mut span).unwrap_or_else(|e| panic!("{e}"));
    assert!(!text_of(&span).contains(SECRET_PROMPT));
    assert!(span.view.input_messages.is_empty());
    assert!(span.view.flags.content_removed);
    assert_eq!(model::attr_get(&span.raw.attributes, ERASED_ATTR), Some(&AnyValue::Bool(true)));
    assert_eq!(model::attr_str(&span.raw.attributes, "gen_ai.request.model"), Some("gpt-4o"));
}

#[test]
fn a_destroyed_key_stays_destroyed_after_reopening_the_vault() {
    let (dir, vault) = vault();
    let project = model::ProjectId::default_project();
    let mut span = user_span(Some("alice"), 1, 1, None);
    seal(&vault, &mut span).unwrap_or_else(|e| panic!("{e}"));
    vault.destroy(&project, &["alice".to_owned()]).unwrap_or_else(|e| panic!("{e}"));
    drop(vault);
    let vault = Vault::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    unseal(&vault, &mut span).unwrap_or_else(|e| panic!("{e}"));
    assert!(span.view.flags.content_removed);
    assert!(span.view.input_messages.is_empty());
}

#[test]
fn another_vaults_key_does_not_open_the_envelope() {
    let (_dir, vault) = vault();
    let (_other_dir, other) = vault_pair();
    let mut span = user_span(Some("alice"), 1, 1, None);
    seal(&vault, &mut span).unwrap_or_else(|e| panic!("{e}"));
    // The other vault has no key of that id: the content reads as erased, not as plaintext.
    let mut copy = span.clone();
    unseal(&other, &mut copy).unwrap_or_else(|e| panic!("{e}"));
    assert!(copy.view.input_messages.is_empty());
    assert!(copy.view.flags.content_removed);
}

fn vault_pair() -> (tempfile::TempDir, Vault) {
    vault()
}

#[test]
fn tampered_or_moved_envelopes_are_detected() {
    let (_dir, vault) = vault();
    let mut span = user_span(Some("alice"), 1, 1, None);
    seal(&vault, &mut span).unwrap_or_else(|e| panic!("{e}"));

    let mut flipped = span.clone();
    for kv in &mut flipped.raw.attributes {
        if let (SEALED_ATTR, AnyValue::Bytes(bytes)) = (kv.key.as_str(), &mut kv.value) {
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
        }
    }
    assert!(matches!(unseal(&vault, &mut flipped), Err(Error::Tampered { .. })));

    // The same user's envelope moved onto another span of theirs does not open either.
    let mut moved = span.clone();
    moved.raw.span_id = store::suite::span_id(2);
    assert!(matches!(unseal(&vault, &mut moved), Err(Error::Tampered { .. })));
}

#[test]
fn new_messages_of_a_user_after_erasure_get_a_new_key() {
    let (_dir, vault) = vault();
    let project = model::ProjectId::default_project();
    let mut old = user_span(Some("alice"), 1, 1, None);
    seal(&vault, &mut old).unwrap_or_else(|e| panic!("{e}"));
    vault.destroy(&project, &["alice".to_owned()]).unwrap_or_else(|e| panic!("{e}"));
    let original = user_span(Some("alice"), 2, 2, None);
    let mut new = original.clone();
    seal(&vault, &mut new).unwrap_or_else(|e| panic!("{e}"));
    unseal(&vault, &mut new).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(new, original);
    unseal(&vault, &mut old).unwrap_or_else(|e| panic!("{e}"));
    assert!(old.view.input_messages.is_empty(), "the old content stays erased");
}

#[tokio::test]
async fn erasing_a_user_leaves_no_plaintext_in_the_data_dir() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let sqlite = store_sqlite::SqliteStore::open(store_sqlite::SqliteConfig::new(dir.path()))
        .unwrap_or_else(|e| panic!("{e}"));
    let vault = Arc::new(Vault::open(dir.path()).unwrap_or_else(|e| panic!("{e}")));
    let store = Arc::new(SealingStore::new(Arc::new(sqlite), vault.clone()));
    let eraser = Eraser::new(store.clone(), None);
    let project = model::ProjectId::default_project();

    let mut child = user_span(None, 1, 2, Some(1));
    child.view.input_messages = vec![Message::text("user", CHILD_SECRET)];
    let bob = user_span(Some("bob"), 2, 3, None);
    let spans = vec![user_span(Some("alice"), 1, 1, None), child, bob.clone()];
    store.write_spans(&spans).await.unwrap_or_else(|e| panic!("{e}"));
    let trace = store
        .get_trace(&project, store::suite::trace_id(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(trace[0].view.input_messages, spans[0].view.input_messages);

    let erasure =
        eraser.erase_user(&project, "alice", "cli").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((erasure.keys_destroyed, erasure.traces_purged, erasure.spans_purged), (1, 1, 2));
    assert!(!erasure.key_ids.iter().any(|id| id.contains("alice")));

    let trace = store
        .get_trace(&project, store::suite::trace_id(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(trace.len(), 2);
    for span in &trace {
        assert!(span.view.input_messages.is_empty());
        assert!(span.view.flags.content_removed);
    }
    let other = store
        .get_trace(&project, store::suite::trace_id(2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(other[0].view.input_messages, bob.view.input_messages, "bob is untouched");
    assert_eq!(eraser.erasures(&project).unwrap_or_else(|e| panic!("{e}")), vec![erasure]);

    for entry in std::fs::read_dir(dir.path()).unwrap_or_else(|e| panic!("{e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
        for secret in [CHILD_SECRET, SECRET_ATTR] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} found in {}",
                path.display()
            );
        }
    }
}

#[test]
fn envelopes_never_share_a_nonce() {
    let (_dir, vault) = vault();
    let mut nonces = std::collections::HashSet::new();
    for id in 1..=500 {
        let mut span = user_span(Some("alice"), 1, id, None);
        seal(&vault, &mut span).unwrap_or_else(|e| panic!("{e}"));
        let raw = match model::attr_get(&span.raw.attributes, SEALED_ATTR) {
            Some(AnyValue::Bytes(envelope)) => envelope[1..13].to_vec(),
            other => panic!("no raw envelope: {other:?}"),
        };
        assert!(nonces.insert(raw), "a nonce was used twice");
    }
    // Another thread counts from its own random start.
    let vault = Arc::new(vault);
    let other = std::thread::spawn({
        let vault = vault.clone();
        move || {
            let mut span = user_span(Some("alice"), 2, 1, None);
            seal(&vault, &mut span).unwrap_or_else(|e| panic!("{e}"));
            match model::attr_get(&span.raw.attributes, SEALED_ATTR) {
                Some(AnyValue::Bytes(envelope)) => envelope[1..13].to_vec(),
                other => panic!("no raw envelope: {other:?}"),
            }
        }
    });
    let nonce = other.join().unwrap_or_else(|_| panic!("the sealing thread panicked"));
    assert!(nonces.insert(nonce), "another thread reused a nonce");
}

/// Words of `user_span`'s secrets that occur nowhere else in a span, so LZ4 keeps them whole.
const DISTINCT_SECRETS: [&str; 3] =
    ["Quokka-Velvet-991", "Marmalade-Zeppelin", "Tangerine-Obelisk"];

/// The plain-text secrets of `user_span` that are found in a data dir's files.
fn secrets_on_disk(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
        for secret in DISTINCT_SECRETS {
            if bytes.windows(secret.len()).any(|w| w == secret.as_bytes()) {
                found.push(format!("{secret} in {}", path.display()));
            }
        }
    }
    found
}

/// Records encoded ahead (`Store::encode_records`) are only ever of sealed spans: none for a
/// batch that still needs sealing, and records of unsealed spans handed to
/// `write_spans_encoded` are not used: the spans are sealed and encoded again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_encoded_ahead_never_carry_plaintext_of_users() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let sqlite = Arc::new(
        store_sqlite::SqliteStore::open(store_sqlite::SqliteConfig::new(dir.path()))
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let vault = Arc::new(Vault::open(dir.path()).unwrap_or_else(|e| panic!("{e}")));
    let store = SealingStore::new(sqlite.clone(), vault);
    let project = model::ProjectId::default_project();

    let plain = vec![user_span(Some("alice"), 1, 1, None)];
    assert_eq!(store.encode_records(&plain).unwrap_or_else(|e| panic!("{e}")), None);
    // Records of the plain span, as a careless caller could make them: they hold the secrets.
    let plain_records = sqlite
        .encode_records(&plain)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("sqlite encodes ahead"));
    let plain_bytes = &plain_records[0];
    for secret in DISTINCT_SECRETS {
        assert!(plain_bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret}");
    }
    store.write_spans_encoded(&plain, &plain_records).await.unwrap_or_else(|e| panic!("{e}"));

    let mut sealed = vec![user_span(Some("bob"), 2, 1, None)];
    store.seal_spans(&mut sealed).unwrap_or_else(|e| panic!("{e}"));
    let records = store
        .encode_records(&sealed)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("sealed spans are encoded ahead"));
    store.write_spans_encoded(&sealed, &records).await.unwrap_or_else(|e| panic!("{e}"));

    for (trace, user) in [(1, "alice"), (2, "bob")] {
        let read = store
            .get_trace(&project, store::suite::trace_id(trace))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let written = user_span(Some(user), trace, 1, None);
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].raw, written.raw, "opened on read");
        assert_eq!(read[0].view.input_messages, written.view.input_messages);
        assert_eq!(read[0].view.documents, written.view.documents);
    }
    drop(store);
    drop(sqlite);
    assert_eq!(secrets_on_disk(dir.path()), Vec::<String>::new());
}
