//! The stored form of a span's raw record and view (`spans.doc`), and the SQL functions that
//! look inside it.
//!
//! Formats, each named by the record's leading byte; records of every format stay readable:
//! - `2` (written now): LZ4 block format with the uncompressed size prepended (as
//!   `lz4_flex::compress_prepend_size`) of the MessagePack map `{"raw": RawSpan, "view":
//!   LlmView}` in `model`'s serde shape, structs as maps with their field names. MessagePack
//!   copies strings as they are where JSON escapes them byte by byte, which made encoding the
//!   largest cost of a span's write path.
//! - `1`: the same with JSON instead of MessagePack.

use model::{AnyValue, LlmView, RawSpan, attr_get};
use rusqlite::Connection;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value as SqlValue, ValueRef};
use serde::{Deserialize, Serialize};

use crate::Error;

const FORMAT_LZ4_JSON: u8 = 1;
const FORMAT_LZ4_MSGPACK: u8 = 2;

#[derive(Serialize)]
struct DocRef<'a> {
    raw: &'a RawSpan,
    view: &'a LlmView,
}

#[derive(Deserialize)]
pub(crate) struct Doc {
    pub(crate) raw: RawSpan,
    pub(crate) view: LlmView,
}

/// Only the view of a record: the raw span is skipped over by the parser, not built.
#[derive(Deserialize)]
struct ViewOnly {
    view: LlmView,
}

pub(crate) fn encode(raw: &RawSpan, view: &LlmView) -> Result<Vec<u8>, Error> {
    Ok(Encoder::default().encode(raw, view)?.to_vec())
}

/// Encodes records into buffers it keeps, so a batch of spans allocates them once.
#[derive(Default)]
pub(crate) struct Encoder {
    plain: Vec<u8>,
    res: Vec<u8>,
}

impl Encoder {
    /// The record of one span, valid until the next call.
    pub(crate) fn encode(&mut self, raw: &RawSpan, view: &LlmView) -> Result<&[u8], Error> {
        self.plain.clear();
        rmp_serde::encode::write_named(&mut self.plain, &DocRef { raw, view })
            .map_err(|e| Error::Corrupt(format!("cannot encode span: {e}")))?;
        let n_plain = u32::try_from(self.plain.len())
            .map_err(|_| Error::Corrupt("span record over 4 GiB".to_owned()))?;
        // The layout of `lz4_flex::compress_prepend_size`, after the format byte: the
        // uncompressed size (u32, little endian), then the block.
        const HEADER: usize = 1 + 4;
        let needed = HEADER + lz4_flex::block::get_maximum_output_size(self.plain.len());
        if self.res.len() < needed {
            self.res.resize(needed, 0);
        }
        self.res[0] = FORMAT_LZ4_MSGPACK;
        self.res[1..HEADER].copy_from_slice(&n_plain.to_le_bytes());
        let n_compressed = lz4_flex::block::compress_into(&self.plain, &mut self.res[HEADER..])
            .map_err(|e| Error::Corrupt(format!("cannot compress span: {e}")))?;
        Ok(&self.res[..HEADER + n_compressed])
    }
}

/// The view of a record, for the full-text index: cheaper than [`decode`].
pub(crate) fn decode_view(bytes: &[u8]) -> Result<LlmView, Error> {
    decode_as::<ViewOnly>(bytes).map(|doc| doc.view)
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Doc, Error> {
    decode_as(bytes)
}

fn decode_as<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let plain = |rest: &[u8]| {
        lz4_flex::decompress_size_prepended(rest)
            .map_err(|e| Error::Corrupt(format!("span record does not decompress: {e}")))
    };
    match bytes.split_first() {
        Some((&FORMAT_LZ4_MSGPACK, rest)) => rmp_serde::from_slice(&plain(rest)?)
            .map_err(|e| Error::Corrupt(format!("span record is not valid MessagePack: {e}"))),
        Some((&FORMAT_LZ4_JSON, rest)) => serde_json::from_slice(&plain(rest)?)
            .map_err(|e| Error::Corrupt(format!("span record is not valid json: {e}"))),
        Some((format, _)) => Err(Error::Corrupt(format!(
            "span record has unknown format {format} (written by a newer version?)"
        ))),
        None => Err(Error::Corrupt("empty span record".to_owned())),
    }
}

/// Registers `loupe_attr(doc, scope, key)` (the attribute as text: strings as they are, other
/// values as JSON; NULL when absent) and `loupe_attr_num(doc, scope, key)` (the attribute as a
/// number when it is one or a numeric string, else NULL). `scope` is 0 for span attributes and
/// 1 for resource attributes.
pub(crate) fn register_functions(conn: &Connection) -> Result<(), Error> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("loupe_attr", 3, flags, |ctx| {
        with_attr(ctx, |value| SqlValue::Text(value.to_text()))
    })?;
    conn.create_scalar_function("loupe_attr_num", 3, flags, |ctx| {
        with_attr(ctx, |value| match value {
            AnyValue::Int(i) => SqlValue::Integer(*i),
            other => other.as_f64().map_or(SqlValue::Null, SqlValue::Real),
        })
    })?;
    Ok(())
}

fn with_attr(
    ctx: &Context<'_>,
    convert: impl Fn(&AnyValue) -> SqlValue,
) -> rusqlite::Result<SqlValue> {
    let ValueRef::Blob(bytes) = ctx.get_raw(0) else {
        return Ok(SqlValue::Null);
    };
    let scope: i64 = ctx.get(1)?;
    let key: String = ctx.get(2)?;
    let doc = decode(bytes).map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?;
    let attributes = if scope == 1 { &doc.raw.resource.attributes } else { &doc.raw.attributes };
    Ok(attr_get(attributes, &key).map_or(SqlValue::Null, convert))
}
