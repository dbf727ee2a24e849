//! Reading an OTLP/HTTP request body safely: the content type picks the decoder, the body is
//! read under a size cap, and gzip is inflated through a reader capped at the same size, so a
//! small compressed body can never grow past the limit in memory (no gzip bombs).

use std::io::Read;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body_util::BodyExt;
use otlp::Encoding;

use crate::Error;

/// The decoder for a `Content-Type` (parameters such as `charset` ignored).
pub(crate) fn encoding_of(headers: &HeaderMap) -> Result<Encoding, Error> {
    let Some(value) = headers.get(http::header::CONTENT_TYPE) else {
        return Err(Error::UnsupportedContentType(String::new()));
    };
    let text = value.to_str().unwrap_or("");
    let essence = text.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        _ => Err(Error::UnsupportedContentType(text.to_owned())),
    }
}

/// The encoding to answer an error in: the request's when it is known, else JSON (readable).
pub(crate) fn answer_encoding(headers: &HeaderMap) -> Encoding {
    let text = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if text.to_ascii_lowercase().contains("protobuf") { Encoding::Protobuf } else { Encoding::Json }
}

/// Whether the body is gzip-compressed (`Content-Encoding: gzip`); other codings are refused.
pub(crate) fn is_gzip(headers: &HeaderMap) -> Result<bool, Error> {
    let Some(value) = headers.get(http::header::CONTENT_ENCODING) else { return Ok(false) };
    let text = value.to_str().unwrap_or("").trim().to_ascii_lowercase();
    match text.as_str() {
        "" | "identity" => Ok(false),
        "gzip" | "x-gzip" => Ok(true),
        _ => Err(Error::UnsupportedContentEncoding(text)),
    }
}

/// The declared `Content-Length`, if any.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<usize> {
    headers.get(http::header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Reads the whole body, failing with [`Error::TooLarge`] past `limit` bytes. Past the limit
/// the rest of the body is read and thrown away (up to a bound), so the client gets to read
/// the 413 instead of a reset connection, which it would retry.
pub(crate) async fn read_capped(mut body: Body, limit: usize) -> Result<Bytes, Error> {
    let drain_max = limit.saturating_mul(4).max(64 * 1024 * 1024);
    let mut res = BytesMut::new();
    let mut n_seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| Error::Body(error.to_string()))?;
        let Ok(data) = frame.into_data() else { continue };
        n_seen = n_seen.saturating_add(data.len());
        if n_seen <= limit {
            res.extend_from_slice(&data);
        } else {
            res = BytesMut::new();
            if n_seen > drain_max {
                break;
            }
        }
    }
    if n_seen > limit {
        return Err(Error::TooLarge { limit });
    }
    Ok(res.freeze())
}

/// Inflates a gzip body, failing with [`Error::TooLarge`] as soon as the output passes `limit`.
pub(crate) fn gunzip_capped(compressed: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
    let decoder = flate2::read::MultiGzDecoder::new(compressed);
    // Reading one byte past the limit tells "exactly at the limit" from "over it".
    let mut capped = decoder.take(limit as u64 + 1);
    let mut res = Vec::with_capacity(compressed.len().saturating_mul(4).min(limit));
    capped.read_to_end(&mut res).map_err(Error::Gzip)?;
    if res.len() > limit {
        return Err(Error::TooLarge { limit });
    }
    Ok(res)
}
