//! Tests for imports: each accepted shape, and bad records reported without stopping the rest.

use expect_test::{Expect, expect};

use crate::{ImportFormat, SplitConfig, import};

#[track_caller]
fn check(format: ImportFormat, input: &str, expect: Expect) {
    let mut res = String::new();
    let report =
        import::<_, crate::Error>(format, input.as_bytes(), SplitConfig::default(), |item| {
            res.push_str(&format!(
                "{} {} input={} expected={} recorded={} meta={}\n",
                item.id,
                item.split.as_str(),
                serde_json::to_string(&item.input).unwrap(),
                crate::export::messages_text(&item.expected),
                crate::export::messages_text(&item.recorded),
                serde_json::to_string(&item.metadata).unwrap(),
            ));
            Ok(())
        });
    match report {
        Ok(report) => {
            for rejected in &report.rejected {
                res.push_str(&format!("rejected {}: {}\n", rejected.record, rejected.reason));
            }
            res.push_str(&format!(
                "imported={} rejected={}\n",
                report.n_imported, report.n_rejected
            ));
        }
        Err(e) => res.push_str(&format!("error: {e}\n")),
    }
    expect.assert_eq(&res);
}

#[test]
fn jsonl_shapes() {
    check(
        ImportFormat::Jsonl,
        r#"{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello."}],"metadata":{"origin":"manual"}}

{"system":"Be brief.","messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]},{"role":"assistant","content":[{"type":"text","text":"Hello."}]}]}
{"input":{"messages":[{"role":"user","content":"Hi"}]},"preferred_output":[{"role":"assistant","content":"Hello."}],"non_preferred_output":[{"role":"assistant","content":"Go away."}]}
{"input":{"messages":[{"role":"user","parts":[{"type":"text","content":"Hi {{name}}"}]}],"variables":{"name":"Ana"}},"expected":[{"role":"assistant","parts":[{"type":"text","content":"Hello."}]}]}
not json
{"messages":[{"role":"assistant","content":"only an answer"}]}
{"messages":[{"content":"no role"}]}
{"prompt":"legacy"}
"#,
        expect![[r#"
            itm_30b939bc0867e41ddd4d527b train input={"messages":[{"role":"system","parts":[{"type":"text","content":"Be brief."}]},{"role":"user","parts":[{"type":"text","content":"Hi"}]}]} expected=Hello. recorded= meta={"origin":"manual"}
            itm_1f0287fc1ebdefe5fb92c97e test input={"system":[{"type":"text","content":"Be brief."}],"messages":[{"role":"user","parts":[{"type":"text","content":"Hi"}]}]} expected=Hello. recorded= meta={}
            itm_7d97f8d7db17d3a4da3c1e8a train input={"messages":[{"role":"user","parts":[{"type":"text","content":"Hi"}]}]} expected=Hello. recorded=Go away. meta={}
            itm_840bbb263ea9d4e164106247 train input={"messages":[{"role":"user","parts":[{"type":"text","content":"Hi {{name}}"}]}],"variables":{"name":"Ana"}} expected=Hello. recorded= meta={}
            rejected 6: invalid JSON: expected ident at line 1 column 2
            rejected 7: no input messages
            rejected 8: message 0 has no role
            rejected 9: unrecognized record: expected messages, input + expected, or a preference pair
            imported=4 rejected=4
        "#]],
    );
}

#[test]
fn csv_columns() {
    check(
        ImportFormat::Csv,
        "input,expected,system,ticket\n\"Where is order 4481?\",\"It shipped.\",Be brief.,T-1\n,no input,,\n",
        expect![[r#"
            itm_664159be864aafb838a61e84 train input={"system":[{"type":"text","content":"Be brief."}],"messages":[{"role":"user","parts":[{"type":"text","content":"Where is order 4481?"}]}]} expected=It shipped. recorded= meta={"ticket":"T-1"}
            rejected 2: no input: fill the input or input_messages column
            imported=1 rejected=1
        "#]],
    );
    check(
        ImportFormat::Csv,
        "input,expected\n\"unterminated,x\n",
        expect![[r#"
        rejected 1: CSV error: record 1 (line: 2, byte: 15): found record with 1 fields, but the previous record has 2 fields
        imported=0 rejected=1
    "#]],
    );
}
