//! The body helpers: content types, content encodings and the capped gzip reader.

use std::io::Write;

use expect_test::expect;
use http::HeaderMap;

use super::body;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut res = HeaderMap::new();
    for (name, value) in pairs {
        res.insert(*name, value.parse().unwrap());
    }
    res
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn content_types_pick_the_decoder() {
    let mut res = String::new();
    for content_type in [
        "application/x-protobuf",
        "application/json; charset=utf-8",
        "Application/JSON",
        "text/plain",
    ] {
        let outcome = body::encoding_of(&headers(&[("content-type", content_type)]));
        res.push_str(&format!("{content_type}: {:?}\n", outcome.map_err(|e| e.to_string())));
    }
    let outcome = body::encoding_of(&HeaderMap::new()).map_err(|e| e.to_string());
    res.push_str(&format!("(none): {outcome:?}\n"));
    for encoding in ["gzip", "identity", "br"] {
        let outcome = body::is_gzip(&headers(&[("content-encoding", encoding)]));
        res.push_str(&format!("{encoding}: {:?}\n", outcome.map_err(|e| e.to_string())));
    }
    expect![[r#"
        application/x-protobuf: Ok(Protobuf)
        application/json; charset=utf-8: Ok(Json)
        Application/JSON: Ok(Json)
        text/plain: Err("unsupported content type \"text/plain\": send application/x-protobuf or application/json")
        (none): Err("unsupported content type \"\": send application/x-protobuf or application/json")
        gzip: Ok(true)
        identity: Ok(false)
        br: Err("unsupported content encoding \"br\": send gzip or no compression")
    "#]]
    .assert_eq(&res);
}

#[test]
fn gzip_is_inflated_up_to_the_limit_and_no_further() {
    let data = vec![b'a'; 1000];
    let compressed = gzip(&data);
    assert_eq!(body::gunzip_capped(&compressed, 1000).unwrap(), data);
    // A bomb: 10 MB of zeros is about 10 KB compressed; the reader stops just past the limit.
    let bomb = gzip(&vec![0u8; 10 * 1024 * 1024]);
    assert!(bomb.len() < 20 * 1024);
    let error = body::gunzip_capped(&bomb, 1024 * 1024).unwrap_err();
    expect!["request body is larger than the limit of 1048576 bytes"].assert_eq(&error.to_string());
    let error = body::gunzip_capped(b"not gzip at all", 1000).unwrap_err();
    expect!["gzip body could not be decompressed: invalid gzip header"]
        .assert_eq(&error.to_string());
}
