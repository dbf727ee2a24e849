//! Assembling the spans of one trace into a tree: children nested under their parents and
//! sorted by start time, orphans (whose parent never arrived) at the top level flagged as such,
//! self-time, and token / cost / status roll-ups per subtree and for the whole trace.
//!
//! Works without recursion over the input, so a trace of any shape (50,000 spans wide, or a
//! chain thousands deep) is safe; nesting deeper than [`MAX_DEPTH`] is listed flat under the
//! span at that depth, flagged `flattened`.

use model::{SpanType, StatusCode, StoredSpan};
use rust_decimal::Decimal;

use crate::dto::{Rollup, SpanNode, TraceTree};
use crate::time::format_rfc3339;

/// The deepest nesting the tree shows; deeper descendants are listed flat.
pub const MAX_DEPTH: usize = 128;

/// The tree of one trace. `spans` must all belong to one trace; it may be empty only if the
/// caller accepts an empty tree.
pub fn build(mut spans: Vec<StoredSpan>) -> TraceTree {
    spans.sort_by(|a, b| {
        (a.raw.start_time_unix_nano, a.raw.span_id)
            .cmp(&(b.raw.start_time_unix_nano, b.raw.span_id))
    });
    let n = spans.len();
    let index: std::collections::HashMap<model::SpanId, usize> =
        spans.iter().enumerate().map(|(i, span)| (span.raw.span_id, i)).collect();

    // Parent links; a span whose parent is missing (or is itself) is top-level.
    let mut parent: Vec<Option<usize>> = spans
        .iter()
        .map(|span| span.raw.parent_span_id.and_then(|id| index.get(&id).copied()))
        .collect();
    for (i, p) in parent.iter_mut().enumerate() {
        if *p == Some(i) {
            *p = None;
        }
    }
    // Break cycles (a -> b -> a): walk up from each span; a span that meets itself loses its
    // parent link.
    let mut state = vec![0u8; n]; // 0 unvisited, 1 on the current path, 2 done
    for start in 0..n {
        let mut path = Vec::new();
        let mut at = Some(start);
        while let Some(i) = at {
            match state[i] {
                2 => break,
                1 => {
                    parent[i] = None;
                    break;
                }
                _ => {
                    state[i] = 1;
                    path.push(i);
                    at = parent[i];
                }
            }
        }
        for i in path {
            state[i] = 2;
        }
    }

    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut top = Vec::new();
    for (i, p) in parent.iter().enumerate() {
        match p {
            Some(p) => children[*p].push(i),
            None => top.push(i),
        }
    }
    // Roots first, then orphans; each group stays in start order.
    let orphan: Vec<bool> =
        (0..n).map(|i| spans[i].raw.parent_span_id.is_some() && parent[i].is_none()).collect();
    let is_orphan = |i: usize| orphan[i];
    top.sort_by_key(|&i| is_orphan(i));

    // Post-order (children before parents) without recursion, for subtree roll-ups.
    let mut order = Vec::with_capacity(n);
    let mut stack: Vec<usize> = top.clone();
    while let Some(i) = stack.pop() {
        order.push(i);
        stack.extend(children[i].iter().copied());
    }
    let mut rollups: Vec<Rollup> = spans.iter().map(own_rollup).collect();
    for &i in order.iter().rev() {
        if let Some(p) = parent[i] {
            let child = rollups[i].clone();
            add(&mut rollups[p], &child);
        }
    }

    let mut trace_rollup = empty_rollup();
    for span in &spans {
        add(&mut trace_rollup, &own_rollup(span));
    }
    let root = top.iter().copied().find(|&i| !is_orphan(i));
    let start_ns = spans.iter().map(|s| s.raw.start_time_unix_nano).min().unwrap_or(0);
    let end_ns = spans.iter().map(|s| s.raw.end_time_unix_nano).max().unwrap_or(0);
    let trace_id = spans.first().map(|s| s.raw.trace_id.to_hex()).unwrap_or_default();
    let root_span = root.map(|i| &spans[i]);
    let operation_id = root_span
        .and_then(|s| s.view.operation_id.clone())
        .or_else(|| root_span.map(|s| s.raw.name.clone()));
    let session_id = spans.iter().find_map(|s| s.view.session_id.clone());
    let n_orphans = top.iter().filter(|&&i| is_orphan(i)).count() as u64;

    // Build the nested nodes, deepest first, moving each span out of `spans` once.
    let mut slots: Vec<Option<StoredSpan>> = spans.into_iter().map(Some).collect();
    let mut built: Vec<Option<SpanNode>> = (0..n).map(|_| None).collect();
    let mut depth = vec![0usize; n];
    for &i in &order {
        if let Some(p) = parent[i] {
            depth[i] = depth[p] + 1;
        }
    }
    let mut self_time = vec![0u64; n];
    for i in 0..n {
        let (start, end) = match &slots[i] {
            Some(span) => (span.raw.start_time_unix_nano, span.raw.end_time_unix_nano),
            None => (0, 0),
        };
        let intervals: Vec<(u64, u64)> = children[i]
            .iter()
            .filter_map(|&c| slots[c].as_ref())
            .map(|c| (c.raw.start_time_unix_nano.max(start), c.raw.end_time_unix_nano.min(end)))
            .collect();
        self_time[i] = end.saturating_sub(start).saturating_sub(covered(intervals));
    }
    for &i in order.iter().rev() {
        let Some(span) = slots[i].take() else { continue };
        let mut node = node_of(span, rollups[i].clone(), self_time[i], is_orphan(i));
        let kids: Vec<SpanNode> = children[i].iter().filter_map(|&c| built[c].take()).collect();
        if depth[i] + 1 == MAX_DEPTH && !kids.is_empty() {
            node.flattened = true;
            node.children = flatten(kids);
        } else {
            node.children = kids;
        }
        built[i] = Some(node);
    }
    let nodes: Vec<SpanNode> = top.iter().filter_map(|&i| built[i].take()).collect();

    TraceTree {
        trace_id,
        root_name: root_span_name(&nodes),
        service: nodes.first().map(|node| node.service.clone()),
        operation_id,
        session_id,
        start_ns,
        end_ns,
        start_time: format_rfc3339(start_ns),
        duration_ns: end_ns.saturating_sub(start_ns),
        rollup: trace_rollup,
        n_orphans,
        spans: nodes,
        feedback: Vec::new(),
    }
}

fn root_span_name(nodes: &[SpanNode]) -> Option<String> {
    nodes.iter().find(|node| !node.orphan).map(|node| node.name.clone())
}

/// Every node of `nodes` and their descendants, as one flat list in start order.
fn flatten(nodes: Vec<SpanNode>) -> Vec<SpanNode> {
    let mut res = Vec::new();
    let mut stack = nodes;
    while let Some(mut node) = stack.pop() {
        stack.append(&mut node.children);
        res.push(node);
    }
    res.sort_by_key(|node| node.start_ns);
    res
}

/// Total length of the union of intervals.
fn covered(mut intervals: Vec<(u64, u64)>) -> u64 {
    intervals.retain(|(start, end)| end > start);
    intervals.sort_unstable();
    let mut res = 0;
    let mut current: Option<(u64, u64)> = None;
    for (start, end) in intervals {
        match current {
            Some((cs, ce)) if start <= ce => current = Some((cs, ce.max(end))),
            Some((cs, ce)) => {
                res += ce - cs;
                current = Some((start, end));
            }
            None => current = Some((start, end)),
        }
    }
    if let Some((cs, ce)) = current {
        res += ce - cs;
    }
    res
}

fn empty_rollup() -> Rollup {
    Rollup { status: "ok".to_owned(), ..Rollup::default() }
}

/// The roll-up of one span alone. Tokens count on LLM and embedding spans only, so a parent
/// that repeats its children's totals is not counted twice.
fn own_rollup(span: &StoredSpan) -> Rollup {
    let view = &span.view;
    let counts_tokens = matches!(view.span_type, SpanType::Llm | SpanType::Embedding);
    let input = if counts_tokens { view.usage.input.unwrap_or(0) } else { 0 };
    let output = if counts_tokens { view.usage.output.unwrap_or(0) } else { 0 };
    let is_error = span.raw.status.code == StatusCode::Error;
    Rollup {
        input_tokens: input,
        output_tokens: output,
        total_tokens: input + output,
        cost: view.cost,
        n_spans: 1,
        n_llm_spans: u64::from(view.span_type == SpanType::Llm),
        n_errors: u64::from(is_error),
        status: if is_error { "error" } else { "ok" }.to_owned(),
    }
}

fn add(into: &mut Rollup, other: &Rollup) {
    into.input_tokens += other.input_tokens;
    into.output_tokens += other.output_tokens;
    into.total_tokens += other.total_tokens;
    into.cost = match (into.cost, other.cost) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(Decimal::ZERO) + b.unwrap_or(Decimal::ZERO)),
    };
    into.n_spans += other.n_spans;
    into.n_llm_spans += other.n_llm_spans;
    into.n_errors += other.n_errors;
    if into.n_errors > 0 {
        into.status = "error".to_owned();
    }
}

fn node_of(span: StoredSpan, rollup: Rollup, self_time_ns: u64, orphan: bool) -> SpanNode {
    let StoredSpan { raw, view, .. } = span;
    SpanNode {
        span_id: raw.span_id.to_hex(),
        parent_span_id: raw.parent_span_id.map(|id| id.to_hex()),
        name: raw.name.clone(),
        kind: raw.kind.as_str().to_owned(),
        service: raw.service_name().to_owned(),
        span_type: view.span_type.as_str().to_owned(),
        is_llm: view.span_type == SpanType::Llm,
        orphan,
        start_ns: raw.start_time_unix_nano,
        end_ns: raw.end_time_unix_nano,
        start_time: format_rfc3339(raw.start_time_unix_nano),
        duration_ns: raw.duration_ns(),
        self_time_ns,
        status: raw.status.code.as_str().to_owned(),
        status_message: raw.status.message.clone(),
        model: view.model().map(str::to_owned),
        rollup,
        view,
        raw,
        flattened: false,
        children: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
