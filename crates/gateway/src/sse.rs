//! Server-sent events passing through the gateway: split into events for recording, and, when
//! the gateway asked the upstream for usage the client did not ask for, the extra usage chunk
//! (and the `"usage":null` key OpenAI then adds to every chunk) removed so the client receives
//! exactly the stream it would have received without the gateway.

use bytes::{Bytes, BytesMut};
use serde_json::Value;

use crate::anthropic::MessagesStream;
use crate::genai::ResponseInfo;
use crate::openai::{ChatStream, ResponsesStream};

/// Which accumulator reads the events.
#[derive(Debug)]
pub enum Accumulator {
    Chat(ChatStream),
    Responses(ResponsesStream),
    Messages(MessagesStream),
}

impl Accumulator {
    fn push(&mut self, value: &Value) -> bool {
        match self {
            Accumulator::Chat(acc) => acc.push(value),
            Accumulator::Responses(acc) => acc.push(value),
            Accumulator::Messages(acc) => acc.push(value),
        }
    }

    pub fn finish(&self) -> ResponseInfo {
        match self {
            Accumulator::Chat(acc) => acc.finish(),
            Accumulator::Responses(acc) => acc.finish(),
            Accumulator::Messages(acc) => acc.finish(),
        }
    }
}

/// Reads a stream as it passes.
#[derive(Debug)]
pub struct SseTap {
    /// Bytes of the event not yet complete.
    pending: BytesMut,
    strip_usage: bool,
    pub accumulator: Accumulator,
    pub n_events: u64,
    /// Whether the stream ended with a `[DONE]` event (OpenAI chat) or a final event.
    pub saw_end: bool,
}

const USAGE_NULL: &[u8] = b",\"usage\":null}";

impl SseTap {
    pub fn new(accumulator: Accumulator, strip_usage: bool) -> SseTap {
        SseTap { pending: BytesMut::new(), strip_usage, accumulator, n_events: 0, saw_end: false }
    }

    /// Feeds bytes from the upstream. Returns the bytes to send to the client now, and whether
    /// an event carrying generated content completed in them.
    pub fn push(&mut self, chunk: Bytes) -> (Bytes, bool) {
        self.pending.extend_from_slice(&chunk);
        let mut has_content = false;
        if !self.strip_usage {
            while let Some(end) = event_end(&self.pending) {
                let event = self.pending.split_to(end);
                has_content |= self.read_event(&event).0;
            }
            return (chunk, has_content);
        }
        let mut out = BytesMut::new();
        while let Some(end) = event_end(&self.pending) {
            let event = self.pending.split_to(end);
            let (content, keep) = self.read_event(&event);
            has_content |= content;
            if keep {
                out.extend_from_slice(&strip_usage_null(&event));
            }
        }
        (out.freeze(), has_content)
    }

    /// The bytes of an incomplete last event, to forward as they are when the stream ends.
    pub fn finish(&mut self) -> Bytes {
        let rest = self.pending.split().freeze();
        if self.strip_usage { rest } else { Bytes::new() }
    }

    /// Returns (carried content, keep it for the client).
    fn read_event(&mut self, event: &[u8]) -> (bool, bool) {
        let Some(data) = event_data(event) else { return (false, true) };
        self.n_events += 1;
        if data == "[DONE]" {
            self.saw_end = true;
            return (false, true);
        }
        let Ok(value) = serde_json::from_str::<Value>(&data) else { return (false, true) };
        if matches!(
            value.get("type").and_then(Value::as_str),
            Some("message_stop" | "response.completed" | "response.incomplete" | "response.failed")
        ) {
            self.saw_end = true;
        }
        let content = self.accumulator.push(&value);
        let usage_only = value.get("choices").and_then(Value::as_array).is_some_and(Vec::is_empty)
            && value.get("usage").is_some_and(Value::is_object);
        let keep = !(self.strip_usage && usage_only);
        (content, keep)
    }
}

/// The end (exclusive, including the blank line) of the first complete event in `buf`.
fn event_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        match buf[i] {
            b'\n' => {
                if buf.get(i + 1) == Some(&b'\n') {
                    return Some(i + 2);
                }
                if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                    return Some(i + 3);
                }
            }
            b'\r' if buf.get(i + 1) == Some(&b'\r') => return Some(i + 2),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The joined `data:` lines of an event, or `None` when it has none (a comment, a keep-alive).
fn event_data(event: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(event).ok()?;
    let mut res: Option<String> = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("data:") {
            let rest = rest.strip_prefix(' ').unwrap_or(rest);
            match &mut res {
                Some(data) => {
                    data.push('\n');
                    data.push_str(rest);
                }
                None => res = Some(rest.to_owned()),
            }
        }
    }
    res
}

/// Removes a top-level `"usage":null` that ends a data line's JSON object.
fn strip_usage_null(event: &[u8]) -> Bytes {
    let mut start = 0;
    while let Some(pos) = find(&event[start..], USAGE_NULL) {
        let at = start + pos;
        let after = at + USAGE_NULL.len();
        if matches!(event.get(after), Some(b'\n' | b'\r')) {
            let mut res = BytesMut::with_capacity(event.len());
            res.extend_from_slice(&event[..at]);
            res.extend_from_slice(b"}");
            res.extend_from_slice(&event[after..]);
            return res.freeze();
        }
        start = at + 1;
    }
    Bytes::copy_from_slice(event)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_injected_usage_across_chunk_boundaries() {
        let stream = concat!(
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}],\"usage\":null}\n\n",
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
            "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n",
            "data: [DONE]\n\n",
        );
        let mut tap = SseTap::new(Accumulator::Chat(ChatStream::default()), true);
        let mut out = Vec::new();
        for piece in stream.as_bytes().chunks(7) {
            out.extend_from_slice(&tap.push(Bytes::copy_from_slice(piece)).0);
        }
        out.extend_from_slice(&tap.finish());
        let expected = concat!(
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
        let info = tap.accumulator.finish();
        assert_eq!(info.usage.input, Some(3));
        assert!(tap.saw_end);
    }
}
