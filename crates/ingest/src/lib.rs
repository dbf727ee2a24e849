//! OTLP receivers: otlp_http (axum) and otlp_grpc (tonic). Decode, authenticate, hand batches to the pipeline, answer per the OTLP spec.
