//! What the benchmark programs share: reading the server's own counters from `/metrics`.

/// The sum of a metric's samples (every label set) on `{base_url}/metrics`; NaN when the
/// endpoint cannot be read.
pub async fn metric(client: &reqwest::Client, base_url: &str, name: &str) -> f64 {
    let Ok(response) = client.get(format!("{base_url}/metrics")).send().await else {
        return f64::NAN;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
