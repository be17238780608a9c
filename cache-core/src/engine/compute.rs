//! The origin call: run the function (holding the stampede lock, if this
//! call took it), store what it returned unless an invalidation overtook
//! it, and answer a failed or slow origin with a stale value where the
//! function keeps one (`stale_if_error`, `timeout`). Also the background
//! refresh (`refresh`), one per key across processes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::write::Source;
use super::{Engine, Kind, Spec};
use crate::observe::{Event, Outcome};
use crate::tier::flight::Leader;
use crate::tier::memory::Entry;
use crate::tier::{Attempt, Held, Observed, Read};
use crate::ttl::deadline;
use crate::value::CacheValue;

impl Engine {
    /// Runs the origin and stores what it returned, unless an invalidation
    /// since `origin.start` (the epoch before anything was read) says it is
    /// stale. A failed or (with `timeout`) slow origin is answered with the
    /// stale fallback, if the function keeps one.
    pub(super) async fn compute<K, R, F, U>(
        &self,
        key: String,
        spec: Spec<'_>,
        mut origin: Origin<'_, K::Value>,
        fut: F,
        store_ttl: U,
    ) -> R
    where
        K: Kind<R>,
        K::Value: CacheValue,
        F: Future<Output = R>,
        U: Fn(&K::Value, Duration) -> Option<Duration>,
    {
        let lock = origin.lock.take();
        let result = self
            .compute_holding::<K, R, F, U>(key, spec, origin, lock.as_ref(), fut, store_ttl)
            .await;
        // Stored, or given up: other processes waiting on our lock go on now.
        if let Some(held) = lock {
            held.release().await;
        }
        result
    }

    async fn compute_holding<K, R, F, U>(
        &self,
        key: String,
        mut spec: Spec<'_>,
        origin: Origin<'_, K::Value>,
        lock: Option<&Held>,
        fut: F,
        store_ttl: U,
    ) -> R
    where
        K: Kind<R>,
        K::Value: CacheValue,
        F: Future<Output = R>,
        U: Fn(&K::Value, Duration) -> Option<Duration>,
    {
        let fns = spec.site;
        let Origin {
            start,
            leader,
            fallback,
            lock: _,
            mut observed,
        } = origin;
        // What Redis's markers say before the origin runs: the write of its
        // result is refused if an invalidation anywhere changes them meanwhile.
        if let Some(l2) = &self.l2
            && !spec.skip_l2_write
            && observed.is_none()
        {
            let asked = Instant::now();
            match l2.observe(&key).await {
                Ok(seen) => observed = Some((seen, asked)),
                Err(e) => {
                    // Unobserved, the result cannot be written safely: in-process only.
                    let _ = self.tier_error("observe", &key, &e);
                    spec.skip_l2_write = true;
                }
            }
        }
        if !spec.background {
            self.record(fns, Event::Call(Outcome::Miss));
        }
        // The call's event, once the origin has answered (and not with a stale value).
        let done = |result: R| {
            if !spec.background {
                self.observer
                    .call_done(fns, &key, Outcome::Miss, spec.started);
            }
            result
        };
        // A stale value to fall back on: read from Redis by this call, or an
        // in-process copy still inside its stale window.
        let mut fallback = match fallback {
            Some(f) => Some(f),
            // A failed background refresh leaves the current copy as it is.
            None if spec.opts.stale.is_some() && self.config.l1_enabled && !spec.background => {
                let now = Instant::now();
                self.l1
                    .stale::<K::Value>(&key)
                    .map(|(v, until)| (v, Some(until.saturating_duration_since(now))))
            }
            None => None,
        };
        let started = Instant::now();
        let result = {
            let run = async {
                match lock {
                    Some(held) => held.run(fut).await,
                    None => fut.await,
                }
            };
            let mut run = std::pin::pin!(run);
            match (spec.opts.timeout, fallback.take()) {
                (Some(limit), Some((v, left))) => match tokio::time::timeout(limit, &mut run).await
                {
                    Ok(r) => {
                        fallback = Some((v, left));
                        r
                    }
                    // Cut off only while there is a stale value we may serve.
                    Err(_) if !self.log.invalidated_since(start, &key, spec.tags) => {
                        self.record(fns, Event::OriginTimeout);
                        return K::rebuild(self.serve_stale(&key, v, left, &spec, start, leader));
                    }
                    Err(_) => run.await,
                },
                (_, f) => {
                    fallback = f;
                    run.await
                }
            }
        };
        let delta = started.elapsed();
        self.record(fns, Event::OriginTime(delta));
        if K::value(&result).is_none() {
            self.record(
                fns,
                Event::OriginError {
                    background: spec.background,
                },
            );
            if let Some((v, left)) = fallback
                && !self.log.invalidated_since(start, &key, spec.tags)
            {
                return K::rebuild(self.serve_stale(&key, v, left, &spec, start, leader));
            }
            drop(leader); // followers retry with their own calls
            return done(result);
        }
        let Some(value) = K::value(&result) else {
            return done(result);
        };
        if self.log.invalidated_since(start, &key, spec.tags) {
            // Computed from data an invalidation has since replaced.
            self.record(fns, Event::SkippedStore);
            return done(result);
        }
        // `store_ttl`: the function's `unless` and `ttl_from`, given its TTL.
        let ttl = (spec.opts.cache_none || !K::is_none(&result))
            .then(|| store_ttl(value, self.resolve_ttl(spec.opts.ttl)))
            .flatten()
            .filter(|t| !t.is_zero());
        let entry = if let Some(ttl) = ttl {
            let Ok(Some(entry)) = self
                .store(
                    &key,
                    value,
                    ttl,
                    &spec,
                    Source::Computed {
                        start,
                        observed: observed.as_ref(),
                        delta,
                    },
                )
                .await
            else {
                self.record(fns, Event::SkippedStore);
                return done(result);
            };
            if spec.background {
                self.record(fns, Event::Call(Outcome::Refresh));
            }
            entry
        } else {
            Entry::new(Arc::new(value.clone()), Duration::ZERO)
        };
        if let Some(l) = leader {
            l.complete(entry, start);
        }
        done(result)
    }

    /// Answers a failed or slow origin call with a stale value, and keeps
    /// serving it for `stale_retry_after` (within its stale window) before
    /// the origin is tried again.
    pub(super) fn serve_stale<V: CacheValue>(
        &self,
        key: &str,
        value: V,
        left: Option<Duration>,
        spec: &Spec<'_>,
        start: u64,
        leader: Option<Leader<'_>>,
    ) -> V {
        self.answered(spec.site, key, Outcome::Stale, spec.started);
        tracing::warn!(key, "origin failed; serving a stale value");
        let now = Instant::now();
        let retry = deadline(now, self.config.stale_retry);
        let stale_until = left.map_or(retry, |l| deadline(now, l));
        let entry = Entry::timed(
            Arc::new(value.clone()),
            retry.min(stale_until),
            stale_until,
            None,
        );
        if self.config.l1_enabled {
            let kept = Arc::clone(&entry);
            self.log
                .insert_unless_invalidated(start, key, spec.tags, || {
                    self.l1
                        .insert_tagged(key.to_owned(), kept, spec.owned_tags());
                });
        }
        if let Some(l) = leader {
            l.complete(entry, start);
        }
        value
    }

    /// A background refresh (`refresh`): one per key across processes (the
    /// stampede lock, taken without waiting), then the normal compute-and-store.
    pub(crate) async fn refresh<K, R, F, U>(
        &self,
        key: String,
        spec: Spec<'_>,
        fut: F,
        store_ttl: U,
    ) where
        K: Kind<R>,
        K::Value: CacheValue,
        F: Future<Output = R>,
        U: Fn(&K::Value, Duration) -> Option<Duration>,
    {
        if self.is_closed() {
            return;
        }
        let start = self.log.epoch();
        let mut lock = None;
        let mut observed = None;
        if let Some(l2) = &self.l2
            && spec.opts.lock.unwrap_or(self.config.lock.enabled)
        {
            let config = self.config.lock;
            match l2
                .try_lock::<K::Value>(
                    &key,
                    &crate::id::token(),
                    config.ttl,
                    config.wait,
                    spec.opts.version,
                )
                .await
            {
                Ok(Attempt {
                    held,
                    read,
                    observed: seen,
                }) => {
                    observed = Some(seen);
                    if let Read::Hit(v, timing) = read {
                        // Another process refreshed it since our copy was made: take theirs.
                        let ttl = self.resolve_ttl(spec.opts.ttl);
                        let now = Instant::now();
                        let point = spec
                            .opts
                            .refresh
                            .map(|r| r.point(now, timing.left.unwrap_or(ttl), ttl, timing.delta));
                        if point.is_some_and(|p| p > now) {
                            self.fill_l1(&key, &v, &timing, &spec, start);
                            if let Some(h) = held {
                                h.release().await;
                            }
                            return;
                        }
                    }
                    match held {
                        Some(h) => lock = Some(h),
                        // Another process is computing this key.
                        None => return,
                    }
                }
                Err(e) => {
                    let _ = self.tier_error("lock", &key, &e);
                }
            }
        }
        let origin = Origin {
            start,
            leader: None,
            fallback: None,
            lock,
            observed,
        };
        let _ = self
            .compute::<K, R, F, U>(key, spec, origin, fut, store_ttl)
            .await;
    }
}

/// What a call brings to the origin call: the invalidation epoch it started
/// at, its flight (to hand the value to), a stale fallback, a held lock.
pub(super) struct Origin<'a, V> {
    pub(super) start: u64,
    pub(super) leader: Option<Leader<'a>>,
    pub(super) fallback: Option<(V, Option<Duration>)>,
    pub(super) lock: Option<Held>,
    /// The key's generation markers in Redis, read before the origin call
    /// (and when): its result is written only if they have not changed.
    pub(super) observed: Option<(Observed, Instant)>,
}

impl<V> Origin<'_, V> {
    pub(super) fn alone(start: u64) -> Self {
        Origin {
            start,
            leader: None,
            fallback: None,
            lock: None,
            observed: None,
        }
    }
}
