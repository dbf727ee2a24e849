//! Sealing one span: every content field (the raw content attributes and content event
//! attributes that `pipeline::content` names, and the view's system instructions, messages,
//! input/output text and document texts) moves into encrypted envelopes, and back.
//!
//! Two envelopes, because the store can replace a span's view without its raw span
//! (`Store::update_views`): the raw part goes into the attribute [`SEALED_ATTR`] (bytes) with
//! its key id in [`SEALED_KEY_ATTR`]; the view part into `view.metadata[SEALED_VIEW_METADATA]`
//! as `{"key": id, "data": base64}`. An envelope is `version (1) ‖ nonce (12) ‖ AES-256-GCM
//! ciphertext`, with the project, trace id, span id and key id as associated data, so an
//! envelope copied onto another span does not open.

use std::cell::Cell;

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, OsRng, Payload};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use model::{AnyValue, Document, KeyValue, LlmView, Message, Part, StoredSpan};
use pipeline::content::{is_content_event_key, is_content_key};
use serde::{Deserialize, Serialize};

use crate::vault::{DataKey, Vault};
use crate::{Error, Result};

/// The raw span's envelope (bytes).
pub const SEALED_ATTR: &str = "loupe.sealed";
/// The id of the key both envelopes of a span are sealed with.
pub const SEALED_KEY_ATTR: &str = "loupe.sealed.key";
/// The view's envelope, in `view.metadata`.
pub const SEALED_VIEW_METADATA: &str = "loupe.sealed";
/// Set (`true`) on a span read back whose key was destroyed: its content is gone.
pub const ERASED_ATTR: &str = "loupe.erased";

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

/// The raw span's content, with each value's position so it goes back exactly where it was.
#[derive(Debug, Default, Serialize, Deserialize)]
struct RawContent {
    attributes: Vec<(usize, KeyValue)>,
    events: Vec<(usize, Vec<(usize, KeyValue)>)>,
}

/// The view's content.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ViewContent {
    system_instructions: Vec<Part>,
    input_messages: Vec<Message>,
    output_messages: Vec<Message>,
    input_text: Option<String>,
    output_text: Option<String>,
    documents: Vec<(usize, String)>,
}

impl RawContent {
    fn is_empty(&self) -> bool {
        self.attributes.is_empty() && self.events.is_empty()
    }
}

impl ViewContent {
    fn is_empty(&self) -> bool {
        self.system_instructions.is_empty()
            && self.input_messages.is_empty()
            && self.output_messages.is_empty()
            && self.input_text.is_none()
            && self.output_text.is_none()
            && self.documents.is_empty()
    }
}

/// Seals the content of a span that names a user (raw part and view part); spans without a
/// user id or without content are left as they are. The user's key is created on first use.
pub fn seal(vault: &Vault, span: &mut StoredSpan) -> Result<()> {
    seal_raw(vault, span)?;
    seal_view(vault, span)
}

/// Whether [`seal`] would change the span: it names a user and has content left to seal.
/// Spans sealed already have none.
pub(crate) fn needs_sealing(span: &StoredSpan) -> bool {
    if span.view.user_id.is_none() {
        return false;
    }
    let raw = &span.raw;
    let view = &span.view;
    raw.attributes.iter().any(|kv| is_content_key(&kv.key))
        || raw.events.iter().any(|event| {
            event.attributes.iter().any(|kv| is_content_event_key(&event.name, &kv.key))
        })
        || !view.system_instructions.is_empty()
        || !view.input_messages.is_empty()
        || !view.output_messages.is_empty()
        || view.input_text.is_some()
        || view.output_text.is_some()
        || view.documents.iter().any(|document| document.content.is_some())
}

/// Seals only the view (for `Store::update_views`, which leaves raw spans as they are).
pub(crate) fn seal_view(vault: &Vault, span: &mut StoredSpan) -> Result<()> {
    let Some(user) = span.view.user_id.clone() else { return Ok(()) };
    let content = take_view_content(&mut span.view);
    if content.is_empty() {
        return Ok(());
    }
    let key = vault.key_for_write(&span.project, &user)?;
    let envelope = encrypt(&key, span, &content)?;
    span.view.metadata.insert(
        SEALED_VIEW_METADATA.to_owned(),
        serde_json::json!({ "key": key.id, "data": STANDARD.encode(envelope) }),
    );
    Ok(())
}

fn seal_raw(vault: &Vault, span: &mut StoredSpan) -> Result<()> {
    let Some(user) = span.view.user_id.clone() else { return Ok(()) };
    let content = take_raw_content(span);
    if content.is_empty() {
        return Ok(());
    }
    let key = vault.key_for_write(&span.project, &user)?;
    let envelope = encrypt(&key, span, &content)?;
    span.raw.attributes.push(KeyValue::new(SEALED_ATTR, AnyValue::Bytes(envelope)));
    span.raw.attributes.push(KeyValue::string(SEALED_KEY_ATTR, key.id));
    Ok(())
}

/// Puts a span's sealed content back. When its key was destroyed, the envelopes are dropped,
/// the span gets [`ERASED_ATTR`] and `view.flags.content_removed`.
pub fn unseal(vault: &Vault, span: &mut StoredSpan) -> Result<()> {
    let mut erased = false;
    let raw_envelope = take_attr(&mut span.raw.attributes, SEALED_ATTR);
    let raw_key = take_attr(&mut span.raw.attributes, SEALED_KEY_ATTR);
    if let Some(envelope) = raw_envelope {
        let (AnyValue::Bytes(envelope), Some(AnyValue::String(key_id))) = (envelope, raw_key)
        else {
            return Err(malformed(span, "the envelope or its key id has the wrong type"));
        };
        match vault.key_by_id(&key_id)? {
            Some(cipher) => {
                let key = DataKey { id: key_id, cipher };
                let content: RawContent = decrypt(&key, span, &envelope)?;
                restore_raw(span, content);
            }
            None => erased = true,
        }
    }
    if let Some(sealed) = span.view.metadata.remove(SEALED_VIEW_METADATA) {
        let key_id = sealed.get("key").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        let data = sealed.get("data").and_then(|v| v.as_str()).unwrap_or_default();
        let envelope =
            STANDARD.decode(data).map_err(|e| malformed(span, &format!("view envelope: {e}")))?;
        match vault.key_by_id(&key_id)? {
            Some(cipher) => {
                let key = DataKey { id: key_id, cipher };
                let content: ViewContent = decrypt(&key, span, &envelope)?;
                restore_view(&mut span.view, content);
            }
            None => erased = true,
        }
    }
    if erased {
        mark_erased(span);
    }
    Ok(())
}

/// Marks a span whose content was erased.
pub(crate) fn mark_erased(span: &mut StoredSpan) {
    span.view.flags.content_removed = true;
    if model::attr_get(&span.raw.attributes, ERASED_ATTR).is_none() {
        span.raw.attributes.push(KeyValue::new(ERASED_ATTR, AnyValue::Bool(true)));
    }
}

fn take_attr(attributes: &mut Vec<KeyValue>, key: &str) -> Option<AnyValue> {
    let index = attributes.iter().rposition(|kv| kv.key == key)?;
    Some(attributes.remove(index).value)
}

fn take_raw_content(span: &mut StoredSpan) -> RawContent {
    let mut res = RawContent {
        attributes: take_matching(&mut span.raw.attributes, is_content_key),
        events: Vec::new(),
    };
    for (i, event) in span.raw.events.iter_mut().enumerate() {
        let name = event.name.clone();
        let taken = take_matching(&mut event.attributes, |key| is_content_event_key(&name, key));
        if !taken.is_empty() {
            res.events.push((i, taken));
        }
    }
    res
}

/// Removes the matching attributes, returning each with its index in the original list.
fn take_matching(
    attributes: &mut Vec<KeyValue>,
    is_content: impl Fn(&str) -> bool,
) -> Vec<(usize, KeyValue)> {
    if !attributes.iter().any(|kv| is_content(&kv.key)) {
        return Vec::new();
    }
    let mut taken = Vec::new();
    let mut kept = Vec::with_capacity(attributes.len());
    for (i, kv) in std::mem::take(attributes).into_iter().enumerate() {
        if is_content(&kv.key) { taken.push((i, kv)) } else { kept.push(kv) }
    }
    *attributes = kept;
    taken
}

/// Inserts values back at their original indices (ascending, so each index is final).
fn put_back(attributes: &mut Vec<KeyValue>, taken: Vec<(usize, KeyValue)>) {
    for (i, kv) in taken {
        let i = i.min(attributes.len());
        attributes.insert(i, kv);
    }
}

fn restore_raw(span: &mut StoredSpan, content: RawContent) {
    put_back(&mut span.raw.attributes, content.attributes);
    for (i, taken) in content.events {
        if let Some(event) = span.raw.events.get_mut(i) {
            put_back(&mut event.attributes, taken);
        }
    }
}

fn take_view_content(view: &mut LlmView) -> ViewContent {
    ViewContent {
        system_instructions: std::mem::take(&mut view.system_instructions),
        input_messages: std::mem::take(&mut view.input_messages),
        output_messages: std::mem::take(&mut view.output_messages),
        input_text: view.input_text.take(),
        output_text: view.output_text.take(),
        documents: take_document_texts(&mut view.documents),
    }
}

fn take_document_texts(documents: &mut [Document]) -> Vec<(usize, String)> {
    let mut res = Vec::new();
    for (i, document) in documents.iter_mut().enumerate() {
        if let Some(text) = document.content.take() {
            res.push((i, text));
        }
    }
    res
}

fn restore_view(view: &mut LlmView, content: ViewContent) {
    view.system_instructions = content.system_instructions;
    view.input_messages = content.input_messages;
    view.output_messages = content.output_messages;
    view.input_text = content.input_text;
    view.output_text = content.output_text;
    for (i, text) in content.documents {
        if let Some(document) = view.documents.get_mut(i) {
            document.content = Some(text);
        }
    }
}

fn associated_data(key_id: &str, span: &StoredSpan) -> Vec<u8> {
    format!(
        "loupe.sealed.v1\0{}\0{}\0{}\0{key_id}",
        span.project.as_str(),
        span.raw.trace_id,
        span.raw.span_id
    )
    .into_bytes()
}

fn encrypt<T: Serialize>(key: &DataKey, span: &StoredSpan, content: &T) -> Result<Vec<u8>> {
    let plaintext =
        serde_json::to_vec(content).map_err(|e| malformed(span, &format!("encoding: {e}")))?;
    let nonce = next_nonce().map_err(|e| Error::Random(e.to_string()))?;
    let nonce = aes_gcm::Nonce::from(nonce);
    let aad = associated_data(&key.id, span);
    let ciphertext = key
        .cipher
        .encrypt(&nonce, Payload { msg: &plaintext, aad: &aad })
        .map_err(|_| malformed(span, "encryption failed"))?;
    let mut res = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
    res.push(VERSION);
    res.extend_from_slice(&nonce);
    res.extend_from_slice(&ciphertext);
    Ok(res)
}

thread_local! {
    /// This thread's next nonce, as a 96-bit counter (in a `u128`) started at a random point.
    static NEXT_NONCE: Cell<Option<u128>> = const { Cell::new(None) };
}

/// A fresh GCM nonce without a system call per envelope: each thread draws a random 96-bit
/// starting point from the OS once and counts up from it. Two threads or processes repeat a
/// nonce only if their counted ranges overlap, which for random starts in a 2^96 space is as
/// unlikely as two random nonces colliding.
fn next_nonce() -> std::result::Result<[u8; NONCE_LEN], aes_gcm::aead::rand_core::Error> {
    const MASK: u128 = (1 << 96) - 1;
    let current = match NEXT_NONCE.get() {
        Some(current) => current,
        None => {
            let mut start = [0u8; 16];
            OsRng.try_fill_bytes(&mut start[4..])?;
            u128::from_be_bytes(start)
        }
    };
    NEXT_NONCE.set(Some(current.wrapping_add(1) & MASK));
    let bytes = current.to_be_bytes();
    let mut res = [0u8; NONCE_LEN];
    res.copy_from_slice(&bytes[4..]);
    Ok(res)
}

fn decrypt<T: for<'de> Deserialize<'de>>(
    key: &DataKey,
    span: &StoredSpan,
    envelope: &[u8],
) -> Result<T> {
    if envelope.len() < 1 + NONCE_LEN || envelope[0] != VERSION {
        return Err(malformed(span, "unknown envelope version"));
    }
    let nonce = aes_gcm::Nonce::from_slice(&envelope[1..1 + NONCE_LEN]);
    let aad = associated_data(&key.id, span);
    let plaintext = key
        .cipher
        .decrypt(nonce, Payload { msg: &envelope[1 + NONCE_LEN..], aad: &aad })
        .map_err(|_| Error::Tampered { span: span.raw.span_id.to_string() })?;
    serde_json::from_slice(&plaintext).map_err(|e| malformed(span, &format!("decoding: {e}")))
}

fn malformed(span: &StoredSpan, message: &str) -> Error {
    Error::Malformed { span: span.raw.span_id.to_string(), message: message.to_owned() }
}
