//! The recording gateway: OpenAI- and Anthropic-compatible endpoints that forward to upstreams and record each call as a span.
