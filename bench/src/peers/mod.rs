//! The Rust peers (feature `peers`), each set up the way its documentation
//! shows, in the same binary format as ours where the library allows it
//! (bincode for hitbox and multi-tier-cache; `cached` stores MessagePack only).

mod cached_rs;
mod hitbox_rs;
mod mtc;

use std::sync::OnceLock;

use crate::measure::{Call, Entrant, Spec};

pub(crate) use cached_rs::memory as cached_memory;
pub(crate) use mtc::Mtc;

static URL: OnceLock<String> = OnceLock::new();

/// The private Redis's URL (`cached` builds its store lazily, from a static).
fn url() -> String {
    URL.get().cloned().unwrap_or_default()
}

/// Every peer, connected to the private Redis.
#[derive(Debug)]
pub(crate) struct Peers {
    hitbox: hitbox_rs::Hitbox,
    pub(crate) mtc: Mtc,
}

impl Peers {
    pub(crate) async fn setup(url: &str) -> Result<Peers, String> {
        let _ = URL.set(url.to_owned());
        Ok(Peers {
            hitbox: hitbox_rs::Hitbox::setup(url)?,
            mtc: Mtc::setup(url).await?,
        })
    }

    pub(crate) fn l1(&self, keys: u64) -> Vec<Entrant> {
        let mut v = cached_rs::l1(keys);
        v.extend(self.hitbox.l1(keys));
        v.extend(self.mtc.l1(keys));
        v
    }

    pub(crate) fn l2(&self, keys: u64) -> Vec<Entrant> {
        let mut v = cached_rs::l2(keys);
        v.extend(self.hitbox.l2(keys));
        v.extend(self.mtc.l2(keys));
        v
    }

    /// Calls on cold keys for the stampede case: each library's two-tier (or
    /// only) setup, plus the single-flight option where it has one.
    pub(crate) fn stampede(&self) -> Vec<(Spec, Call)> {
        let mut v = cached_rs::stampede();
        v.extend(self.hitbox.stampede());
        v.extend(self.mtc.calls());
        v
    }

    /// Calls that go to Redis on an L1 miss, for the Redis-killed case.
    pub(crate) fn outage(&self) -> Vec<(Spec, Call)> {
        let mut v = cached_rs::outage();
        v.extend(self.hitbox.outage());
        v.extend(self.mtc.calls());
        v
    }
}
