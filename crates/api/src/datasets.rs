//! Datasets over the API: create them from a query in the shared filter syntax or from span ids,
//! list them and their versions, page through a version's items, export a version in any format
//! (streamed), import JSONL or CSV as a new version, and export one trace as an eval suite.
//!
//! - `POST /api/v1/datasets` `{name, description?, q?, from?, to?, span_ids?, merge_duplicates?}`
//!   creates the dataset and its version 1.
//! - `GET /api/v1/datasets`, `GET /api/v1/datasets/{name}` (with its versions).
//! - `POST /api/v1/datasets/{name}/versions` `{base?, q?, from?, to?, span_ids?, remove?,
//!   merge_duplicates?, note?}`: a new version from `base` (default: the latest).
//! - `GET /api/v1/datasets/{name}/versions/{version}/items?cursor=&limit=`.
//! - `GET /api/v1/datasets/{name}/export?format=openai|preference|anthropic|hf|csv|eval&version=N`
//!   streams the export a page of items at a time (default: the latest version).
//! - `POST /api/v1/datasets/{name}/import?format=jsonl|csv`: the body's records become a new
//!   version on top of the latest; bad records are listed and skipped.
//! - `GET /api/v1/traces/{trace_id}/eval-suite`: the trace as a toad-eye-compatible suite.

use ::datasets::{ExportContext, ExportFormat, Exporter, ImportFormat, SplitConfig};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use model::{Dataset, DatasetItem, DatasetVersion, FeedbackTarget, ProjectId, SpanId, TraceId};
use serde::{Deserialize, Serialize};
use store::{Cursor, NewDatasetVersion, SpanQuery};

use crate::params::{self, now_ns};
use crate::routes::{Params, Project};
use crate::{ApiError, ApiState};

/// Items one query may add to a version, at most.
pub const MAX_QUERY_ITEMS: usize = 100_000;

/// Items read from the store per page while exporting.
const EXPORT_PAGE: u32 = 500;

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/datasets", get(list_datasets).post(create_dataset))
        .route("/api/v1/datasets/{name}", get(get_dataset))
        .route("/api/v1/datasets/{name}/versions", axum::routing::post(create_version))
        .route("/api/v1/datasets/{name}/versions/{version}/items", get(list_items))
        .route("/api/v1/datasets/{name}/export", get(export))
        .route("/api/v1/datasets/{name}/import", axum::routing::post(import))
        .route("/api/v1/traces/{trace_id}/eval-suite", get(eval_suite))
}

/// `POST /api/v1/datasets`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDatasetIn {
    pub name: String,
    pub description: Option<String>,
    #[serde(flatten)]
    pub selection: SelectionIn,
}

/// Which recorded calls become items: the spans matching `q` (within `from`/`to`), and/or the
/// listed spans.
#[derive(Debug, Default, Deserialize)]
pub struct SelectionIn {
    pub q: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    #[serde(default)]
    pub span_ids: Vec<String>,
    /// Merge items with the same input (default true).
    pub merge_duplicates: Option<bool>,
}

/// `POST /api/v1/datasets/{name}/versions`.
#[derive(Debug, Default, Deserialize)]
pub struct CreateVersionIn {
    pub base: Option<u32>,
    #[serde(default)]
    pub remove: Vec<String>,
    pub note: Option<String>,
    #[serde(flatten)]
    pub selection: SelectionIn,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetOut {
    #[serde(flatten)]
    pub dataset: Dataset,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<DatasetVersion>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetList {
    pub datasets: Vec<Dataset>,
}

/// A new version and how it was built.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionOut {
    pub version: DatasetVersion,
    /// Calls selected that had no recorded input (content recording was off).
    pub n_skipped: u64,
    /// Selected calls merged into another item with the same input.
    pub n_merged: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemList {
    pub items: Vec<DatasetItem>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportOut {
    pub version: DatasetVersion,
    pub n_imported: u64,
    pub n_rejected: u64,
    pub rejected: Vec<RejectedOut>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RejectedOut {
    pub record: u64,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalSuiteOut {
    pub file_name: String,
    pub n_cases: usize,
    pub warnings: Vec<String>,
    pub yaml: String,
}

fn datasets_error(error: ::datasets::Error) -> ApiError {
    ApiError::new(error.code(), error.to_string())
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid dataset name {name:?}: use 1 to 64 lowercase letters, digits, '-', '_' or '.'"
        )))
    }
}

async fn require_dataset(
    state: &ApiState,
    project: &ProjectId,
    name: &str,
) -> Result<Dataset, ApiError> {
    state
        .store
        .get_dataset(project, name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("dataset {name:?} not found")))
}

/// The items for the selected calls: newest correction on each span wins.
async fn select_items(
    state: &ApiState,
    project: &ProjectId,
    selection: &SelectionIn,
) -> Result<(Vec<DatasetItem>, u64, u64), ApiError> {
    if selection.q.is_none() && selection.span_ids.is_empty() {
        return Err(ApiError::bad_request("select calls with q (a filter) or span_ids"));
    }
    let mut spans = Vec::new();
    if let Some(q) = &selection.q {
        let mut query = SpanQuery {
            filter: params::filter(Some(q))?,
            time: params::time_range(selection.from.as_deref(), selection.to.as_deref())?,
            limit: 1000,
            ..SpanQuery::default()
        };
        loop {
            let page = state.store.search_spans(project, &query).await?;
            spans.extend(page.items);
            if spans.len() > MAX_QUERY_ITEMS {
                return Err(ApiError::new(
                    model::ErrorCode::PayloadTooLarge,
                    format!("the query matches more than {MAX_QUERY_ITEMS} calls; narrow it"),
                ));
            }
            match page.next_cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => break,
            }
        }
        // Oldest first, so the first of two equal inputs is the earlier call.
        spans.reverse();
    }
    for text in &selection.span_ids {
        let span_id = SpanId::from_hex(text.trim())
            .map_err(|error| ApiError::bad_request(format!("span_ids: {error}")))?;
        let query = SpanQuery {
            filter: Some(store::Expr::Cmp {
                field: store::Field::SpanId,
                op: store::CmpOp::Eq,
                value: store::Value::Str(span_id.to_hex()),
            }),
            limit: 1,
            ..SpanQuery::default()
        };
        let page = state.store.search_spans(project, &query).await?;
        let Some(span) = page.items.into_iter().next() else {
            return Err(ApiError::not_found(format!("span {span_id} not found")));
        };
        spans.push(span);
    }
    let mut deduper = ::datasets::Deduper::new();
    let mut n_items = 0;
    let mut n_skipped = 0;
    for span in &spans {
        let target = FeedbackTarget::Span { span_id: span.raw.span_id, trace_id: None };
        let feedback = state.store.list_feedback(project, &target).await?;
        let corrected = feedback
            .iter()
            .filter(|entry| entry.content.correction.is_some())
            .max_by_key(|entry| entry.updated_ns)
            .or_else(|| feedback.iter().max_by_key(|entry| entry.updated_ns));
        match ::datasets::item_from_span(span, corrected, SplitConfig::default()) {
            Some(item) => {
                n_items += 1;
                if selection.merge_duplicates.unwrap_or(true) {
                    deduper.push(item);
                } else {
                    deduper = push_unmerged(deduper, item);
                }
            }
            None => n_skipped += 1,
        }
    }
    let n_merged = deduper.n_merged();
    let items = deduper.into_items();
    debug_assert!(items.len() as u64 + n_merged == n_items);
    Ok((items, n_skipped, n_merged))
}

/// Without merging, an item is kept even when its input repeats: give it a fingerprint of its
/// own id so the deduper never matches it.
fn push_unmerged(mut deduper: ::datasets::Deduper, mut item: DatasetItem) -> ::datasets::Deduper {
    let fingerprint = std::mem::take(&mut item.input_fingerprint);
    item.input_fingerprint = format!("{fingerprint}:{}", item.id);
    deduper.push(item);
    deduper
}

async fn create_dataset(
    State(state): State<ApiState>,
    Project(project): Project,
    body: Bytes,
) -> Result<(StatusCode, Json<VersionOut>), ApiError> {
    let input: CreateDatasetIn = serde_json::from_slice(&body)
        .map_err(|error| ApiError::bad_request(format!("invalid dataset: {error}")))?;
    check_name(&input.name)?;
    // Select first: a bad query creates nothing.
    let (items, n_skipped, n_merged) = select_items(&state, &project, &input.selection).await?;
    let now = now_ns();
    let dataset = Dataset {
        project: project.clone(),
        name: input.name.clone(),
        description: input.description.clone(),
        created_ns: now,
        latest_version: None,
    };
    state.store.create_dataset(&dataset).await?;
    let changes = NewDatasetVersion {
        base: None,
        add: items,
        remove: Vec::new(),
        merge_duplicates: input.selection.merge_duplicates.unwrap_or(true),
        query: input.selection.q.clone(),
        note: None,
        created_ns: now,
    };
    let version = state.store.create_dataset_version(&project, &input.name, &changes).await?;
    Ok((StatusCode::CREATED, Json(VersionOut { version, n_skipped, n_merged })))
}

async fn create_version(
    State(state): State<ApiState>,
    Project(project): Project,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<VersionOut>), ApiError> {
    let input: CreateVersionIn = serde_json::from_slice(&body)
        .map_err(|error| ApiError::bad_request(format!("invalid version: {error}")))?;
    let dataset = require_dataset(&state, &project, &name).await?;
    let (items, n_skipped, n_merged) =
        if input.selection.q.is_none() && input.selection.span_ids.is_empty() {
            (Vec::new(), 0, 0)
        } else {
            select_items(&state, &project, &input.selection).await?
        };
    let changes = NewDatasetVersion {
        base: input.base.or(dataset.latest_version),
        add: items,
        remove: input.remove,
        merge_duplicates: input.selection.merge_duplicates.unwrap_or(true),
        query: input.selection.q.clone(),
        note: input.note,
        created_ns: now_ns(),
    };
    let version = state.store.create_dataset_version(&project, &name, &changes).await?;
    Ok((StatusCode::CREATED, Json(VersionOut { version, n_skipped, n_merged })))
}

async fn list_datasets(
    State(state): State<ApiState>,
    Project(project): Project,
) -> Result<Json<DatasetList>, ApiError> {
    Ok(Json(DatasetList { datasets: state.store.list_datasets(&project).await? }))
}

async fn get_dataset(
    State(state): State<ApiState>,
    Project(project): Project,
    Path(name): Path<String>,
) -> Result<Json<DatasetOut>, ApiError> {
    let dataset = require_dataset(&state, &project, &name).await?;
    let versions = state.store.list_dataset_versions(&project, &name).await?;
    Ok(Json(DatasetOut { dataset, versions }))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ItemParams {
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

async fn list_items(
    State(state): State<ApiState>,
    Project(project): Project,
    Path((name, version)): Path<(String, u32)>,
    Params(params): Params<ItemParams>,
) -> Result<Json<ItemList>, ApiError> {
    let cursor = params.cursor.map(Cursor);
    let limit = params::limit(params.limit)?;
    let page = state.store.dataset_items(&project, &name, version, cursor.as_ref(), limit).await?;
    Ok(Json(ItemList { items: page.items, next_cursor: page.next_cursor.map(|c| c.0) }))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ExportParams {
    pub format: Option<String>,
    pub version: Option<u32>,
}

/// Resolves `version` (default: the latest) and checks it exists.
async fn resolve_version(
    state: &ApiState,
    project: &ProjectId,
    name: &str,
    version: Option<u32>,
) -> Result<DatasetVersion, ApiError> {
    let dataset = require_dataset(state, project, name).await?;
    let Some(version) = version.or(dataset.latest_version) else {
        return Err(ApiError::not_found(format!("dataset {name:?} has no versions yet")));
    };
    state.store.get_dataset_version(project, name, version).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "dataset {name:?} has no version {version} (latest: {})",
            dataset.latest_version.map_or("none".to_owned(), |v| v.to_string())
        ))
    })
}

/// What the export stream carries from one page to the next.
struct ExportState {
    state: ApiState,
    project: ProjectId,
    name: String,
    version: u32,
    exporter: Option<Exporter<Vec<u8>>>,
    cursor: Option<Cursor>,
    done: bool,
}

async fn next_chunk(
    mut export: ExportState,
) -> Option<(Result<Bytes, std::io::Error>, ExportState)> {
    if export.done {
        return None;
    }
    let mut exporter = export.exporter.take()?;
    let page = export
        .state
        .store
        .dataset_items(
            &export.project,
            &export.name,
            export.version,
            export.cursor.as_ref(),
            EXPORT_PAGE,
        )
        .await;
    let page = match page {
        Ok(page) => page,
        Err(error) => {
            export.done = true;
            return Some((Err(std::io::Error::other(error.to_string())), export));
        }
    };
    for item in &page.items {
        if let Err(error) = exporter.write_item(item) {
            export.done = true;
            return Some((Err(std::io::Error::other(error.to_string())), export));
        }
    }
    let chunk = match page.next_cursor {
        Some(cursor) => {
            export.cursor = Some(cursor);
            let chunk = std::mem::take(exporter.writer_mut());
            export.exporter = Some(exporter);
            chunk
        }
        None => {
            export.done = true;
            match exporter.finish() {
                Ok((chunk, _)) => chunk,
                Err(error) => return Some((Err(std::io::Error::other(error.to_string())), export)),
            }
        }
    };
    Some((Ok(Bytes::from(chunk)), export))
}

async fn export(
    State(state): State<ApiState>,
    Project(project): Project,
    Path(name): Path<String>,
    Params(params): Params<ExportParams>,
) -> Result<Response, ApiError> {
    let format: ExportFormat =
        params.format.as_deref().unwrap_or("openai").parse().map_err(datasets_error)?;
    let version = resolve_version(&state, &project, &name, params.version).await?;
    let context =
        ExportContext { dataset: name.clone(), version: version.version, exported_at_ns: now_ns() };
    let exporter = Exporter::new(format, &context, Vec::new()).map_err(datasets_error)?;
    let file_name = format!("{name}-v{}.{}", version.version, format.file_extension());
    let export = ExportState {
        state,
        project,
        name,
        version: version.version,
        exporter: Some(exporter),
        cursor: None,
        done: false,
    };
    let stream = futures::stream::unfold(export, next_chunk);
    Response::builder()
        .header(header::CONTENT_TYPE, format.content_type())
        .header(header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file_name}\""))
        .body(Body::from_stream(stream))
        .map_err(|error| ApiError::new(model::ErrorCode::Internal, error.to_string()))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ImportParams {
    pub format: Option<String>,
    pub note: Option<String>,
}

async fn import(
    State(state): State<ApiState>,
    Project(project): Project,
    Path(name): Path<String>,
    Params(params): Params<ImportParams>,
    body: Bytes,
) -> Result<(StatusCode, Json<ImportOut>), ApiError> {
    let format: ImportFormat =
        params.format.as_deref().unwrap_or("jsonl").parse().map_err(datasets_error)?;
    let dataset = require_dataset(&state, &project, &name).await?;
    let mut items = Vec::new();
    let report = ::datasets::import::<_, ::datasets::Error>(
        format,
        &body[..],
        SplitConfig::default(),
        |item| {
            items.push(item);
            Ok(())
        },
    )
    .map_err(datasets_error)?;
    if items.is_empty() {
        let first = report
            .rejected
            .first()
            .map_or(String::new(), |r| format!("; record {}: {}", r.record, r.reason));
        return Err(ApiError::bad_request(format!("no record could be imported{first}")));
    }
    let changes = NewDatasetVersion {
        base: dataset.latest_version,
        add: items,
        remove: Vec::new(),
        merge_duplicates: true,
        query: None,
        note: params.note.or(Some(format!("import ({})", format_name(format)))),
        created_ns: now_ns(),
    };
    let version = state.store.create_dataset_version(&project, &name, &changes).await?;
    Ok((
        StatusCode::CREATED,
        Json(ImportOut {
            version,
            n_imported: report.n_imported,
            n_rejected: report.n_rejected,
            rejected: report
                .rejected
                .into_iter()
                .map(|r| RejectedOut { record: r.record, reason: r.reason })
                .collect(),
        }),
    ))
}

fn format_name(format: ImportFormat) -> &'static str {
    match format {
        ImportFormat::Jsonl => "jsonl",
        ImportFormat::Csv => "csv",
    }
}

async fn eval_suite(
    State(state): State<ApiState>,
    Project(project): Project,
    Path(trace_id): Path<String>,
) -> Result<Json<EvalSuiteOut>, ApiError> {
    let trace_id = TraceId::from_hex(trace_id.trim())
        .map_err(|error| ApiError::bad_request(format!("trace_id: {error}")))?;
    let spans = state.store.get_trace(&project, trace_id).await?;
    let feedback = if spans.is_empty() {
        Vec::new()
    } else {
        state.store.trace_feedback(&project, trace_id).await?
    };
    let export =
        ::datasets::export_trace(trace_id, &spans, &feedback, now_ns()).map_err(datasets_error)?;
    Ok(Json(EvalSuiteOut {
        file_name: export.file_name,
        n_cases: export.n_cases,
        warnings: export.warnings,
        yaml: export.yaml,
    }))
}
