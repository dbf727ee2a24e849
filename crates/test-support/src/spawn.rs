//! [`spawn_app`]: runs the real `loupe serve` on free ports in a temporary directory, reads its
//! addresses from the `listening on` lines, and kills it when dropped. Tests then talk to it
//! only over HTTP and gRPC, or run other `loupe` commands against it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running server. Killed (SIGKILL) on drop.
pub struct App {
    child: Option<Child>,
    dir: tempfile::TempDir,
    grpc_enabled: bool,
    /// `http://127.0.0.1:PORT`: OTLP/HTTP, the API and `/metrics`.
    pub http_url: String,
    /// `http://127.0.0.1:PORT` of the OTLP/gRPC listener (empty when disabled).
    pub grpc_url: String,
    client: reqwest::Client,
}

/// An HTTP answer, fully read.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("response is not JSON ({error}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Response {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text());
        self
    }
}

/// Starts `loupe serve` with this `loupe.toml` text, a fresh data dir and free ports.
pub async fn spawn_app(config_toml: &str) -> App {
    let dir = tempfile::tempdir().expect("creating a temp dir");
    std::fs::write(dir.path().join("loupe.toml"), config_toml).expect("writing loupe.toml");
    let mut app = App {
        child: None,
        grpc_enabled: !config_toml.replace(' ', "").contains("grpc_enabled=false"),
        dir,
        http_url: String::new(),
        grpc_url: String::new(),
        client: reqwest::Client::new(),
    };
    app.start();
    app
}

/// The `loupe` binary: `LOUPE_BIN`, else next to the test executable's folder
/// (`target/debug/loupe` for `target/debug/deps/it-…`).
pub fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("LOUPE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("locating the test executable");
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(format!("loupe{}", std::env::consts::EXE_SUFFIX))
}

impl App {
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A `loupe` command with this app's config, data dir and URL (`LOUPE_URL`).
    pub fn command(&self) -> Command {
        let mut command = Command::new(binary());
        command
            .current_dir(self.dir.path())
            .env("LOUPE_CONFIG", self.dir.path().join("loupe.toml"))
            .env("LOUPE_DATA_DIR", self.data_dir())
            .env("LOUPE_URL", &self.http_url)
            .env_remove("LOUPE_API_KEY")
            .env_remove("LOUPE_LOG_FORMAT");
        command
    }

    /// Runs `loupe ARGS` to completion.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("running loupe")
    }

    fn start(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("opening server.log");
        let mut child = self
            .command()
            .args(["serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"])
            .env("LOUPE_LOG", "info,ingest=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|error| panic!("starting {}: {error}", binary().display()));
        let stdout = child.stdout.take().expect("stdout is piped");
        self.child = Some(child);

        // A thread keeps reading stdout for the server's whole life, so it never blocks on a
        // full pipe; the listening lines come back over a channel.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut http, mut grpc) = (None, None);
        while http.is_none() || (self.grpc_enabled && grpc.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => panic!("the server did not start; its log:\n{}", self.logs()),
            };
            if let Some(rest) = line.strip_prefix("listening on ") {
                let url = rest.split_whitespace().next().unwrap_or("").to_owned();
                if rest.contains("gRPC") {
                    grpc = Some(url);
                } else {
                    http = Some(url);
                }
            }
        }
        self.http_url = http.unwrap_or_default();
        self.grpc_url = grpc.unwrap_or_default();
    }

    /// The server's stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// `kill -9`: no flush, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the process to exit; returns whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return false };
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        if status.map(|s| s.success()).unwrap_or(false) {
            child.wait().map(|s| s.success()).unwrap_or(false)
        } else {
            let _ = child.kill();
            let _ = child.wait();
            false
        }
    }

    /// Starts the server again on the same data dir and config (new ports).
    pub fn restart(&mut self) {
        self.kill9();
        self.start();
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Response {
        let mut request = self.client.request(method, format!("{}{path}", self.http_url));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.unwrap_or_else(|error| {
            panic!("request to {path} failed: {error}; server log:\n{}", self.logs())
        });
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        Response { status, headers, body }
    }

    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Response {
        self.request(reqwest::Method::POST, path, headers, Some(body)).await
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.request(reqwest::Method::GET, path, headers, None).await
    }

    /// `GET path`, asserting 200 and a JSON body.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let response = self.get(path, &[]).await;
        response.assert_status(200);
        response.json()
    }

    pub async fn post_otlp_json(&self, json: &str) -> Response {
        self.post("/v1/traces", &[("content-type", "application/json")], json.as_bytes().to_vec())
            .await
    }

    pub async fn post_otlp_protobuf(&self, bytes: Vec<u8>) -> Response {
        self.post("/v1/traces", &[("content-type", "application/x-protobuf")], bytes).await
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.kill9();
    }
}
