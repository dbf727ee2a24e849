//! Datasets in SQLite: datasets, their immutable versions, and the items of each version.
//!
//! # Layout (schema version 2, created with the feedback tables)
//!
//! - `datasets`: name, description, creation time, latest version.
//! - `dataset_versions`: one row per version (time, item count, query, note). Rows are never
//!   updated: a version is immutable.
//! - `dataset_items`: item bodies (JSON), keyed by item id and the version that wrote them
//!   (`revision`), so an item unchanged across versions is stored once.
//! - `dataset_members`: which item revision each version holds, with the input fingerprint (for
//!   merging duplicates) and the ids of the spans the item came from (for provenance). A new
//!   version copies its base's membership rows inside SQLite, so making a version never loads the
//!   base's items into memory.

use model::{Dataset, DatasetItem, DatasetVersion, ProjectId, SpanId};
use rusqlite::{Connection, OptionalExtension, Row, params};
use store::{Cursor, DatasetRef, NewDatasetVersion, Page};

use crate::feedback::decode;
use crate::write::to_i64;
use crate::{Error, SqliteStore};

const MAX_LIMIT: u32 = 1000;

/// A `datasets` row: project, name, description, creation time, latest version.
type DatasetRow = (String, String, Option<String>, i64, Option<i64>);

fn dataset_row(row: &Row<'_>) -> rusqlite::Result<DatasetRow> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
}

fn to_dataset(
    (project, name, description, created_ns, latest_version): DatasetRow,
) -> Result<Dataset, Error> {
    Ok(Dataset {
        project: ProjectId::new(&project).map_err(Error::Corrupt)?,
        name,
        description,
        created_ns: u64::try_from(created_ns).unwrap_or(0),
        latest_version: latest_version.map(|v| u32::try_from(v).unwrap_or(u32::MAX)),
    })
}

fn version_row(row: &Row<'_>) -> rusqlite::Result<DatasetVersion> {
    Ok(DatasetVersion {
        dataset: row.get(0)?,
        version: row.get(1)?,
        created_ns: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
        n_items: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
        query: row.get(4)?,
        note: row.get(5)?,
    })
}

const VERSION_COLUMNS: &str = "dataset, version, created_ns, n_items, query, note";

fn get_version(
    conn: &Connection,
    project: &str,
    dataset: &str,
    version: u32,
) -> Result<Option<DatasetVersion>, Error> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {VERSION_COLUMNS} FROM dataset_versions
             WHERE project = ?1 AND dataset = ?2 AND version = ?3"
        ))?
        .query_row(params![project, dataset, version], version_row)
        .optional()?)
}

/// The span ids an item came from, hex, as a JSON list (`NULL` when none).
fn span_ids_json(item: &DatasetItem) -> Option<String> {
    let ids: Vec<String> =
        item.source.iter().chain(&item.merged_from).map(|source| source.span_id.to_hex()).collect();
    (!ids.is_empty()).then(|| serde_json::Value::from(ids).to_string())
}

fn create_version(
    conn: &mut Connection,
    project: &ProjectId,
    dataset: &str,
    changes: &NewDatasetVersion,
) -> Result<store::Result<DatasetVersion>, Error> {
    let project = project.as_str();
    let tx = conn.transaction()?;
    let latest: Option<Option<i64>> = tx
        .query_row(
            "SELECT latest_version FROM datasets WHERE project = ?1 AND name = ?2",
            params![project, dataset],
            |row| row.get(0),
        )
        .optional()?;
    let Some(latest) = latest else {
        return Ok(Err(store::Error::NotFound(format!("dataset {dataset:?}"))));
    };
    let new_version = latest.unwrap_or(0) + 1;
    if let Some(base) = changes.base {
        if get_version(&tx, project, dataset, base)?.is_none() {
            return Ok(Err(store::Error::NotFound(format!(
                "dataset {dataset:?} has no version {base}"
            ))));
        }
        tx.execute(
            "INSERT INTO dataset_members
                 (project, dataset, version, item_id, revision, fingerprint, span_ids)
             SELECT project, dataset, ?3, item_id, revision, fingerprint, span_ids
             FROM dataset_members WHERE project = ?1 AND dataset = ?2 AND version = ?4",
            params![project, dataset, new_version, base],
        )?;
    }
    {
        let mut remove = tx.prepare_cached(
            "DELETE FROM dataset_members
             WHERE project = ?1 AND dataset = ?2 AND version = ?3 AND item_id = ?4",
        )?;
        for item_id in &changes.remove {
            remove.execute(params![project, dataset, new_version, item_id])?;
        }
        let mut remove_duplicates = tx.prepare_cached(
            "DELETE FROM dataset_members
             WHERE project = ?1 AND dataset = ?2 AND version = ?3 AND fingerprint = ?4
                 AND item_id != ?5",
        )?;
        let mut insert_item = tx.prepare_cached(
            "INSERT OR REPLACE INTO dataset_items (project, dataset, item_id, revision, doc)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut insert_member = tx.prepare_cached(
            "INSERT OR REPLACE INTO dataset_members
                 (project, dataset, version, item_id, revision, fingerprint, span_ids)
             VALUES (?1, ?2, ?3, ?4, ?3, ?5, ?6)",
        )?;
        for item in &changes.add {
            if changes.merge_duplicates {
                remove_duplicates.execute(params![
                    project,
                    dataset,
                    new_version,
                    item.input_fingerprint,
                    item.id
                ])?;
            }
            let doc = serde_json::to_string(item)
                .map_err(|e| Error::Corrupt(format!("cannot encode dataset item: {e}")))?;
            insert_item.execute(params![project, dataset, item.id, new_version, doc])?;
            insert_member.execute(params![
                project,
                dataset,
                new_version,
                item.id,
                item.input_fingerprint,
                span_ids_json(item)
            ])?;
        }
    }
    let n_items: i64 = tx.query_row(
        "SELECT COUNT(*) FROM dataset_members WHERE project = ?1 AND dataset = ?2 AND version = ?3",
        params![project, dataset, new_version],
        |row| row.get(0),
    )?;
    tx.execute(
        "INSERT INTO dataset_versions (project, dataset, version, created_ns, n_items, query, note)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            project,
            dataset,
            new_version,
            to_i64(changes.created_ns),
            n_items,
            changes.query,
            changes.note
        ],
    )?;
    tx.execute(
        "UPDATE datasets SET latest_version = ?3 WHERE project = ?1 AND name = ?2",
        params![project, dataset, new_version],
    )?;
    tx.commit()?;
    Ok(Ok(DatasetVersion {
        dataset: dataset.to_owned(),
        version: u32::try_from(new_version).unwrap_or(u32::MAX),
        created_ns: changes.created_ns,
        n_items: u64::try_from(n_items).unwrap_or(0),
        query: changes.query.clone(),
        note: changes.note.clone(),
    }))
}

fn items_page(
    conn: &Connection,
    project: &ProjectId,
    dataset: &str,
    version: u32,
    after: Option<&Cursor>,
    limit: u32,
) -> Result<store::Result<Page<DatasetItem>>, Error> {
    let project = project.as_str();
    if get_version(conn, project, dataset, version)?.is_none() {
        return Ok(Err(store::Error::NotFound(format!(
            "dataset {dataset:?} has no version {version}"
        ))));
    }
    let limit = if limit == 0 { 100 } else { limit.min(MAX_LIMIT) };
    let after = after.map(|cursor| cursor.0.clone()).unwrap_or_default();
    let mut select = conn.prepare_cached(
        "SELECT i.doc FROM dataset_members m JOIN dataset_items i
             ON i.project = m.project AND i.dataset = m.dataset AND i.item_id = m.item_id
                AND i.revision = m.revision
         WHERE m.project = ?1 AND m.dataset = ?2 AND m.version = ?3 AND m.item_id > ?4
         ORDER BY m.item_id LIMIT ?5",
    )?;
    let rows = select.query_map(params![project, dataset, version, after, limit + 1], |row| {
        row.get::<_, String>(0)
    })?;
    let mut items = Vec::new();
    for doc in rows {
        items.push(decode::<DatasetItem>(&doc?, "dataset item")?);
    }
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|item| Cursor(item.id.clone()))
    } else {
        None
    };
    Ok(Ok(Page { items, next_cursor, total: None }))
}

impl SqliteStore {
    pub(crate) async fn dataset_create(&self, dataset: &Dataset) -> store::Result<()> {
        let dataset = dataset.clone();
        let res = self
            .with_writer(move |conn| {
                let n = conn.execute(
                    "INSERT OR IGNORE INTO datasets (project, name, description, created_ns)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![
                        dataset.project.as_str(),
                        dataset.name,
                        dataset.description,
                        to_i64(dataset.created_ns)
                    ],
                )?;
                Ok((n, dataset.name))
            })
            .await?;
        match res {
            (0, name) => Err(store::Error::Conflict(format!("dataset {name:?} already exists"))),
            _ => Ok(()),
        }
    }

    pub(crate) async fn dataset_get(
        &self,
        project: &ProjectId,
        name: &str,
    ) -> store::Result<Option<Dataset>> {
        let (project, name) = (project.clone(), name.to_owned());
        self.with_reader(move |conn| {
            let row = conn
                .prepare_cached(
                    "SELECT project, name, description, created_ns, latest_version FROM datasets
                     WHERE project = ?1 AND name = ?2",
                )?
                .query_row(params![project.as_str(), name], dataset_row)
                .optional()?;
            row.map(to_dataset).transpose()
        })
        .await
    }

    pub(crate) async fn dataset_list(&self, project: &ProjectId) -> store::Result<Vec<Dataset>> {
        let project = project.clone();
        self.with_reader(move |conn| {
            let mut select = conn.prepare_cached(
                "SELECT project, name, description, created_ns, latest_version FROM datasets
                 WHERE project = ?1 ORDER BY name",
            )?;
            let rows = select.query_map(params![project.as_str()], dataset_row)?;
            let mut res = Vec::new();
            for row in rows {
                res.push(to_dataset(row?)?);
            }
            Ok(res)
        })
        .await
    }

    pub(crate) async fn dataset_version_create(
        &self,
        project: &ProjectId,
        dataset: &str,
        changes: &NewDatasetVersion,
    ) -> store::Result<DatasetVersion> {
        let (project, dataset, changes) = (project.clone(), dataset.to_owned(), changes.clone());
        self.with_writer(move |conn| create_version(conn, &project, &dataset, &changes)).await?
    }

    pub(crate) async fn dataset_version_get(
        &self,
        project: &ProjectId,
        dataset: &str,
        version: u32,
    ) -> store::Result<Option<DatasetVersion>> {
        let (project, dataset) = (project.clone(), dataset.to_owned());
        self.with_reader(move |conn| get_version(conn, project.as_str(), &dataset, version)).await
    }

    pub(crate) async fn dataset_version_list(
        &self,
        project: &ProjectId,
        dataset: &str,
    ) -> store::Result<Vec<DatasetVersion>> {
        let (project, dataset) = (project.clone(), dataset.to_owned());
        self.with_reader(move |conn| {
            let mut select = conn.prepare_cached(&format!(
                "SELECT {VERSION_COLUMNS} FROM dataset_versions
                 WHERE project = ?1 AND dataset = ?2 ORDER BY version"
            ))?;
            let rows = select.query_map(params![project.as_str(), dataset], version_row)?;
            let mut res = Vec::new();
            for row in rows {
                res.push(row?);
            }
            Ok(res)
        })
        .await
    }

    pub(crate) async fn dataset_items_page(
        &self,
        project: &ProjectId,
        dataset: &str,
        version: u32,
        after: Option<&Cursor>,
        limit: u32,
    ) -> store::Result<Page<DatasetItem>> {
        let (project, dataset, after) = (project.clone(), dataset.to_owned(), after.cloned());
        self.with_reader(move |conn| {
            items_page(conn, &project, &dataset, version, after.as_ref(), limit)
        })
        .await?
    }

    pub(crate) async fn datasets_of_span(
        &self,
        project: &ProjectId,
        span_id: SpanId,
    ) -> store::Result<Vec<DatasetRef>> {
        let project = project.clone();
        self.with_reader(move |conn| {
            let mut select = conn.prepare_cached(
                "SELECT m.dataset, m.version, m.item_id FROM dataset_members m, json_each(m.span_ids) j
                 WHERE m.project = ?1 AND m.span_ids IS NOT NULL AND j.value = ?2
                 ORDER BY m.dataset, m.version",
            )?;
            let rows = select.query_map(params![project.as_str(), span_id.to_hex()], |row| {
                Ok(DatasetRef { dataset: row.get(0)?, version: row.get(1)?, item_id: row.get(2)? })
            })?;
            let mut res = Vec::new();
            for row in rows {
                res.push(row?);
            }
            Ok(res)
        })
        .await
    }
}
