//! `loupe traces` and `loupe trace`: query a running server over its HTTP API and print a table
//! or a tree for people.

use anyhow::{Context, bail};
use api::dto::{SpanNode, TraceList, TraceTree};

use crate::{ClientArgs, TraceArgs, TracesArgs};

/// Sends a request to the Loupe server at `server` (with the API key, when there is one) and
/// returns the body; an error answer becomes `STATUS: the API's message`.
pub(crate) async fn send(
    server: &str,
    api_key: Option<&str>,
    request: reqwest::RequestBuilder,
) -> anyhow::Result<String> {
    let request = match api_key {
        Some(key) => request.bearer_auth(key),
        None => request,
    };
    let response = request
        .send()
        .await
        .with_context(|| format!("connecting to {server} (is `loupe serve` running?)"))?;
    let status = response.status();
    let text = response.text().await.context("reading the response")?;
    if !status.is_success() {
        let message = serde_json::from_str::<api::dto::ErrorBody>(&text)
            .map(|body| body.error.message)
            .unwrap_or(text);
        bail!("{status}: {message}");
    }
    Ok(text)
}

async fn get(client: &ClientArgs, path: &str, query: &[(&str, String)]) -> anyhow::Result<String> {
    let url = format!("{}{path}", client.url.trim_end_matches('/'));
    let request = reqwest::Client::new().get(&url).query(query);
    send(&client.url, client.api_key.as_deref(), request).await
}

/// Rows as left-aligned columns two spaces apart, the first row being the header.
pub(crate) fn render_columns<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut res = String::new();
    for row in rows {
        let line: Vec<String> =
            row.iter().enumerate().map(|(i, cell)| format!("{cell:<w$}", w = widths[i])).collect();
        res.push_str(line.join("  ").trim_end());
        res.push('\n');
    }
    res
}

pub(crate) async fn traces(args: TracesArgs) -> anyhow::Result<()> {
    let mut query = vec![("limit", args.limit.to_string())];
    if let Some(filter) = args.filter {
        query.push(("q", filter));
    }
    if let Some(from) = args.from {
        query.push(("from", from));
    }
    if let Some(to) = args.to {
        query.push(("to", to));
    }
    let text = get(&args.client, "/api/v1/traces", &query).await?;
    let list: TraceList = serde_json::from_str(&text).context("reading the trace list")?;
    print!("{}", render_table(&list));
    Ok(())
}

pub(crate) async fn trace(args: TraceArgs) -> anyhow::Result<()> {
    let path = format!("/api/v1/traces/{}", args.trace_id.trim());
    let text = get(&args.client, &path, &[]).await?;
    if args.json {
        println!("{text}");
        return Ok(());
    }
    let tree: TraceTree = serde_json::from_str(&text).context("reading the trace")?;
    print!("{}", render_tree(&tree));
    Ok(())
}

/// `1.23s`, `45ms`, `120µs`.
pub(crate) fn duration(ns: u64) -> String {
    if ns >= 10_000_000_000 {
        format!("{:.1}s", ns as f64 / 1e9)
    } else if ns >= 1_000_000_000 {
        format!("{:.2}s", ns as f64 / 1e9)
    } else if ns >= 1_000_000 {
        format!("{}ms", ns / 1_000_000)
    } else {
        format!("{}µs", ns / 1_000)
    }
}

fn render_table(list: &TraceList) -> String {
    let mut rows = vec![[
        "START (UTC)".to_owned(),
        "TRACE ID".to_owned(),
        "ROOT".to_owned(),
        "SPANS".to_owned(),
        "LLM".to_owned(),
        "DURATION".to_owned(),
        "TOKENS IN/OUT".to_owned(),
        "COST $".to_owned(),
        "STATUS".to_owned(),
    ]];
    for trace in &list.traces {
        rows.push([
            trace.start_time.get(..19).unwrap_or(&trace.start_time).replace('T', " "),
            trace.trace_id.clone(),
            trace.root_name.clone().unwrap_or_else(|| "(root missing)".to_owned()),
            trace.n_spans.to_string(),
            trace.n_llm_spans.to_string(),
            duration(trace.duration_ns),
            format!("{}/{}", trace.input_tokens, trace.output_tokens),
            trace.cost.map_or("-".to_owned(), |c| c.round_dp(6).normalize().to_string()),
            trace.status.clone(),
        ]);
    }
    let mut res = render_columns(&rows);
    if list.traces.is_empty() {
        res.push_str("(no traces)\n");
    } else if list.next_cursor.is_some() {
        res.push_str("(more traces: raise --limit or narrow --filter)\n");
    }
    res
}

/// The tree, one line per span:
/// `├─ llm.generate  1.20s  llm gpt-4o  tokens 2048/512  $0.0124  ok`.
pub(crate) fn render_tree(tree: &TraceTree) -> String {
    let r = &tree.rollup;
    let mut res = format!(
        "trace {}  {}  {} spans ({} llm)  tokens {}/{}{}  {}\n",
        tree.trace_id,
        duration(tree.duration_ns),
        r.n_spans,
        r.n_llm_spans,
        r.input_tokens,
        r.output_tokens,
        r.cost.map_or(String::new(), |c| format!("  ${}", c.round_dp(6).normalize())),
        r.status,
    );
    let n = tree.spans.len();
    for (i, node) in tree.spans.iter().enumerate() {
        render_node(node, "", i + 1 == n, &mut res);
    }
    res
}

fn render_node(node: &SpanNode, prefix: &str, last: bool, res: &mut String) {
    let mut line = format!(
        "{prefix}{}{}  {}",
        if last { "└─ " } else { "├─ " },
        node.name,
        duration(node.duration_ns)
    );
    if node.span_type != "other" {
        line.push_str(&format!("  {}", node.span_type));
    }
    if let Some(model) = &node.model {
        line.push_str(&format!(" {model}"));
    }
    let usage = &node.view.usage;
    if usage.input.is_some() || usage.output.is_some() {
        line.push_str(&format!(
            "  tokens {}/{}",
            usage.input.unwrap_or(0),
            usage.output.unwrap_or(0)
        ));
    }
    if let Some(cost) = node.view.cost {
        line.push_str(&format!("  ${}", cost.round_dp(6).normalize()));
    }
    line.push_str(&format!("  {}", node.status));
    if !node.status_message.is_empty() {
        line.push_str(&format!(" ({})", node.status_message));
    }
    if node.orphan {
        line.push_str("  [orphan: parent not received]");
    }
    res.push_str(&line);
    res.push('\n');
    let child_prefix = format!("{prefix}{}", if last { "   " } else { "│  " });
    let n = node.children.len();
    for (i, child) in node.children.iter().enumerate() {
        render_node(child, &child_prefix, i + 1 == n, res);
    }
}
