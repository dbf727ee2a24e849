//! Test helpers: spawn the real loupe binary, OTLP request builders, fixtures, a fake LLM upstream.
