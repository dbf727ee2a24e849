//! `loupe serve`: opens the store, starts the pipeline, binds the HTTP and gRPC listeners,
//! prints one `listening on` line per listener, and on SIGTERM / Ctrl-C stops accepting,
//! finishes in-flight requests and flushes the pipeline.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use axum::Router;
use store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::ServeArgs;
use crate::config::Config;
use crate::metrics::Metrics;

/// Opens the configured store behind the sealing wrapper (see `docs/erasure.md`): every command
/// that reads or writes spans goes through it, so users' content is sealed on write, unsealed
/// on read, and erased content stays unreadable.
pub(crate) async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = open_sealing_store(config).await?;
    Ok(store)
}

/// The store behind the sealing wrapper, with `keys.db` opened in the data dir.
pub(crate) async fn open_sealing_store(
    config: &Config,
) -> anyhow::Result<Arc<vault::SealingStore>> {
    let backend = open_backend(config).await?;
    let data_dir = config.data_dir.clone();
    let key_vault = tokio::task::spawn_blocking(move || vault::Vault::open(&data_dir))
        .await
        .context("opening the key vault")?
        .context("opening the key vault (keys.db in the data dir)")?;
    let sealing = vault::SealingStore::new(backend, Arc::new(key_vault))
        .with_sealed_writes(config.erasure_enabled);
    Ok(Arc::new(sealing))
}

/// Opens the configured backend (blocking work, run on the blocking pool).
async fn open_backend(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(clickhouse) = &config.clickhouse {
        let store = match store_clickhouse::ClickHouseStore::open(clickhouse.clone()).await {
            Ok(store) => store,
            Err(error) if error.code() == model::ErrorCode::Unavailable => {
                // Start anyway: writes go to the local spill and are replayed when the server
                // answers, so ingestion keeps acknowledging.
                tracing::warn!(error = %error, "clickhouse unreachable; writing to the local spill");
                store_clickhouse::ClickHouseStore::open_lazy(clickhouse.clone())
                    .context("opening the ClickHouse store")?
            }
            Err(error) => {
                return Err(anyhow::Error::new(error).context("opening the ClickHouse store"));
            }
        };
        return Ok(Arc::new(store));
    }
    let sqlite = config.sqlite.clone();
    let path = sqlite.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || store_sqlite::SqliteStore::open(sqlite))
        .await
        .context("opening the store")?
        .with_context(|| format!("opening the SQLite store in {}", path.display()))?;
    Ok(Arc::new(store))
}

/// Builds the pipeline with the configured processors.
pub(crate) fn start_pipeline(
    config: &Config,
    store: Arc<dyn Store>,
) -> anyhow::Result<(pipeline::Pipeline, Arc<pipeline::processors::Processors>)> {
    let mut raw = config.processors.clone();
    if raw.redact.enabled.unwrap_or(true) && raw.redact.key.is_none() {
        raw.redact.key = Some(redact_key(&config.data_dir)?);
    }
    let processors = pipeline::processors::Processors::from_raw(&raw)
        .context("reading the [pipeline] processor settings")?;
    let processors = Arc::new(processors);
    // With tail sampling on, spans wait apart until their trace is decided, so dropped traces
    // are never indexed (`Store::stage_spans`).
    let queue = pipeline::PipelineConfig {
        sampling: processors.sample.enabled.then(|| processors.sample.clone()),
        ..config.queue.clone()
    };
    let pipeline = pipeline::Pipeline::start(queue, processors.chain(), store);
    Ok((pipeline, processors))
}

/// The redaction key kept in the data dir (`redact.key`), generated on first start.
fn redact_key(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("redact.key");
    match std::fs::read_to_string(&path) {
        Ok(key) if !key.trim().is_empty() => return Ok(key.trim().to_owned()),
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data dir {}", data_dir.display()))?;
    let key = auth::generate_key().context("generating the redaction key")?;
    let tmp = data_dir.join("redact.key.tmp");
    std::fs::write(&tmp, format!("{key}\n"))
        .with_context(|| format!("writing {}", tmp.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(key)
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut raw = crate::load_raw_config(&args.data)?;
    if let Some(addr) = args.http_addr {
        raw.server.http_addr = Some(addr);
    }
    if let Some(addr) = args.grpc_addr {
        raw.server.grpc_addr = Some(addr);
    }
    let config = Config::from_raw(raw)?;

    let auth_config = config.auth.clone();
    let exposed = [Some(config.http_addr), config.grpc_addr]
        .into_iter()
        .flatten()
        .find(|addr| !addr.ip().is_loopback());
    if let Some(addr) = exposed
        && !auth_config.require_key
        && !args.insecure
    {
        bail!(
            "refusing to listen on {addr} without API keys: anyone who can reach it could read \
             and write your traces. Configure keys ([[auth.keys]] in loupe.toml, see \
             docs/configuration.md) or pass --insecure"
        );
    }

    let sealing = open_sealing_store(&config).await?;
    let store: Arc<dyn Store> = sealing.clone();
    let (pipeline, processors) = start_pipeline(&config, store.clone())?;
    // Users' content is sealed by each request before the write queue, in parallel, so the one
    // writer only writes.
    let sealer = sealing.clone();
    let pipeline = pipeline.with_pre_write(Arc::new(move |spans| sealer.seal_spans(spans)));
    let eraser = Arc::new(vault::Eraser::new(sealing, processors.redact.clone()));
    let fanout = if config.fanout.is_empty() {
        None
    } else {
        let fanout = pipeline::fanout::Fanout::start(config.fanout.clone())
            .context("starting the [[pipeline.fanout]] exporters")?;
        Some(Arc::new(fanout))
    };
    let pipeline = match &fanout {
        None => pipeline,
        Some(fanout) => pipeline.with_fanout(fanout.clone()),
    };
    let auth = auth::Auth::new(auth_config, Some(store.clone()));
    // Tail sampling: spans are staged durably before the ack, so they survive a crash while
    // their trace waits for its decision; the sampler stores kept traces and discards the
    // rest. With sampling off, what an earlier run left staged is kept.
    let sampler = match processors.sample.enabled {
        true => Some(Arc::new(pipeline::sample::Sampler::start(
            processors.sample.clone(),
            store.clone(),
            Some(pipeline.clone()),
        ))),
        false => {
            store.release_staged().await.context("keeping the traces staged for sampling")?;
            None
        }
    };
    // Tiered retention and downsampling run in the background, a bounded batch at a time.
    let retention = config.retention.enabled.then(|| {
        let retention = Arc::new(pipeline::retention::Retention::new(
            config.retention.clone(),
            store.clone(),
            Arc::new(pipeline::retention::SystemClock),
        ));
        retention.start();
        retention
    });

    // The recording gateway records through the pipeline; spans waiting for a slow or failed
    // store spill into the data dir.
    let gateway = gateway::Gateway::new(
        config.gateway.clone(),
        auth.clone(),
        pipeline.clone(),
        config.data_dir.join("gateway-spill"),
    )
    .context("starting the gateway")?;

    let metrics = Metrics::new(
        pipeline.clone(),
        processors.clone(),
        store.backend_name(),
        &gateway.metrics(),
        sampler.clone(),
        fanout,
        retention.clone(),
    );
    let ingest_state = ingest::IngestState::new(
        pipeline.clone(),
        auth.clone(),
        config.ingest.clone(),
        metrics.ingest.clone(),
    );
    let api_state = api::ApiState {
        store: store.clone(),
        auth: auth.clone(),
        settings: Arc::new(settings_view(&config, &processors)),
        feedback: config.feedback,
    };

    let app: Router = Router::new()
        .merge(ingest::otlp_http::router(ingest_state.clone()))
        .merge(api::erasure::router(api_state.clone(), eraser))
        .merge(api::router(api_state))
        .merge(gateway.router())
        .merge(metrics.router())
        .merge(metrics.sampling_router(auth.clone()))
        .layer(axum::middleware::from_fn_with_state(metrics.clone(), crate::metrics::track));

    let http_listener = TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("listening on {}", config.http_addr))?;
    let http_addr = http_listener.local_addr().context("reading the HTTP address")?;
    let grpc_listener = match config.grpc_addr {
        Some(addr) => {
            Some(TcpListener::bind(addr).await.with_context(|| format!("listening on {addr}"))?)
        }
        None => None,
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let http_server = {
        let stop = wait_for(stop_rx.clone());
        tokio::spawn(
            async move { axum::serve(http_listener, app).with_graceful_shutdown(stop).await },
        )
    };
    let grpc = match grpc_listener {
        Some(listener) => {
            let addr = listener.local_addr().context("reading the gRPC address")?;
            let stop = wait_for(stop_rx.clone());
            let service = ingest::otlp_grpc::server(ingest_state.clone());
            let logs_service = ingest::otlp_grpc::logs_server(ingest_state.clone());
            // In-flight request bytes are bounded over all connections, by the budget HTTP
            // ingest shares.
            let budget = ingest::otlp_grpc::InflightBudgetLayer::new(ingest_state);
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let task = tokio::spawn(async move {
                tonic::transport::Server::builder()
                    .concurrency_limit_per_connection(64)
                    .layer(tower::util::MapResponseLayer::new(
                        ingest::otlp_grpc::too_large_is_resource_exhausted,
                    ))
                    .layer(budget)
                    .add_service(service)
                    .add_service(logs_service)
                    .serve_with_incoming_shutdown(incoming, stop)
                    .await
            });
            Some((addr, task))
        }
        None => None,
    };

    tracing::info!(
        data_dir = %config.data_dir.display(),
        backend = store.backend_name(),
        require_key = auth.requires_key(),
        "loupe started"
    );
    println!("listening on {} (OTLP/HTTP, API, console, /metrics)", url(http_addr));
    if let Some((addr, _)) = &grpc {
        println!("listening on {} (OTLP/gRPC)", url(*addr));
    }

    shutdown_signal().await;
    tracing::info!("shutting down: finishing requests and flushing the write queue");
    let _ = stop_tx.send(true);
    match http_server.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(error = %error, "http server failed"),
        Err(error) => tracing::error!(error = %error, "http server task failed"),
    }
    if let Some((_, task)) = grpc {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(error = %error, "grpc server failed"),
            Err(error) => tracing::error!(error = %error, "grpc server task failed"),
        }
    }
    gateway.shutdown().await;
    pipeline.shutdown().await;
    if let Some(sampler) = &sampler {
        sampler.shutdown().await;
    }
    if let Some(retention) = &retention {
        retention.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(())
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// The effective pipeline settings for `GET /api/v1/settings`, without secrets: no redaction
/// or hash keys, no regex text, exact-value lists as counts. Per-project entries go under each
/// section's `projects`, which the API narrows to the caller's project.
fn settings_view(
    config: &Config,
    processors: &pipeline::processors::Processors,
) -> serde_json::Value {
    use serde_json::{Value, json};
    let raw = &config.processors;
    let prices: Vec<Value> = processors
        .price
        .as_ref()
        .map(|price| price.table().entries())
        .unwrap_or_default()
        .iter()
        .map(|p| {
            json!({
                "provider": p.provider, "pattern": p.pattern, "effective_day": p.effective_day,
                "input": p.input.normalize().to_string(), "output": p.output.normalize().to_string(),
                "cached_input": p.cached_input.normalize().to_string(),
                "cache_write": p.cache_write.normalize().to_string(),
                "reasoning": p.reasoning.normalize().to_string(), "from_config": p.from_config,
            })
        })
        .collect();
    let content = pipeline::content::ContentConfig::from_raw(&raw.content).unwrap_or_default();
    let policy = |project: &str, service: &str| {
        let p = content.policy(project, service);
        json!({
            "record": p.record, "sample_percent": f64::from(p.sample_basis_points) / 100.0,
            "max_field_bytes": p.max_field_bytes,
        })
    };
    let scope = |project: &str, services: &mut dyn Iterator<Item = &String>| {
        let services: serde_json::Map<String, Value> =
            services.map(|name| (name.clone(), policy(project, name))).collect();
        json!({ "policy": policy(project, ""), "services": services })
    };
    let mut content_view = scope("", &mut raw.content.services.keys());
    let content_projects: serde_json::Map<String, Value> = raw
        .content
        .projects
        .iter()
        .map(|(id, p)| {
            (id.clone(), scope(id, &mut raw.content.services.keys().chain(p.services.keys())))
        })
        .collect();
    content_view["projects"] = Value::Object(content_projects);
    let redact = &raw.redact;
    let redact_view = json!({
        "enabled": processors.redact.is_some(),
        "detectors": redact.detectors.clone().map_or(json!("all"), |d| json!(d)),
        "patterns": redact.patterns.iter().map(|p| &p.kind).collect::<Vec<_>>(),
        "values": redact.values.iter().map(|v| json!({"kind": v.kind, "n_values": v.values.len(), "ignore_case": v.ignore_case})).collect::<Vec<_>>(),
        "allow_keys": redact.allow_keys,
        "default_allow_keys": pipeline::redact::DEFAULT_ALLOW_KEYS,
        "hash_keys": redact.hash_keys,
        "default_hash_keys": pipeline::redact::DEFAULT_HASH_KEYS,
        "hash_chars": redact.hash_chars.unwrap_or(12),
    });
    let sample = &processors.sample;
    let sample_view = json!({
        "enabled": sample.enabled,
        "decision_wait_secs": sample.decision_wait_secs,
        "num_traces": sample.num_traces,
        "policies": raw.sample.policies.iter().map(|p| json!({"name": p.name, "rule": format!("{:?}", p.kind)})).collect::<Vec<_>>(),
    });
    let retention = &config.retention;
    let ages = |ages: &pipeline::retention::Ages| {
        const HOUR_NS: f64 = 3_600e9;
        json!({
            "content_hours": ages.structure_after_ns as f64 / HOUR_NS,
            "fingerprint_days": ages.fingerprints_after_ns as f64 / (24.0 * HOUR_NS),
            "delete_days": ages.delete_after_ns as f64 / (24.0 * HOUR_NS),
            "downsample": retention.downsample.is_some() && ages.downsample,
        })
    };
    let mut retention_view = ages(&retention.defaults);
    retention_view["enabled"] = json!(retention.enabled);
    if let Some(downsample) = &retention.downsample {
        retention_view["downsample_after_days"] = json!(downsample.after_ns as f64 / 86_400e9);
    }
    retention_view["projects"] =
        retention.projects.iter().map(|(id, a)| (id.clone(), ages(a))).collect();
    json!({
        "retention": retention_view,
        "price": { "enabled": processors.price.is_some(), "models": prices },
        "content": content_view,
        "redact": redact_view,
        "fingerprint": { "enabled": processors.fingerprint.is_some() },
        "sample": sample_view,
    })
}

async fn wait_for(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
