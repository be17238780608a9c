//! TLS (feature `tls`) against a private `redis-server` listening with
//! `--tls-port`, with certificates this test makes (a CA of its own and a
//! server certificate it signed): hits, misses and invalidation across two
//! instances over `rediss://`, and a server certificate the client must
//! refuse (signed by an authority it does not trust).

use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cache_core::{Cache, HealthStatus, cached};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use tests::redis_server::{RedisServer, ServerConfig};

/// A CA (its certificate in PEM) and a server certificate and key it
/// signed for `127.0.0.1` and `localhost`, written into `dir`.
fn certificates(dir: &Path) -> String {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    ca.pem()
}

/// A server with a plain port (the suites' readiness check) and a TLS port.
fn tls_server(dir: &Path) -> (RedisServer, u16) {
    let tls_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = |name: &str| dir.join(name).display().to_string();
    let server = RedisServer::start_with(ServerConfig {
        args: vec![
            "--tls-port".into(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            file("server.pem"),
            "--tls-key-file".into(),
            file("server.key"),
            "--tls-ca-cert-file".into(),
            file("ca.pem"),
            "--tls-auth-clients".into(),
            "no".into(),
        ],
        ..Default::default()
    });
    (server, tls_port)
}

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "medium", key = "tls:<id>")]
async fn row(id: u64) -> String {
    CALLS.fetch_add(1, SeqCst);
    format!("row {id}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn over_tls_values_are_shared_and_invalidated_and_an_untrusted_server_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = certificates(dir.path());
    let (_server, port) = tls_server(dir.path());
    let url = format!("rediss://127.0.0.1:{port}/0");
    let instance = |trusted: Option<&str>| {
        let builder = Cache::builder()
            .redis_url(&url)
            .redis_op_timeout(Duration::from_secs(2))
            .redis_connect_timeout(Duration::from_secs(5));
        match trusted {
            Some(pem) => builder.redis_tls_root_certificates(pem.as_bytes()),
            None => builder,
        }
        .build_blocking()
        .unwrap()
    };
    let (a, b) = (instance(Some(&ca)), instance(Some(&ca)));
    for c in [&a, &b] {
        tests::support::connected(c).await;
        assert_eq!(c.health().await.status, HealthStatus::Healthy);
    }
    // A miss on A, a hit from Redis on B.
    assert_eq!(a.scope(row(1)).await, "row 1");
    assert_eq!(b.scope(row(1)).await, "row 1");
    assert_eq!(CALLS.load(SeqCst), 1);
    assert_eq!(b.stats().await.l2_hits, 1);
    // An invalidation on A reaches B's in-process copy over the backplane.
    let mut heard = b.backplane().unwrap();
    let before = heard.borrow().applied;
    assert_eq!(a.invalidate("tls:*").await.unwrap().removed, 1);
    heard.wait_for(|s| s.applied > before).await.unwrap();
    assert_eq!(b.scope(row(1)).await, "row 1");
    assert_eq!(CALLS.load(SeqCst), 2, "B computed again");

    // The platform's roots do not know this CA: the connection is refused,
    // and the cache serves calls by their function.
    let untrusting = instance(None);
    assert_eq!(untrusting.scope(row(2)).await, "row 2");
    let health = untrusting.health().await;
    assert_eq!(health.status, HealthStatus::Degraded);
    let error = health.error.unwrap_or_default().to_lowercase();
    assert!(
        error.contains("certificate") || error.contains("issuer"),
        "{error}"
    );
}
