//! The running `employee-service` the suites drive over HTTP, shared by
//! `service.rs` and `dashboard.rs` (each uses part of it).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::support::eventually;

/// Longest wait for a service to print its `listening on` line.
pub(crate) const START_BOUND: Duration = Duration::from_secs(60);
pub(crate) const TOKEN: &str = "test-admin-token";

/// A running `employee-service`, killed on drop (its log is printed if the
/// test failed).
pub(crate) struct Service {
    pub(crate) child: Child,
    pub(crate) base: String,
    pub(crate) log: PathBuf,
    pub(crate) http: reqwest::Client,
}

impl Service {
    /// Starts the service on `db` with `env` (and nothing else from the
    /// test's environment but `PATH`), once it is listening.
    pub(crate) fn start(dir: &Path, name: &str, db: &Path, env: &[(&str, &str)]) -> Service {
        let log = dir.join(format!("{name}.log"));
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_employee-service"));
        cmd.env_clear()
            .env("PORT", "0")
            .env("DATABASE_PATH", db)
            .env("RUST_LOG", "info,cache_core=debug")
            // Counts stay exact: nothing is cached before the test's requests.
            .env("WARM_ON_START", "false")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        let mut child = cmd.spawn().expect("spawn employee-service");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep the pipe open (and drained) for the process's lifetime.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = rx.recv_timeout(START_BOUND).unwrap_or_default();
        let mut service = Service {
            child,
            base: String::new(),
            log,
            http: reqwest::Client::new(),
        };
        match line.trim().strip_prefix("listening on ") {
            Some(addr) => service.base = addr.to_owned(),
            None => panic!(
                "{name} did not announce itself (got {line:?}); log:\n{}",
                service.log()
            ),
        }
        service
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.get(self.url(path))).await
    }

    pub(crate) async fn get_with(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.send(self.http.get(self.url(path)).bearer_auth(token))
            .await
    }

    pub(crate) async fn put_json(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.send(self.http.put(self.url(path)).json(body)).await
    }

    pub(crate) async fn put_raw(&self, path: &str, body: &'static str) -> (StatusCode, Value) {
        let request = self
            .http
            .put(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        self.send(request).await
    }

    /// The status and the JSON body (`Null` for an empty one; a body that
    /// is not JSON fails the test: every answer of the API is JSON).
    pub(crate) async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        if text.is_empty() {
            return (status, Value::Null);
        }
        match serde_json::from_str(&text) {
            Ok(v) => (status, v),
            Err(e) => panic!("{status}: body is not JSON ({e}): {text:?}"),
        }
    }

    pub(crate) async fn metrics(&self) -> String {
        let response = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.expect("metrics text")
    }

    /// `cache_calls_total` of `function` (a key template) with `outcome`;
    /// 0 before the function's first call registers it.
    pub(crate) async fn calls(&self, function: &str, outcome: &str) -> f64 {
        let text = self.metrics().await;
        sample(
            &text,
            "cache_calls_total",
            &[("function", function), ("outcome", outcome)],
        )
        .unwrap_or(0.0)
    }

    /// Waits until the backplane subscription is active, so that no other
    /// instance's invalidation published from now on is missed (and no
    /// late subscription clears the in-process tier mid-test).
    pub(crate) async fn backplane_connected(&self) {
        eventually("the backplane subscription", async || {
            let (status, health) = self.get("/healthz").await;
            status == StatusCode::OK && health["backplane"]["connected"] == json!(true)
        })
        .await;
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- employee-service log ({}) ---\n{}",
                self.base,
                self.log()
            );
        }
    }
}

/// The value of the sample of `name` whose labels include `labels`, in
/// Prometheus text format.
pub(crate) fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        let (set, value) = rest.split_once("} ")?;
        // Whole `k="v"` pairs (a value may itself hold a comma).
        let set = format!(",{set},");
        let all = labels
            .iter()
            .all(|(k, v)| set.contains(&format!(",{k}=\"{v}\",")));
        if all { value.trim().parse().ok() } else { None }
    })
}

pub(crate) fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("employee-service-test-")
        .tempdir()
        .expect("temp dir")
}

/// A service on a new database of its own, with the admin token.
pub(crate) fn service(dir: &tempfile::TempDir) -> Service {
    let db = dir.path().join("employees.sqlite3");
    Service::start(dir.path(), "service", &db, &[("CACHE_ADMIN_TOKEN", TOKEN)])
}
