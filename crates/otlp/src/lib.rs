//! OTLP trace requests (protobuf and JSON) to raw spans and back: tolerant decoding, per-span validation, spec-exact responses.
