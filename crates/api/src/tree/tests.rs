//! Tree assembly: nesting, orphans, self-time and roll-ups, over spans built in memory.

use expect_test::{Expect, expect};
use model::{
    LlmView, ProjectId, RawSpan, SpanId, SpanKind, SpanType, Status, StatusCode, StoredSpan,
    TraceId, Usage,
};

use crate::dto::SpanNode;

const TRACE: &str = "48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f";

/// `(span, parent, start_ms, end_ms, type, input_tokens, error)`.
type Spec = (u64, Option<u64>, u64, u64, SpanType, u64, bool);

fn span((id, parent, start_ms, end_ms, span_type, tokens, error): Spec) -> StoredSpan {
    let raw = RawSpan {
        parent_span_id: parent.map(|p| SpanId::from_bytes(&p.to_be_bytes()).unwrap()),
        kind: SpanKind::Internal,
        status: Status {
            code: if error { StatusCode::Error } else { StatusCode::Unset },
            message: String::new(),
        },
        ..RawSpan::new(
            TraceId::from_hex(TRACE).unwrap(),
            SpanId::from_bytes(&id.to_be_bytes()).unwrap(),
            format!("s{id}"),
            start_ms * 1_000_000,
            end_ms * 1_000_000,
        )
    };
    let usage = Usage { input: Some(tokens), output: Some(tokens / 2), ..Usage::default() };
    let view = LlmView { span_type, usage, ..LlmView::default() };
    StoredSpan { project: ProjectId::default_project(), raw, view }
}

fn render(nodes: &[SpanNode], depth: usize, res: &mut String) {
    for node in nodes {
        let r = &node.rollup;
        res.push_str(&format!(
            "{:indent$}{} {} dur={}ms self={}ms tokens={}/{} spans={} status={}{}{}\n",
            "",
            node.name,
            node.span_type,
            node.duration_ns / 1_000_000,
            node.self_time_ns / 1_000_000,
            r.input_tokens,
            r.output_tokens,
            r.n_spans,
            r.status,
            if node.orphan { " ORPHAN" } else { "" },
            if node.flattened { " FLATTENED" } else { "" },
            indent = depth * 2
        ));
        render(&node.children, depth + 1, res);
    }
}

#[track_caller]
fn check(specs: &[Spec], expect: Expect) {
    let tree = super::build(specs.iter().copied().map(span).collect());
    let r = &tree.rollup;
    let mut res = format!(
        "trace root={:?} dur={}ms tokens={}/{} llm={} errors={} orphans={} status={}\n",
        tree.root_name,
        tree.duration_ns / 1_000_000,
        r.input_tokens,
        r.output_tokens,
        r.n_llm_spans,
        r.n_errors,
        tree.n_orphans,
        r.status
    );
    render(&tree.spans, 1, &mut res);
    expect.assert_eq(&res);
}

#[test]
fn nests_children_sorted_by_start_with_rollups() {
    use SpanType::*;
    check(
        &[
            (5, Some(1), 60, 90, Tool, 0, true),
            (1, None, 0, 100, Agent, 0, false),
            (2, Some(1), 10, 40, Llm, 100, false),
            (3, Some(1), 30, 50, Retrieval, 0, false),
            (4, Some(3), 35, 45, Embedding, 8, false),
        ],
        expect![[r#"
            trace root=Some("s1") dur=100ms tokens=108/54 llm=1 errors=1 orphans=0 status=error
              s1 agent dur=100ms self=30ms tokens=108/54 spans=5 status=error
                s2 llm dur=30ms self=30ms tokens=100/50 spans=1 status=ok
                s3 retrieval dur=20ms self=10ms tokens=8/4 spans=2 status=ok
                  s4 embedding dur=10ms self=10ms tokens=8/4 spans=1 status=ok
                s5 tool dur=30ms self=30ms tokens=0/0 spans=1 status=error
        "#]],
    );
}

#[test]
fn orphans_and_cycles_stay_visible() {
    use SpanType::*;
    check(
        &[
            (1, None, 0, 100, Chain, 0, false),
            (7, Some(99), 20, 30, Llm, 10, false),
            (8, Some(9), 40, 50, Other, 0, false),
            (9, Some(8), 45, 55, Other, 0, false),
        ],
        expect![[r#"
            trace root=Some("s1") dur=100ms tokens=10/5 llm=1 errors=0 orphans=2 status=ok
              s1 chain dur=100ms self=100ms tokens=0/0 spans=1 status=ok
              s7 llm dur=10ms self=10ms tokens=10/5 spans=1 status=ok ORPHAN
              s8 other dur=10ms self=5ms tokens=0/0 spans=2 status=ok ORPHAN
                s9 other dur=10ms self=10ms tokens=0/0 spans=1 status=ok
        "#]],
    );
}

#[test]
fn deep_chains_are_flattened_not_overflowed() {
    let mut specs: Vec<Spec> = vec![(1, None, 0, 100_000, SpanType::Chain, 0, false)];
    for id in 2..=5000u64 {
        specs.push((id, Some(id - 1), id, 100_000 - id, SpanType::Other, 0, false));
    }
    let tree = super::build(specs.into_iter().map(span).collect());
    let mut depth = 0;
    let mut node = &tree.spans[0];
    while let Some(child) = node.children.first() {
        depth += 1;
        if node.flattened {
            assert_eq!(node.children.len(), 5000 - super::MAX_DEPTH);
            break;
        }
        node = child;
    }
    assert_eq!(depth, super::MAX_DEPTH);
    assert_eq!(tree.rollup.n_spans, 5000);
    serde_json::to_string(&tree).unwrap();
}
