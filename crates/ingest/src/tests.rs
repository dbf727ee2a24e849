//! How receiver errors map onto HTTP statuses, gRPC codes and `Retry-After`.

use expect_test::expect;

use crate::{Error, rpc_code};

#[test]
fn errors_map_to_statuses_and_retry_hints() {
    let errors = [
        Error::TooLarge { limit: 10 },
        Error::UnsupportedContentType("text/plain".to_owned()),
        Error::UnsupportedContentEncoding("br".to_owned()),
        Error::Auth(auth::Error::WrongKey),
        Error::Pipeline(pipeline::Error::Overloaded { queued_spans: 5, retry_after_secs: 2 }),
        Error::Busy { retry_after_secs: 1 },
        Error::SignalNotSupported { signal: "metrics" },
    ];
    let mut res = String::new();
    for error in &errors {
        let code = error.code();
        res.push_str(&format!(
            "{} {:?} retry={:?} {}: {error}\n",
            code.http_status(),
            rpc_code(code),
            error.retry_after_secs(),
            error.outcome(),
        ));
    }
    expect![[r#"
        413 ResourceExhausted retry=None too_large: request body is larger than the limit of 10 bytes
        415 InvalidArgument retry=None unsupported_media_type: unsupported content type "text/plain": send application/x-protobuf or application/json
        415 InvalidArgument retry=None unsupported_media_type: unsupported content encoding "br": send gzip or no compression
        401 Unauthenticated retry=None unauthorized: the api key is not valid
        503 Unavailable retry=Some(2) overloaded: write queue is full (5 spans waiting); retry after 2s
        503 Unavailable retry=Some(1) overloaded: too many request bytes in flight; retry after 1s
        501 Unimplemented retry=None not_implemented: the metrics signal is not supported: loupe accepts traces (POST /v1/traces, TraceService/Export) and GenAI events as logs (POST /v1/logs, LogsService/Export)
    "#]]
    .assert_eq(&res);
}
