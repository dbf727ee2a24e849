//! The web console: the static files under `web/` (HTML, CSS and ES modules, no build step),
//! compiled into the binary as they are and served at `/` on the API's port.
//!
//! The page shell (`index.html`) answers `/` and every deep link the console knows
//! (`/traces/<id>/spans/<id>`, `/sessions/<id>`, ...), so a pasted URL opens the right view. Assets
//! live under `/assets/<version>/`, where the version is a hash of their contents: they are cached
//! for a year, and a new binary changes the URL. The shell itself is never cached. Every response
//! carries a Content Security Policy that keeps the console on its own origin.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One embedded file, by its path under `web/`.
struct Asset {
    path: &'static str,
    bytes: &'static [u8],
}

macro_rules! assets {
    ($($path:literal),* $(,)?) => {
        &[$(Asset {
            path: $path,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/", $path)),
        }),*]
    };
}

/// Every file under `web/` except the shell. A test checks this list against the folder.
static ASSETS: &[Asset] = assets![
    "app.js",
    "api.js",
    "caps.js",
    "chart.js",
    "chat.js",
    "dashboard.js",
    "datasets.js",
    "dom.js",
    "evals.js",
    "favicon.svg",
    "feedback.js",
    "fmt.js",
    "query.js",
    "sessions.js",
    "settings.js",
    "style.css",
    "trace.js",
    "traces.js",
];

static INDEX_TEMPLATE: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/index.html"));

/// The placeholder in `index.html` replaced by `/assets/<version>`.
const ASSET_BASE_PLACEHOLDER: &str = "__ASSET_BASE__";

/// Same-origin only: no inline script, no third-party anything. `data:` images are for icons
/// drawn by the stylesheet.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const CACHE_FOREVER: &str = "public, max-age=31536000, immutable";
const CACHE_NEVER: &str = "no-cache";

/// The console's routes. They name their paths explicitly (no fallback), so merging them into
/// the API router leaves unknown `/api/...` paths to the API's own 404.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let mut res =
        Router::new().route("/", get(index)).route("/assets/{version}/{*path}", get(asset));
    for page in ["traces", "sessions", "dashboard", "datasets", "evals", "settings"] {
        res = res
            .route(&format!("/{page}"), get(index))
            .route(&format!("/{page}/{{*rest}}"), get(index));
    }
    res
}

/// A hash of every asset's path and contents (FNV-1a, 64 bits), as 12 hex characters.
fn asset_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for asset in ASSETS {
            for byte in asset.path.bytes().chain([0]).chain(asset.bytes.iter().copied()) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("{:012x}", hash >> 16)
    })
}

fn index_html() -> &'static str {
    static HTML: OnceLock<String> = OnceLock::new();
    HTML.get_or_init(|| {
        INDEX_TEMPLATE.replace(ASSET_BASE_PLACEHOLDER, &format!("/assets/{}", asset_version()))
    })
}

async fn index() -> Response {
    respond(StatusCode::OK, "text/html; charset=utf-8", CACHE_NEVER, index_html().as_bytes())
}

async fn asset(Path((version, path)): Path<(String, String)>) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.path == path) else {
        return respond(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            CACHE_NEVER,
            b"not found",
        );
    };
    // A page loaded from an older binary may ask for an older version: answer with the current
    // file, but do not let it be cached under the old name.
    let cache = if version == asset_version() { CACHE_FOREVER } else { CACHE_NEVER };
    respond(StatusCode::OK, content_type(asset.path), cache, asset.bytes)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    cache: &'static str,
    body: &'static [u8],
) -> Response {
    let mut res = (status, body).into_response();
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    res
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn web_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web")
    }

    fn files_under(dir: &std::path::Path, prefix: &str, res: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() {
                files_under(&entry.path(), &format!("{prefix}{name}/"), res);
            } else {
                res.insert(format!("{prefix}{name}"));
            }
        }
    }

    #[test]
    fn every_web_file_is_embedded() {
        let mut on_disk = BTreeSet::new();
        files_under(&web_dir(), "", &mut on_disk);
        on_disk.remove("index.html");
        let embedded: BTreeSet<String> = ASSETS.iter().map(|asset| asset.path.to_owned()).collect();
        assert_eq!(on_disk, embedded, "keep ASSETS in console.rs in step with web/");
    }

    #[test]
    fn every_asset_has_a_known_content_type() {
        for asset in ASSETS {
            assert_ne!(content_type(asset.path), "application/octet-stream", "{}", asset.path);
        }
    }

    #[test]
    fn shell_points_at_versioned_assets() {
        let html = index_html();
        assert!(!html.contains(ASSET_BASE_PLACEHOLDER));
        assert!(html.contains(&format!("/assets/{}/app.js", asset_version())));
        // Every asset the shell names exists.
        for (start, _) in html.match_indices("/assets/") {
            let rest = &html[start..];
            let end = rest.find('"').unwrap();
            let path = rest[..end].splitn(4, '/').nth(3).unwrap();
            assert!(ASSETS.iter().any(|asset| asset.path == path), "{path}");
        }
    }

    #[tokio::test]
    async fn assets_are_cached_only_under_the_current_version() {
        let current = asset(Path((asset_version().to_owned(), "app.js".to_owned()))).await;
        assert_eq!(current.status(), StatusCode::OK);
        assert_eq!(current.headers()[header::CACHE_CONTROL], CACHE_FOREVER);
        assert_eq!(current.headers()[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
        let stale = asset(Path(("0".to_owned(), "app.js".to_owned()))).await;
        assert_eq!(stale.headers()[header::CACHE_CONTROL], CACHE_NEVER);
        let missing = asset(Path((asset_version().to_owned(), "nope.js".to_owned()))).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let shell = index().await;
        assert_eq!(shell.headers()[header::CACHE_CONTROL], CACHE_NEVER);
        assert!(
            shell.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .starts_with("default-src 'self'")
        );
    }
}
