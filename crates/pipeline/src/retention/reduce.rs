//! The tier transforms: what is left of a span at each retention tier.

use model::{KeyValue, StoredSpan};
use store::RetentionTier;

use crate::content::{CONTENT_REMOVED_ATTR, remove_content};

/// Prefix of the fingerprint attributes (`loupe.fingerprint.input`, `...system`).
const FINGERPRINT_ATTR_PREFIX: &str = "loupe.fingerprint.";

/// The GenAI attributes the view's structural fields are derived from, kept at the
/// fingerprints tier so `loupe reindex` rebuilds the same structure (a key ending in `.` is a
/// prefix).
const STRUCTURAL_ATTRS: &[&str] = &[
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.system",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.response.finish_reasons",
    "gen_ai.usage.",
    "gen_ai.tool.name",
];

fn is_structural(key: &str) -> bool {
    key.starts_with(FINGERPRINT_ATTR_PREFIX)
        || key == CONTENT_REMOVED_ATTR
        || STRUCTURAL_ATTRS
            .iter()
            .any(|k| if k.ends_with('.') { key.starts_with(k) } else { key == *k })
}

/// The copy of `span` kept at `tier`. Idempotent, and reducing to a tier reduces to every tier
/// below it too:
///
/// - `Full`: the span unchanged.
/// - `Structure`: message content removed exactly as the content policy removes it (prompts,
///   completions, tool arguments and results, document text, in the raw span and the view);
///   every other attribute, the events, timing, tokens, cost and the content fingerprints are
///   kept; `view.flags.content_removed` is set and, when content was there, the attribute
///   `loupe.content.removed = "retention"` is added.
/// - `Fingerprints`: only the skeleton: ids, parent, name, kind, timing, status, the resource's
///   `service.name`, the scope's name and version, the attributes `loupe.fingerprint.*`,
///   `loupe.content.removed` and the GenAI ones the structure is derived from (operation,
///   provider, models, usage, finish reasons, tool name), and the view's structural fields (type, operation, provider,
///   models, response id, usage, finish reasons, request parameters, tool name, environment,
///   time to first token, cost, fingerprints, flags). Events, links, other attributes, the
///   documents, session and user ids, tags and metadata are removed.
pub fn reduce(span: &StoredSpan, tier: RetentionTier) -> StoredSpan {
    let mut span = span.clone();
    if tier == RetentionTier::Full {
        return span;
    }
    if remove_content(&mut span) && !has_attr(&span.raw.attributes, CONTENT_REMOVED_ATTR) {
        span.raw.attributes.push(KeyValue::string(CONTENT_REMOVED_ATTR, "retention"));
    }
    span.view.flags.content_removed = true;
    if tier == RetentionTier::Structure {
        return span;
    }

    let raw = &mut span.raw;
    raw.attributes.retain(|kv| is_structural(&kv.key));
    raw.events.clear();
    raw.dropped_events_count = 0;
    raw.links.clear();
    raw.dropped_links_count = 0;
    raw.dropped_attributes_count = 0;
    raw.resource.attributes.retain(|kv| kv.key == "service.name");
    raw.resource.dropped_attributes_count = 0;
    raw.scope.attributes.clear();
    raw.scope.dropped_attributes_count = 0;

    let view = &mut span.view;
    view.documents.clear();
    view.session_id = None;
    view.user_id = None;
    view.tags.clear();
    view.metadata.clear();
    span
}

fn has_attr(attributes: &[KeyValue], key: &str) -> bool {
    attributes.iter().any(|kv| kv.key == key)
}
