//! The read path: an in-process hit, else the single flight, whose leader
//! reads Redis, then (on a Redis miss) takes the key's stampede lock or
//! waits for the process holding it, and hands what it finds, or the origin
//! call ([`super::compute`]), to the callers waiting on the flight.
//!
//! The hit path (`l1_hit`) builds no future and takes no lock but moka's:
//! the expansion calls it before the body's future exists. The miss paths
//! are boxed where they start, so an L2 hit does not allocate and move the
//! origin call's state.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::compute::Origin;
use super::{Engine, Kind, Spec};
use crate::error::Error;
use crate::observe::{Event, Function, Observer, Outcome};
use crate::options::Options;
use crate::tier::flight::{Join, Leader, Waited};
use crate::tier::memory::{Entry, Lookup, Shared};
use crate::tier::{Attempt, Held, L2, Observed, Read, Timing};
use crate::ttl::{Ttl, deadline};
use crate::value::CacheValue;

/// A leader's call after its Redis read, on to [`Engine::after_l2_miss`].
struct Missed<'s, 'f, V> {
    key: String,
    spec: Spec<'s>,
    start: u64,
    leader: Leader<'f>,
    fallback: Option<(V, Option<Duration>)>,
    /// Redis answered the read.
    reachable: bool,
}

/// First and last poll interval of a call waiting on another process's
/// stampede lock (the release message usually wakes it first).
const FIRST_POLL: Duration = Duration::from_millis(5);
const MAX_POLL: Duration = Duration::from_millis(200);

impl Engine {
    /// A live in-process value of type `V` under `key`, if there is one
    /// (the caller reports the hit with [`answered`](Self::answered)).
    #[inline]
    pub(crate) fn l1_hit<V: Clone + 'static>(&self, key: &str) -> Option<V> {
        if !self.config.l1_enabled || self.is_closed() {
            return None;
        }
        match self.l1.get::<V>(key) {
            Lookup::Hit(v) => Some(v),
            Lookup::Miss | Lookup::WrongType => None,
        }
    }

    /// Reports how a call was answered: counted, and its `tracing` event.
    #[inline]
    pub(crate) fn answered(
        &self,
        site: Option<&Function>,
        key: &str,
        outcome: Outcome,
        started: Option<Instant>,
    ) {
        self.record(site, Event::Call(outcome));
        self.observer.call_done(site, key, outcome, started);
    }

    /// Like [`l1_hit`](Self::l1_hit), and whether this caller should start
    /// the copy's background refresh (true for one caller per copy).
    #[inline]
    pub(crate) fn l1_hit_refresh<V: Clone + 'static>(&self, key: &str) -> Option<(V, bool)> {
        if !self.config.l1_enabled || self.is_closed() {
            return None;
        }
        let e = self.l1.entry(key)?;
        let v = e.value.downcast_ref::<V>()?.clone();
        Some((v, e.claim_refresh(Instant::now())))
    }

    /// Get-or-compute for the attributes and the manual API. `key: None`
    /// means the cache is disabled: just run the function. `make` makes the
    /// function's future, on a miss only: a hit never holds it.
    pub(crate) async fn get_or_compute<K, R, M, F, U>(
        &self,
        key: Option<String>,
        mut spec: Spec<'_>,
        make: M,
        store_ttl: U,
    ) -> R
    where
        K: Kind<R>,
        K::Value: CacheValue,
        M: FnOnce() -> F,
        F: Future<Output = R>,
        U: Fn(&K::Value, Duration) -> Option<Duration>,
    {
        // After `shutdown`, calls run their function and cache nothing.
        let Some(key) = key.filter(|_| !self.is_closed()) else {
            return Box::pin(make()).await;
        };
        // The miss paths (the lock wait, the origin call and its store) are
        // boxed where they start: inline, they made this future four times
        // larger, and an L2 hit paid for allocating and moving all of it.
        let hit = |v: K::Value, outcome: Outcome, key: &str| {
            self.answered(spec.site, key, outcome, spec.started);
            K::rebuild(v)
        };
        // The caller has just looked in the in-process tier (the expansion's
        // hit path, or `get_or_set`): go straight to the single flight.
        let wait_until = deadline(Instant::now(), self.config.flight_wait);
        loop {
            match self.flights.join(&key) {
                Join::Leader(leader) => {
                    let start = self.log.epoch();
                    // A leader that finished between our read and our join may have stored it.
                    if let Some(e) = self
                        .config
                        .l1_enabled
                        .then(|| self.l1.entry(&key))
                        .flatten()
                        && let Some(v) = e.value.downcast_ref::<K::Value>()
                    {
                        let v = v.clone();
                        leader.complete(e, start);
                        return hit(v, Outcome::HitL1, &key);
                    }
                    let Some(l2) = &self.l2 else {
                        let origin = Origin {
                            leader: Some(leader),
                            ..Origin::alone(start)
                        };
                        return Box::pin(self.compute::<K, R, F, U>(
                            key,
                            spec,
                            origin,
                            make(),
                            store_ttl,
                        ))
                        .await;
                    };
                    // In a block: what the read returned is not held across
                    // the miss path's await (it made every call's state larger).
                    let (fallback, reachable) = {
                        let read = l2
                            .read::<K::Value>(&key, spec.opts.version, self.config.l1_enabled)
                            .await;
                        let mut fallback = None;
                        let mut reachable = true;
                        match read {
                            Read::Hit(v, timing) => {
                                self.complete_hit(&key, &v, &timing, &spec, start, leader);
                                return hit(v, Outcome::HitL2, &key);
                            }
                            Read::Stale(v, left) => fallback = spec.opts.stale.map(|_| (v, left)),
                            Read::Miss => {}
                            Read::Invalid(e) => {
                                self.record(None, Event::DecodeError);
                                tracing::debug!(key, error = %e, "cache entry does not decode: recomputing");
                            }
                            Read::Unavailable(e) => {
                                spec.skip_l2_write = e.is_failure();
                                reachable = false;
                                let _ = self.tier_error("get", &key, &e);
                            }
                        }
                        (fallback, reachable)
                    };
                    // The miss path is boxed where it starts: inline, its
                    // state made every Redis hit's larger.
                    return Box::pin(self.after_l2_miss::<K, R, M, F, U>(
                        l2,
                        Missed {
                            key,
                            spec,
                            start,
                            leader,
                            fallback,
                            reachable,
                        },
                        make,
                        store_ttl,
                    ))
                    .await;
                }
                Join::Follower(follower) => match follower.wait(wait_until).await {
                    Waited::Done(shared, leader_start) => {
                        if self.log.invalidated_since(leader_start, &key, spec.tags) {
                            // Computed from data read before an invalidation we
                            // may have seen return: not ours to take.
                            continue;
                        }
                        if let Some(v) = shared.value.downcast_ref::<K::Value>() {
                            return hit(v.clone(), Outcome::Coalesced, &key);
                        }
                        // Another type under the same key: compute our own.
                        let origin = Origin::alone(self.log.epoch());
                        return Box::pin(self.compute::<K, R, F, U>(
                            key,
                            spec,
                            origin,
                            make(),
                            store_ttl,
                        ))
                        .await;
                    }
                    Waited::Retry => {
                        if let Some(v) = self.l1_hit::<K::Value>(&key) {
                            return hit(v, Outcome::HitL1, &key);
                        }
                    }
                    Waited::TimedOut => {
                        self.record(spec.site, Event::FlightTimeout);
                        tracing::debug!(key, "single-flight wait reached its bound; computing");
                        let origin = Origin::alone(self.log.epoch());
                        return Box::pin(self.compute::<K, R, F, U>(
                            key,
                            spec,
                            origin,
                            make(),
                            store_ttl,
                        ))
                        .await;
                    }
                },
            }
        }
    }

    /// A call's leader after its Redis read found nothing usable: takes the
    /// key's stampede lock or waits for the process that holds it (when
    /// Redis answered), serves a stale value rather than wait if the call
    /// allows it, else calls the origin.
    async fn after_l2_miss<K, R, M, F, U>(
        &self,
        l2: &Arc<L2>,
        missed: Missed<'_, '_, K::Value>,
        make: M,
        store_ttl: U,
    ) -> R
    where
        K: Kind<R>,
        K::Value: CacheValue,
        M: FnOnce() -> F,
        F: Future<Output = R>,
        U: Fn(&K::Value, Duration) -> Option<Duration>,
    {
        let Missed {
            key,
            spec,
            mut start,
            leader,
            mut fallback,
            reachable,
        } = missed;
        let mut lock = None;
        let mut observed = None;
        if reachable && spec.opts.lock.unwrap_or(self.config.lock.enabled) {
            // With `timeout`, a stale value beats waiting on another process.
            let stale_now = spec.opts.timeout.is_some() && fallback.is_some();
            let locked = self
                .lock_or_wait::<K::Value>(l2, &key, &spec, stale_now)
                .await;
            // An invalidation while we waited makes the stale value we read
            // before it unusable.
            if self.log.invalidated_since(start, &key, spec.tags) {
                fallback = None;
            }
            match locked {
                Locked::Value(v, timing, epoch) => {
                    self.complete_hit(&key, &v, &timing, &spec, epoch, leader);
                    self.answered(spec.site, &key, Outcome::HitL2, spec.started);
                    return K::rebuild(v);
                }
                Locked::Held(held, seen, epoch) => {
                    start = epoch;
                    lock = Some(held);
                    observed = Some(seen);
                }
                Locked::Busy => {
                    if let Some((v, left)) = fallback.take() {
                        return K::rebuild(self.serve_stale(
                            &key,
                            v,
                            left,
                            &spec,
                            start,
                            Some(leader),
                        ));
                    }
                    // Invalidated while we looked: compute.
                }
                Locked::Proceed => {}
            }
        }
        let origin = Origin {
            start,
            leader: Some(leader),
            fallback,
            lock,
            observed,
        };
        Box::pin(self.compute::<K, R, F, U>(key, spec, origin, make(), store_ttl)).await
    }

    /// Hands a value read from Redis to the flight's followers (and to the
    /// in-process tier).
    fn complete_hit<V: CacheValue>(
        &self,
        key: &str,
        v: &V,
        timing: &Timing,
        spec: &Spec<'_>,
        start: u64,
        leader: Leader<'_>,
    ) {
        match self.fill_l1(key, v, timing, spec, start) {
            Some(entry) => leader.complete(entry, start),
            None => leader.complete_with(
                || self.entry_for(v, self.resolve_ttl(spec.opts.ttl), timing, spec),
                start,
            ),
        }
    }

    /// After a Redis miss: takes the key's stampede lock, or waits for the
    /// process holding it to store the value (see [`crate::tier::redis::Held`]).
    // Without the `redis` feature the tier is uninhabited and all of this is dead code.
    #[cfg_attr(
        not(feature = "redis"),
        allow(unused_mut, unused_variables, unreachable_code)
    )]
    async fn lock_or_wait<V: CacheValue>(
        &self,
        l2: &Arc<L2>,
        key: &str,
        spec: &Spec<'_>,
        stale_now: bool,
    ) -> Locked<V> {
        let config = self.config.lock;
        let token = crate::id::token();
        let give_up = deadline(Instant::now(), config.wait);
        let mut poll = FIRST_POLL;
        let mut waited = false;
        // Registered before the first attempt, so a release between our
        // attempt and our wait still wakes us.
        let waiter = l2.waiter(key);
        loop {
            let landed = waiter.notify().notified();
            let mut landed = std::pin::pin!(landed);
            landed.as_mut().enable();
            // Whatever this attempt finds or computes comes after every
            // invalidation recorded so far.
            let epoch = self.log.epoch();
            let Attempt {
                held,
                read,
                observed,
            } = match l2
                .try_lock::<V>(key, &token, config.ttl, config.wait, spec.opts.version)
                .await
            {
                Ok(attempt) => attempt,
                Err(e) => {
                    // Never wait on a failing Redis: compute, single flight still holds.
                    let _ = self.tier_error("lock", key, &e);
                    return Locked::Proceed;
                }
            };
            match read {
                Read::Hit(v, timing) => {
                    if let Some(h) = held {
                        h.release().await;
                    }
                    return Locked::Value(v, timing, epoch);
                }
                // Counted once, by the read before the lock.
                Read::Invalid(e) => {
                    tracing::debug!(key, error = %e, "cache entry does not decode");
                }
                Read::Stale(..) | Read::Miss | Read::Unavailable(_) => {}
            }
            if let Some(held) = held {
                if waited {
                    self.record(spec.site, Event::LockTakeover);
                    tracing::debug!(key, "stampede lock taken over");
                }
                return Locked::Held(held, observed, epoch);
            }
            if stale_now {
                // Another process is computing it, and this call may answer
                // with a stale value rather than wait.
                return Locked::Busy;
            }
            if !waited {
                waited = true;
                self.record(spec.site, Event::LockWait);
            }
            let now = Instant::now();
            if now >= give_up {
                self.record(spec.site, Event::LockTimeout);
                tracing::debug!(key, "waited for another process's computation to its bound");
                return Locked::Proceed;
            }
            let wake = (now + poll).min(give_up);
            tokio::select! {
                () = landed => {}
                () = tokio::time::sleep_until(wake) => {}
            }
            poll = (poll * 2).min(MAX_POLL);
        }
    }

    /// See [`Cache::get`](crate::Cache::get); `key` is a full key.
    pub(crate) async fn get<T: CacheValue>(&self, key: &str) -> Result<Option<T>, Error> {
        if !self.config.enabled || self.is_closed() {
            return Ok(None);
        }
        let started = Observer::call_start();
        let answered = |outcome| self.answered(None, key, outcome, started);
        if self.config.l1_enabled {
            match self.l1.get::<T>(key) {
                Lookup::Hit(v) => {
                    answered(Outcome::HitL1);
                    return Ok(Some(v));
                }
                Lookup::Miss => {}
                Lookup::WrongType => {
                    tracing::debug!(
                        key,
                        ty = std::any::type_name::<T>(),
                        "cache entry of another type: removed"
                    );
                    self.l1.remove(key);
                    if self.l2.is_none() {
                        answered(Outcome::Miss);
                        return Ok(None);
                    }
                }
            }
        }
        if let Some(l2) = &self.l2 {
            let start = self.log.epoch();
            match l2.read::<T>(key, 0, self.config.l1_enabled).await {
                Read::Hit(v, timing) => {
                    answered(Outcome::HitL2);
                    let opts = Options::new(Ttl::Default);
                    self.fill_l1(key, &v, &timing, &Spec::new(&opts, None), start);
                    return Ok(Some(v));
                }
                // Past its freshness: kept in Redis only as a fallback for its function.
                Read::Stale(..) | Read::Miss => {}
                Read::Invalid(e) => {
                    self.record(None, Event::DecodeError);
                    tracing::debug!(key, error = %e, "cache entry does not decode");
                }
                Read::Unavailable(e) => self.tier_error("get", key, &e)?,
            }
        }
        answered(Outcome::Miss);
        Ok(None)
    }

    /// Keeps a copy of a value read from the shared tier, unless an
    /// invalidation since `start` may have removed it. Returns the entry
    /// built for it, or `None` when there is no in-process copy to make.
    pub(super) fn fill_l1<T: CacheValue>(
        &self,
        key: &str,
        value: &T,
        timing: &Timing,
        spec: &Spec<'_>,
        start: u64,
    ) -> Option<Shared> {
        if !self.config.l1_enabled {
            return None;
        }
        let entry = self.entry_for(value, self.resolve_ttl(spec.opts.ttl), timing, spec);
        if entry.expires_at <= Instant::now() {
            return None;
        }
        let kept = Arc::clone(&entry);
        self.log
            .insert_unless_invalidated(start, key, spec.tags, || {
                self.l1
                    .insert_tagged(key.to_owned(), kept, spec.owned_tags());
            });
        Some(entry)
    }

    /// The in-process entry for `value`: fresh for the configured TTL, never
    /// beyond the shared tier's time left (`timing.left`) nor the
    /// in-process cap, then stale for `timing.stale`; with the function's
    /// refresh point, if it has one.
    pub(super) fn entry_for<T: CacheValue>(
        &self,
        value: &T,
        ttl: Duration,
        timing: &Timing,
        spec: &Spec<'_>,
    ) -> Shared {
        let fresh = self.config.l1_ttl(ttl, timing.left, spec.opts.l1_ttl);
        let now = Instant::now();
        let refresh_at = spec
            .opts
            .refresh
            .map(|r| r.point(now, timing.left.unwrap_or(ttl), ttl, timing.delta));
        Entry::timed(
            Arc::new(value.clone()),
            deadline(now, fresh),
            deadline(now, fresh.saturating_add(timing.stale)),
            refresh_at,
        )
    }
}

/// What [`Engine::lock_or_wait`] came to.
enum Locked<V> {
    /// The value, stored by another process (or found on the second read),
    /// and the invalidation epoch of that read.
    Value(V, Timing, u64),
    /// This call holds the lock: compute. With the markers read with it and
    /// the epoch of that attempt (the computation starts after it).
    Held(Held, (Observed, Instant), u64),
    /// Another process holds the lock, and the caller asked not to wait.
    Busy,
    /// Compute without the lock (Redis failing, or the wait reached its bound).
    Proceed,
}

impl Engine {
    /// `get_or_set`/`try_get_or_set` of the manual API: a hit, else `init`
    /// through the single flight, stored for `ttl`. `key: None` when the
    /// cache is disabled.
    pub(crate) async fn get_or_init<K, R, F>(&self, key: Option<String>, ttl: Ttl, init: F) -> R
    where
        K: Kind<R>,
        K::Value: CacheValue,
        F: Future<Output = R>,
    {
        let started = Observer::call_start();
        if let Some(k) = key.as_deref()
            && let Some(v) = self.l1_hit::<K::Value>(k)
        {
            self.answered(None, k, Outcome::HitL1, started);
            return K::rebuild(v);
        }
        let opts = Options::new(ttl);
        let mut spec = Spec::new(&opts, None);
        spec.started = started;
        self.get_or_compute::<K, R, _, _, _>(key, spec, move || init, |_, ttl| Some(ttl))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    use tokio::sync::watch;

    use super::*;
    use crate::config::Config;
    use crate::engine::{PlainKind, ResultKind};

    fn engine() -> Arc<Engine> {
        Engine::start(
            Config::default(),
            Arc::new(Observer::new(None, false)),
            None,
        )
    }

    fn counted(engine: &Engine) -> (u64, u64, u64) {
        let c = engine.observer.counters();
        (
            c.l1_hits.load(SeqCst),
            c.coalesced.load(SeqCst),
            c.misses.load(SeqCst),
        )
    }

    #[tokio::test]
    async fn a_miss_computes_once_then_hits_in_process() {
        let e = engine();
        let calls = AtomicUsize::new(0);
        let origin = || async {
            calls.fetch_add(1, SeqCst);
            7u32
        };
        let k = || Some("cache:k".to_owned());
        assert_eq!(
            e.get_or_init::<PlainKind, u32, _>(k(), Ttl::Default, origin())
                .await,
            7
        );
        assert_eq!(
            e.get_or_init::<PlainKind, u32, _>(k(), Ttl::Default, origin())
                .await,
            7
        );
        assert_eq!(calls.load(SeqCst), 1);
        assert_eq!(counted(&e), (1, 0, 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_origin_call() {
        let e = engine();
        let calls = Arc::new(AtomicUsize::new(0));
        let (open, gate) = watch::channel(false);
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (e, calls, mut gate) = (Arc::clone(&e), Arc::clone(&calls), gate.clone());
                tokio::spawn(async move {
                    let origin = async move {
                        calls.fetch_add(1, SeqCst);
                        let _ = gate.wait_for(|open| *open).await;
                        5u8
                    };
                    e.get_or_init::<PlainKind, u8, _>(
                        Some("cache:hot".into()),
                        Ttl::Default,
                        origin,
                    )
                    .await
                })
            })
            .collect();
        // The first origin call is under way; the others wait on it or come later.
        while calls.load(SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        open.send_replace(true);
        for t in tasks {
            assert_eq!(t.await.ok(), Some(5));
        }
        assert_eq!(calls.load(SeqCst), 1);
        let (hits, coalesced, misses) = counted(&e);
        assert_eq!(
            (misses, hits + coalesced),
            (1, 49),
            "every other caller was served"
        );
    }

    #[tokio::test]
    async fn an_error_is_returned_and_never_stored() {
        let e = engine();
        let k = || Some("cache:err".to_owned());
        let failed: Result<u8, String> = e
            .get_or_init::<ResultKind, _, _>(k(), Ttl::Default, async { Err("down".to_owned()) })
            .await;
        assert_eq!(failed, Err("down".to_owned()));
        let ok: Result<u8, String> = e
            .get_or_init::<ResultKind, _, _>(k(), Ttl::Default, async { Ok(3) })
            .await;
        assert_eq!(ok, Ok(3));
        assert_eq!(e.observer.counters().origin_errors.load(SeqCst), 1);
    }

    #[tokio::test]
    async fn a_value_invalidated_while_computing_is_not_stored() {
        let e = engine();
        let e2 = Arc::clone(&e);
        let v = e
            .get_or_init::<PlainKind, u8, _>(
                Some("cache:user:1".into()),
                Ttl::Default,
                async move {
                    // The data changes, and is invalidated, while we compute.
                    let _ = e2.invalidate("cache:user:*").await;
                    1u8
                },
            )
            .await;
        assert_eq!(v, 1, "the caller gets its value");
        assert_eq!(e.observer.counters().skipped_stores.load(SeqCst), 1);
        assert_eq!(e.l1_hit::<u8>("cache:user:1"), None, "but it was not kept");
    }

    #[tokio::test]
    async fn an_entry_of_another_type_is_a_miss_and_is_replaced() {
        let e = engine();
        let k = || Some("cache:t".to_owned());
        e.get_or_init::<PlainKind, u8, _>(k(), Ttl::Default, async { 1u8 })
            .await;
        let s = e
            .get_or_init::<PlainKind, String, _>(k(), Ttl::Default, async { "s".to_owned() })
            .await;
        assert_eq!(s, "s");
        assert_eq!(e.l1_hit::<u8>("cache:t"), None);
        assert_eq!(e.l1_hit::<String>("cache:t").as_deref(), Some("s"));
    }

    #[tokio::test]
    async fn a_disabled_cache_only_runs_the_origin() {
        let e = Engine::start(
            Config {
                enabled: false,
                ..Config::default()
            },
            Arc::new(Observer::new(None, false)),
            None,
        );
        for _ in 0..2 {
            assert_eq!(
                e.get_or_init::<PlainKind, u8, _>(None, Ttl::Default, async { 2u8 })
                    .await,
                2
            );
        }
        assert_eq!(counted(&e), (0, 0, 0));
        assert_eq!(e.get::<u8>("cache:x").await.ok(), Some(None));
    }
}
