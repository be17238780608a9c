//! The write side: storing values (Redis first, then in-process), deletes,
//! invalidation by key or pattern, `clear`, `expire`, and the other manual
//! look-ups (`exists`, `ttl`).
//!
//! Every removal is recorded in the invalidation log for as long as it runs
//! (so a computation racing it does not store), and goes to Redis through
//! [`L2::invalidate_key`] / [`L2::invalidate_pattern`], which announce it
//! to other instances or queue it for replay: nothing is lost to an outage.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Engine, Spec};
use crate::codec::Meta;
use crate::error::Error;
use crate::glob::Glob;
use crate::invalidation::{Matcher, Recording};
use crate::observe::Event;
use crate::options::Options;
use crate::stats::Removal;
use crate::tier::memory::{L1, Shared};
use crate::tier::{L2, Observed, Timing};
use crate::ttl::{Ttl, jittered};
use crate::value::CacheValue;

/// Where a value to store comes from.
#[derive(Clone, Copy)]
pub(super) enum Source<'a> {
    /// An explicit `set`: overwrites, and other instances drop their copies.
    Set,
    /// An origin call that started at invalidation epoch `start`, with the
    /// Redis markers read before it (and when), and how long it took.
    Computed {
        start: u64,
        observed: Option<&'a (Observed, Instant)>,
        delta: Duration,
    },
}

impl Engine {
    /// See [`Cache::set`](crate::Cache::set); `key` is a full key.
    pub(crate) async fn set<T: CacheValue>(
        &self,
        key: &str,
        value: &T,
        ttl: Ttl,
    ) -> Result<(), Error> {
        if !self.config.enabled {
            return Ok(());
        }
        let opts = Options::new(ttl);
        self.put(key, value, &Spec::new(&opts, None)).await
    }

    /// Writes `value` under `key` with a call's settings (format, version,
    /// TTL): [`set`](Self::set), and `#[cache_put]`.
    pub(crate) async fn put<T: CacheValue>(
        &self,
        key: &str,
        value: &T,
        spec: &Spec<'_>,
    ) -> Result<(), Error> {
        let ttl = self.resolve_ttl(spec.opts.ttl);
        self.put_for(key, value, ttl, spec).await
    }

    /// [`put`](Self::put) for `ttl` (the spec's own TTL, or what its
    /// `ttl_from` made of it).
    pub(crate) async fn put_for<T: CacheValue>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
        spec: &Spec<'_>,
    ) -> Result<(), Error> {
        if !self.config.enabled {
            return Ok(());
        }
        // A computation of this key already under way read what this value
        // replaces: recorded like an invalidation, it will not store over it.
        let recording = self.log.begin(Arc::new(Glob::exact_key(key)));
        let stored = self.store(key, value, ttl, spec, Source::Set).await?;
        // As after a removal (`after_shared_removal`): a call that started
        // during the write may have copied the old value from Redis into the
        // in-process tier; recorded again, no such copy is accepted from now
        // on, and the new value replaces any accepted before.
        drop(recording);
        if let Some(entry) = stored
            && self.config.l1_enabled
        {
            self.l1
                .insert_tagged(key.to_owned(), entry, spec.owned_tags());
        }
        Ok(())
    }

    /// Writes both tiers (shared first, so a reader that misses in-process
    /// finds it). A computed value stays stored only if no invalidation
    /// since its start matched the key; else `None`.
    pub(super) async fn store<T: CacheValue>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
        spec: &Spec<'_>,
        source: Source<'_>,
    ) -> Result<Option<Shared>, Error> {
        let (guard, delta) = match source {
            Source::Set => (None, None),
            Source::Computed { start, delta, .. } => (Some(start), Some(delta)),
        };
        let ttl = jittered(ttl, self.config.ttls.jitter);
        let stale = spec.opts.stale.unwrap_or_default();
        let mut written = false;
        if let Some(l2) = self.l2.as_ref().filter(|_| !spec.skip_l2_write) {
            match self
                .write_l2(l2, key, value, ttl, spec, source, stale)
                .await
            {
                Ok(Some(true)) => written = true,
                Ok(Some(false)) => {
                    // An invalidation, here or in another process, came
                    // after the origin read its data: the value is stale.
                    tracing::debug!(key, "computed value refused: invalidated while computing");
                    return Ok(None);
                }
                Ok(None) => {}
                // Strict mode fails a manual `set`; a computed value carries on.
                Err(e) if guard.is_none() => return Err(e),
                Err(_) => {}
            }
        }
        let entry = self.entry_for(
            value,
            ttl,
            &Timing {
                left: Some(ttl),
                stale,
                delta,
            },
            spec,
        );
        let kept = match (guard, self.config.l1_enabled) {
            (None, true) => {
                self.l1
                    .insert_tagged(key.to_owned(), Arc::clone(&entry), spec.owned_tags());
                true
            }
            (None, false) => true,
            (Some(start), true) => {
                let e = Arc::clone(&entry);
                self.log
                    .insert_unless_invalidated(start, key, spec.tags, || {
                        self.l1.insert_tagged(key.to_owned(), e, spec.owned_tags());
                    })
            }
            (Some(start), false) => !self.log.invalidated_since(start, key, spec.tags),
        };
        if !kept {
            // An invalidation overtook this computation after its value went to
            // Redis: undo it as a full invalidation of the key, since another
            // reader may already have copied it.
            if written && let Some(l2) = &self.l2 {
                let _recording = self.log.begin(Arc::new(Glob::exact_key(key)));
                self.l1.remove(key);
                // Whatever does not reach Redis is queued and replayed.
                let _ = l2.invalidate_key(key).await;
            }
            return Ok(None);
        }
        self.record(spec.site, Event::Set);
        Ok(Some(entry))
    }

    /// The Redis half of [`store`](Self::store): `Some(true)` written,
    /// `Some(false)` refused (invalidated while computing), `None` not
    /// written (not encodable, Redis failing, or markers too old to guard
    /// the write). `Err` only in strict mode.
    #[allow(clippy::too_many_arguments)]
    async fn write_l2<T: CacheValue>(
        &self,
        l2: &L2,
        key: &str,
        value: &T,
        ttl: Duration,
        spec: &Spec<'_>,
        source: Source<'_>,
        stale: Duration,
    ) -> Result<Option<bool>, Error> {
        // A computed value goes to Redis only against markers observed
        // before its computation, and not long ago.
        let observed = match source {
            Source::Set => None,
            Source::Computed {
                observed: Some((seen, at)),
                ..
            } if l2.observation_usable(*at) => Some(seen),
            Source::Computed { .. } => return Ok(None),
        };
        // With a stale window or early refresh, the window and the origin's
        // time travel with the value.
        let meta = spec.opts.keeps_meta().then(|| Meta {
            stale_ms: u64::try_from(stale.as_millis()).unwrap_or(u64::MAX),
            delta_ms: match source {
                Source::Computed { delta, .. } => {
                    u32::try_from(delta.as_millis()).unwrap_or(u32::MAX)
                }
                Source::Set => 0,
            },
        });
        let o = spec.opts;
        let bytes = match l2.encode(value, o.version, o.format, o.compression, meta) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.record(spec.site, Event::EncodeError);
                tracing::warn!(key, error = %e, "value not stored in Redis");
                return Ok(None);
            }
        };
        let physical = ttl.saturating_add(stale);
        let written = match observed {
            Some(seen) => {
                l2.write_computed(key, &bytes, physical, seen, spec.tags)
                    .await
            }
            None => l2
                .write(key, &bytes, physical, spec.tags)
                .await
                .map(|()| true),
        };
        match written {
            Ok(true) if observed.is_none() => {
                // An explicit overwrite may replace copies other instances
                // hold. A computed value cannot: it follows a miss in Redis,
                // and no in-process copy outlives the Redis key it was read
                // from (see `Config::l1_ttl`). Queued for replay if not sent.
                let _ = l2.announce_key(key).await;
                Ok(Some(true))
            }
            Ok(stored) => Ok(Some(stored)),
            Err(e) => {
                // An overwrite that failed leaves the old value in Redis: queue its removal.
                if observed.is_none() {
                    l2.defer_key(key);
                }
                self.tier_error("set", key, &e)?;
                Ok(None)
            }
        }
    }

    /// See [`Cache::delete`](crate::Cache::delete); `key` is a full key.
    pub(crate) async fn delete(&self, key: &str) -> Result<Removal, Error> {
        if !self.config.enabled {
            return Ok(Removal::default());
        }
        let recording = self.log.begin(Arc::new(Glob::exact_key(key)));
        let mut removed = u64::from(self.l1.remove(key));
        let mut queued = false;
        if let Some(l2) = &self.l2 {
            let out = l2.invalidate_key(key).await;
            self.after_shared_removal(recording, |l1| {
                l1.remove(key);
            });
            // Kept and replayed (with its announcement) once Redis answers.
            queued = out.error.is_some();
            match (out.removed, out.error) {
                (Some(n), _) => removed = n.min(1),
                (None, Some(e)) => self.tier_error("delete", key, &e)?,
                (None, None) => {}
            }
        }
        self.record(None, Event::Delete);
        Ok(Removal { removed, queued })
    }

    /// See [`Cache::exists`](crate::Cache::exists); `key` is a full key.
    pub(crate) async fn exists(&self, key: &str) -> Result<bool, Error> {
        if !self.config.enabled {
            return Ok(false);
        }
        if self.config.l1_enabled && self.l1.entry(key).is_some() {
            return Ok(true);
        }
        if let Some(l2) = &self.l2 {
            match l2.exists(key).await {
                Ok(found) => return Ok(found),
                Err(e) => self.tier_error("exists", key, &e)?,
            }
        }
        Ok(false)
    }

    /// See [`Cache::ttl`](crate::Cache::ttl); `key` is a full key.
    pub(crate) async fn ttl(&self, key: &str) -> Result<Option<Duration>, Error> {
        if !self.config.enabled {
            return Ok(None);
        }
        if let Some(l2) = &self.l2 {
            match l2.ttl(key).await {
                Ok(left) => return Ok(left),
                Err(e) => self.tier_error("ttl", key, &e)?,
            }
        }
        Ok(self.l1.entry(key).and_then(|e| e.remaining(Instant::now())))
    }

    /// See [`Cache::expire`](crate::Cache::expire); `key` is a full key.
    pub(crate) async fn expire(&self, key: &str, ttl: Ttl) -> Result<bool, Error> {
        if !self.config.enabled {
            return Ok(false);
        }
        let ttl = self.resolve_ttl(ttl);
        let start = self.log.epoch();
        let local = self.l1.retime(key, self.config.l1_ttl(ttl, None, None));
        // The re-armed copy was read before an invalidation that ran
        // meanwhile may have removed it: it goes again.
        if local
            && self
                .log
                .invalidated_since(start, key, &self.l1.tags_of(key))
        {
            self.l1.remove(key);
        }
        if let Some(l2) = &self.l2 {
            match l2.expire(key, ttl).await {
                Ok(found) => {
                    // Other instances' copies must not outlive the new TTL
                    // (queued for replay if the message is not sent).
                    if found {
                        let _ = l2.announce_key(key).await;
                    }
                    return Ok(found);
                }
                Err(e) => self.tier_error("expire", key, &e)?,
            }
        }
        Ok(local)
    }

    /// Invalidates a full pattern in both tiers and announces it; what cannot
    /// reach Redis is kept and replayed. `Err` only in strict mode.
    pub(crate) async fn invalidate(&self, full_pattern: &str) -> Result<Removal, Error> {
        if !self.config.enabled {
            return Ok(Removal::default());
        }
        let glob = Arc::new(Glob::new(full_pattern));
        let recording = self.log.begin(Arc::clone(&glob));
        let (removed, failure) = match &self.l2 {
            Some(l2) => {
                // Redis first: once its command is on its way, the in-process
                // removal runs while Redis works.
                let mut shared = std::pin::pin!(l2.invalidate_pattern(full_pattern));
                let early = poll_once(shared.as_mut()).await;
                let local = self.l1.remove_matching(&glob);
                let out = match early {
                    Some(done) => done,
                    None => shared.await,
                };
                self.after_shared_removal(recording, |l1| {
                    l1.remove_matching(&glob);
                });
                (out.removed.unwrap_or(local), out.error)
            }
            None => (self.l1.remove_matching(&glob), None),
        };
        self.record(None, Event::Invalidation { removed });
        tracing::debug!(pattern = full_pattern, removed, "cache invalidated");
        let queued = failure.is_some();
        if let Some(e) = failure {
            self.tier_error("invalidate", full_pattern, &e)?;
        }
        Ok(Removal { removed, queued })
    }

    /// See [`Cache::invalidate_tag`](crate::Cache::invalidate_tag).
    pub(crate) async fn invalidate_tag(&self, tag: &str) -> Result<Removal, Error> {
        if !self.config.enabled {
            return Ok(Removal::default());
        }
        let recording = self.log.begin(Matcher::Tag(tag.into()));
        let (removed, failure) = match &self.l2 {
            Some(l2) => {
                let mut shared = std::pin::pin!(l2.invalidate_tag(tag));
                let early = poll_once(shared.as_mut()).await;
                let local = self.l1.remove_tagged(tag);
                let out = match early {
                    Some(done) => done,
                    None => shared.await,
                };
                self.after_shared_removal(recording, |l1| {
                    l1.remove_tagged(tag);
                });
                (out.removed.unwrap_or(local), out.error)
            }
            None => (self.l1.remove_tagged(tag), None),
        };
        self.record(None, Event::Invalidation { removed });
        tracing::debug!(tag, removed, "cache tag invalidated");
        let queued = failure.is_some();
        if let Some(e) = failure {
            self.tier_error("invalidate_tag", tag, &e)?;
        }
        Ok(Removal { removed, queued })
    }

    /// Closes an invalidation once Redis has removed what it matches (or
    /// queued the removal): records it again, then removes the in-process
    /// copies again. A read of Redis that ran before the removal there, by
    /// a call that started after the first record, may have filled the
    /// in-process tier with the old value meanwhile; from the second record
    /// on no such fill is accepted, and the ones accepted before it are
    /// removed now. (Found by the chaos soak: without it an instance read
    /// back values it had invalidated, about 60 times in 4 s.)
    fn after_shared_removal(&self, recording: Recording<'_>, remove: impl FnOnce(&L1)) {
        drop(recording);
        remove(&self.l1);
    }

    /// See [`Cache::clear`](crate::Cache::clear).
    pub(crate) async fn clear(&self) -> Result<Removal, Error> {
        if !self.config.enabled {
            return Ok(Removal::default());
        }
        let prefix = &self.config.key_prefix;
        if self.l2.is_some() && !prefix.is_empty() {
            return self.invalidate(&format!("{prefix}:*")).await;
        }
        if self.l2.is_some() {
            tracing::warn!("clear() with an empty key prefix leaves Redis untouched");
        }
        self.l1.sync();
        let removed = self.l1.entry_count();
        self.forget_everything_local();
        self.record(None, Event::Invalidation { removed });
        Ok(Removal {
            removed,
            queued: false,
        })
    }
}

/// Polls `fut` once: its output if it is already done, else `None` (it has
/// started, and can be awaited later).
async fn poll_once<F: Future + Unpin>(mut fut: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut fut).poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}
