//! Backend-neutral checks for recorded eval runs. Backends that keep them call [`run_all`]
//! from their tests, next to [`super::run_all`].
//!
//! The checks pin: a run reads back exactly as written (summary and document); lists are
//! newest first by `recorded_ns` (then id), at most `limit`, without documents; a second put
//! of the same id replaces the run; nothing of one project is seen from another.

use std::future::Future;

use super::{T0, project};
use crate::{EvalRunRecord, Store};

/// Runs every eval-run check against stores made by `make_store`.
pub async fn run_all<F, Fut>(make_store: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Box<dyn Store>>,
{
    eval_runs_round_trip(&*make_store().await).await;
}

fn run(project_name: &str, id: &str, n: u64) -> EvalRunRecord {
    EvalRunRecord {
        project: project(project_name),
        id: id.to_owned(),
        recorded_ns: T0 + n * 1_000_000_000,
        summary: format!(r#"{{"id":"{id}","stats":{{"passed":{n}}}}}"#),
        document: format!(
            r#"{{"id":"{id}","cases":[{{"id":"c1","output":"ünïcode ' \" \\ {n}"}}]}}"#
        ),
    }
}

pub async fn eval_runs_round_trip(store: &dyn Store) {
    let put = |record: EvalRunRecord| async move {
        store.put_eval_run(&record).await.unwrap_or_else(|e| panic!("put_eval_run failed: {e}"))
    };
    let list = |name: &'static str, limit: u32| async move {
        store
            .list_eval_runs(&project(name), limit)
            .await
            .unwrap_or_else(|e| panic!("list_eval_runs failed: {e}"))
            .into_iter()
            .map(|row| format!("{}@{}", row.id, (row.recorded_ns - T0) / 1_000_000_000))
            .collect::<Vec<_>>()
    };
    let get = |name: &'static str, id: &'static str| async move {
        store
            .get_eval_run(&project(name), id)
            .await
            .unwrap_or_else(|e| panic!("get_eval_run failed: {e}"))
    };
    assert!(list("p1", 10).await.is_empty());
    assert_eq!(get("p1", "r1").await, None);
    put(run("p1", "r1", 1)).await;
    put(run("p1", "r3", 3)).await;
    put(run("p1", "r2", 2)).await;
    put(run("p2", "r9", 9)).await;
    assert_eq!(list("p1", 10).await, ["r3@3", "r2@2", "r1@1"]);
    assert_eq!(list("p1", 2).await, ["r3@3", "r2@2"]);
    assert_eq!(list("p2", 10).await, ["r9@9"]);
    assert_eq!(get("p1", "r2").await, Some(run("p1", "r2", 2)));
    let rows = store.list_eval_runs(&project("p1"), 1).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows[0].summary, run("p1", "r3", 3).summary, "lists carry the summary");
    assert_eq!(get("p2", "r1").await, None, "another project's run is not found");
    assert_eq!(get("p1", "r9").await, None, "another project's run is not found");
    // A second put replaces the run.
    let mut again = run("p1", "r1", 4);
    again.summary = r#"{"id":"r1","again":true}"#.to_owned();
    put(again.clone()).await;
    assert_eq!(get("p1", "r1").await, Some(again));
    assert_eq!(list("p1", 10).await, ["r1@4", "r3@3", "r2@2"]);
}
