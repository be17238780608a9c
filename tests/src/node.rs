//! Talking to the nodes of a private cluster or Sentinel deployment while
//! it forms and fails over: blocking one-shot commands, and a bounded poll.

use std::time::{Duration, Instant};

/// Longest wait for a deployment to form or to fail over.
pub(crate) const BOUND: Duration = Duration::from_secs(30);

/// The password every node requires (`requirepass`), if any.
#[derive(Debug, Clone, Default)]
pub(crate) struct Auth(pub(crate) Option<String>);

impl Auth {
    /// `redis://[:password@]127.0.0.1:port`.
    pub(crate) fn url(&self, port: u16) -> String {
        match &self.0 {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{port}"),
            None => format!("redis://127.0.0.1:{port}"),
        }
    }
}

/// One command to the node on `port`, on a new connection, 2 s at most.
pub(crate) fn query<T: redis::FromRedisValue>(
    auth: &Auth,
    port: u16,
    cmd: &redis::Cmd,
) -> redis::RedisResult<T> {
    let client = redis::Client::open(auth.url(port))?;
    let mut con = client.get_connection_with_timeout(Duration::from_secs(2))?;
    con.set_read_timeout(Some(Duration::from_secs(2)))?;
    cmd.query(&mut con)
}

/// Polls `condition` every 20 ms until it holds or [`BOUND`] passes.
/// Polling external processes: there is no event to await.
///
/// # Panics
///
/// `timed out after 30 s waiting for: <what>`.
pub(crate) fn wait(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + BOUND;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {BOUND:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
