//! What the attribute macros expand to. Not a public API: generated code
//! reaches it as `::cache_core::__private`, so the runtime can change without
//! breaking expansions.

use std::future::Future;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use crate::cache::Cache;
use crate::engine::{Spec, WarmRun, outside_warming, warming};
use crate::key::KeyBuilder;
use crate::observe::{Event, Function, Observer, Outcome};
use crate::options::Options;
use crate::registry;
use crate::stats::FunctionKind;
use crate::value::CacheValue;

pub use crate::engine::{Kind, OptionKind, PlainKind, ResultKind};

pub use crate::codec::{Compression, Format};
pub use crate::ttl::{Preset, Refresh, Registered as RegisteredPreset, Ttl};
pub use core::time::Duration;
pub use inventory;

/// Picks the [`Kind`] of a return type by trait resolution, so type aliases
/// (`type ApiResult<T> = Result<T, ApiError>`) are seen through. Autoref
/// specialization: called as `(&&Probe::<R>::new()).cache_kind()`, method
/// lookup first tries `Self = &Probe<R>` (the `Result`/`Option` impls), then,
/// after a deref, `Self = Probe<R>` (the fallback).
pub mod kind {
    use std::marker::PhantomData;

    use super::{OptionKind, PlainKind, ResultKind};

    /// Carries a return type to the probe traits.
    #[derive(Debug)]
    pub struct Probe<R>(PhantomData<fn() -> R>);

    impl<R> Probe<R> {
        /// A probe for `R`.
        #[allow(clippy::new_without_default)]
        pub const fn new() -> Probe<R> {
            Probe(PhantomData)
        }
    }

    /// The chosen kind, as a value.
    #[derive(Debug)]
    pub struct Tag<K>(PhantomData<fn() -> K>);

    impl<K> Clone for Tag<K> {
        fn clone(&self) -> Self {
            *self
        }
    }

    impl<K> Copy for Tag<K> {}

    /// `Result<T, E>` (through any alias).
    pub trait ResultProbe {
        /// The kind.
        fn cache_kind(&self) -> Tag<ResultKind> {
            Tag(PhantomData)
        }
    }

    impl<T, E> ResultProbe for &Probe<Result<T, E>> {}

    /// `Option<T>` (through any alias).
    pub trait OptionProbe {
        /// The kind.
        fn cache_kind(&self) -> Tag<OptionKind> {
            Tag(PhantomData)
        }
    }

    impl<T> OptionProbe for &Probe<Option<T>> {}

    /// Anything else.
    pub trait PlainProbe {
        /// The kind.
        fn cache_kind(&self) -> Tag<PlainKind> {
            Tag(PhantomData)
        }
    }

    impl<R> PlainProbe for Probe<R> {}

    /// Implemented by `Option<T>` only: `cache_none` needs it.
    #[diagnostic::on_unimplemented(
        message = "`cache_none` applies to functions returning `Option<T>`, not `{Self}`",
        label = "remove `cache_none`, or return an `Option`"
    )]
    pub trait IsOption {}

    impl<T> IsOption for Option<T> {}

    /// Compile-time check behind `cache_none`.
    pub const fn assert_option<R: IsOption>() {}
}

/// How a placeholder's value is written into a key, chosen by trait
/// resolution (autoref specialization, as in [`kind`]): through `Display`
/// when the type has it (the text users see in their keys), otherwise
/// through `serde` (`Option`, enums, newtypes). Called as
/// `(&Placeholder(v)).how().push(&mut builder, v)`: method lookup tries
/// `Self = Placeholder<V>` (needs `Display`) before `Self = &Placeholder<V>`,
/// whose `push` needs [`KeyPlaceholder`](placeholder::KeyPlaceholder), so a type with neither gets that
/// trait's message.
pub mod placeholder {
    use crate::key::{KeyBuilder, KeyValue};

    /// Carries a placeholder's value to the probe traits.
    #[derive(Debug)]
    pub struct Placeholder<'a, V: ?Sized>(pub &'a V);

    /// The value has `Display`.
    #[derive(Debug, Clone, Copy)]
    pub struct ByDisplay;

    /// Any other value: through `serde`.
    #[derive(Debug, Clone, Copy)]
    pub struct BySerde;

    /// Picks [`ByDisplay`].
    pub trait DisplayProbe {
        /// The way.
        fn how(&self) -> ByDisplay {
            ByDisplay
        }
    }

    impl<V: KeyValue + ?Sized> DisplayProbe for Placeholder<'_, V> {}

    /// Picks [`BySerde`].
    pub trait SerdeProbe {
        /// The way.
        fn how(&self) -> BySerde {
            BySerde
        }
    }

    impl<V: ?Sized> SerdeProbe for &Placeholder<'_, V> {}

    /// What a placeholder's value needs when it has no `Display`.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be used in a cache key: it implements neither `std::fmt::Display` nor `serde::Serialize`",
        label = "placeholder value must implement `Display` or `Serialize`",
        note = "implement `Display` or derive `Serialize` for the value's type (an enum's unit variants are written as their serialized names), or name a field that has one, e.g. `<user.id>`"
    )]
    pub trait KeyPlaceholder {
        /// Appends the value.
        fn push_to(&self, key: &mut KeyBuilder);
    }

    impl<V: serde::Serialize + ?Sized> KeyPlaceholder for V {
        fn push_to(&self, key: &mut KeyBuilder) {
            key.push_placeholder(self);
        }
    }

    impl ByDisplay {
        /// Appends `value` through `Display`.
        pub fn push<V: KeyValue + ?Sized>(self, key: &mut KeyBuilder, value: &V) {
            key.push_value(value);
        }
    }

    impl BySerde {
        /// Appends `value` through `serde`.
        pub fn push<V: KeyPlaceholder + ?Sized>(self, key: &mut KeyBuilder, value: &V) {
            value.push_to(key);
        }
    }
}

/// The path of the function whose body calls this with the type name of a
/// closure defined in it: `crate::module::Type::method` or
/// `<crate::T as crate::Trait>::method`, with generic arguments
/// (`crate::total<crate::Orders>`). Stable across processes of one build.
pub fn fn_path(closure_type_name: &'static str) -> &'static str {
    let mut s = closure_type_name;
    while let Some(rest) = s.strip_suffix("::{{closure}}") {
        s = rest;
    }
    s
}

/// The path of an annotated function, from the type name of a closure in the
/// nested `__cache_fn_path` item the expansion defines in its body.
pub fn site_path(closure_type_name: &'static str) -> &'static str {
    // `app::Repo::employee::{{closure}}::__cache_fn_path::{{closure}}`: the
    // item sits in the async fn's body.
    let path = fn_path(closure_type_name);
    fn_path(path.strip_suffix("::__cache_fn_path").unwrap_or(path))
}

/// `unless` when the attribute has none.
pub fn never<T: ?Sized>(_: &T) -> bool {
    false
}

/// What a `ttl_from` function may return.
#[diagnostic::on_unimplemented(
    message = "`ttl_from` returns `{Self}`, not a TTL",
    label = "return a `Duration`, or an `Option<Duration>` (`None`: do not store the value)"
)]
pub trait TtlFrom {
    /// The TTL, or `None` for "do not store"; `FromTtl` keeps the function's.
    fn ttl(self) -> Option<Option<Duration>>;
}

impl TtlFrom for Duration {
    fn ttl(self) -> Option<Option<Duration>> {
        Some(Some(self))
    }
}

impl TtlFrom for Option<Duration> {
    fn ttl(self) -> Option<Option<Duration>> {
        Some(self)
    }
}

/// What `no_ttl_from` returns: the function's own TTL.
#[derive(Debug, Clone, Copy)]
pub struct FunctionTtl;

impl TtlFrom for FunctionTtl {
    fn ttl(self) -> Option<Option<Duration>> {
        None
    }
}

/// `ttl_from` when the attribute has none.
pub fn no_ttl_from<T: ?Sized>(_: &T) -> FunctionTtl {
    FunctionTtl
}

/// The engine's store rule from a function's `unless` and `ttl_from`: the
/// TTL a computed value is stored for (what `ttl_from` says, at most the
/// function's TTL), or `None` to return it without storing.
fn store_rule<V, U, T, O>(unless: U, ttl_from: T) -> impl Fn(&V, Duration) -> Option<Duration>
where
    U: Fn(&V) -> bool,
    T: Fn(&V) -> O,
    O: TtlFrom,
{
    move |v, ttl| {
        if unless(v) {
            return None;
        }
        match ttl_from(v).ttl() {
            None => Some(ttl),
            Some(chosen) => chosen.map(|t| t.min(ttl)),
        }
    }
}

/// The cache a call uses.
#[derive(Debug)]
pub enum CacheHandle {
    /// The default or a named cache.
    Static(&'static Cache),
    /// A cache set with [`Cache::scope`].
    Scoped(Cache),
}

impl Deref for CacheHandle {
    type Target = Cache;
    fn deref(&self) -> &Cache {
        match self {
            CacheHandle::Static(c) => c,
            CacheHandle::Scoped(c) => c,
        }
    }
}

impl CacheHandle {
    /// False for a pass-through cache.
    #[inline]
    pub fn enabled(&self) -> bool {
        self.is_enabled()
    }

    /// A key builder primed with the cache's prefix.
    #[inline]
    pub fn key_builder(&self) -> KeyBuilder {
        Cache::key_builder(self)
    }
}

/// Where a cache name resolves to, remembered per call site.
#[derive(Debug)]
struct Target {
    name: Option<&'static str>,
    named: OnceLock<Cache>,
}

impl Target {
    const fn new(name: Option<&'static str>) -> Target {
        Target {
            name,
            named: OnceLock::new(),
        }
    }

    fn resolve(&'static self) -> CacheHandle {
        if let Some(c) = registry::scoped() {
            return CacheHandle::Scoped(c);
        }
        match self.name {
            None => CacheHandle::Static(Cache::global()),
            Some(n) => CacheHandle::Static(self.named.get_or_init(|| Cache::named(n))),
        }
    }
}

/// Per-function counters, remembered per call site for the first cache it
/// meets (the common case: one cache per function), looked up otherwise.
#[derive(Debug)]
struct SiteCounters {
    /// The function's path, computed at its first registration.
    function: fn() -> &'static str,
    label: &'static str,
    kind: FunctionKind,
    first: OnceLock<(u64, Arc<Function>)>,
}

enum CountersRef {
    Static(&'static Function),
    Owned(Arc<Function>),
}

impl Deref for CountersRef {
    type Target = Function;
    fn deref(&self) -> &Function {
        match self {
            CountersRef::Static(c) => c,
            CountersRef::Owned(c) => c,
        }
    }
}

impl SiteCounters {
    fn for_cache(&'static self, cache: &Cache) -> CountersRef {
        let addr = self as *const SiteCounters as usize;
        let lookup = || {
            cache
                .engine()
                .observer
                .function(addr, (self.function)(), self.label, self.kind)
        };
        let id_now = cache.engine().id;
        let (id, counters) = self.first.get_or_init(|| (id_now, lookup()));
        if *id == id_now {
            CountersRef::Static(counters)
        } else {
            CountersRef::Owned(lookup())
        }
    }
}

/// A `#[cached]` function.
#[derive(Debug)]
pub struct Site {
    options: Options,
    target: Target,
    counters: SiteCounters,
}

impl Site {
    /// Describes one annotated function.
    pub const fn new(
        function: fn() -> &'static str,
        template: &'static str,
        ttl: Ttl,
        cache: Option<&'static str>,
        cache_none: bool,
    ) -> Site {
        let mut options = Options::new(ttl);
        options.cache_none = cache_none;
        Site {
            options,
            target: Target::new(cache),
            counters: SiteCounters {
                function,
                label: template,
                kind: FunctionKind::Cached,
                first: OnceLock::new(),
            },
        }
    }

    /// A `#[cache_put]` function (counted as one that writes, not reads).
    pub const fn put(mut self) -> Site {
        self.counters.kind = FunctionKind::Puts;
        self
    }

    /// `format = "..."`.
    pub const fn format(mut self, format: Format) -> Site {
        self.options.format = Some(format);
        self
    }

    /// `compress = "..."`.
    pub const fn compress(mut self, compression: Compression) -> Site {
        self.options.compression = Some(compression);
        self
    }

    /// `version = N`.
    pub const fn version(mut self, version: u32) -> Site {
        self.options.version = version;
        self
    }

    /// `l1_ttl = "..."`.
    pub const fn l1_ttl(mut self, ttl: Duration) -> Site {
        self.options.l1_ttl = Some(ttl);
        self
    }

    /// `lock = true|false`.
    pub const fn lock(mut self, lock: bool) -> Site {
        self.options.lock = Some(lock);
        self
    }

    /// `stale_if_error = "..."`.
    pub const fn stale_if_error(mut self, window: Duration) -> Site {
        self.options.stale = Some(window);
        self
    }

    /// `timeout = "..."`.
    pub const fn timeout(mut self, limit: Duration) -> Site {
        self.options.timeout = Some(limit);
        self
    }

    /// `refresh = ...`.
    pub const fn refresh(mut self, refresh: Refresh) -> Site {
        self.options.refresh = Some(refresh);
        self
    }

    fn spec<'a>(&'a self, counters: &'a Function) -> Spec<'a> {
        Spec::new(&self.options, Some(counters))
    }
}

/// A `#[invalidates]` function.
#[derive(Debug)]
pub struct InvalidateSite {
    target: Target,
    counters: SiteCounters,
}

impl InvalidateSite {
    /// Describes one annotated function.
    pub const fn new(
        function: fn() -> &'static str,
        patterns: &'static str,
        cache: Option<&'static str>,
    ) -> InvalidateSite {
        InvalidateSite {
            target: Target::new(cache),
            counters: SiteCounters {
                function,
                label: patterns,
                kind: FunctionKind::Invalidates,
                first: OnceLock::new(),
            },
        }
    }
}

/// The cache a `#[cached]` call uses.
#[inline]
pub fn resolve(site: &'static Site) -> CacheHandle {
    site.target.resolve()
}

/// The cache an `#[invalidates]` call uses.
#[inline]
pub fn resolve_invalidate(site: &'static InvalidateSite) -> CacheHandle {
    site.target.resolve()
}

/// The hit fast path of every `#[cached]` function: runs before the body's
/// future or the engine's state machine is built, so a hit costs a lookup and
/// a clone.
#[inline]
pub fn hit<K, R>(_: kind::Tag<K>, handle: &CacheHandle, site: &'static Site, key: &str) -> Option<R>
where
    K: Kind<R>,
    K::Value: Clone + 'static,
{
    let started = Observer::call_start();
    let engine = handle.engine();
    let v = engine.l1_hit::<K::Value>(key)?;
    // A warmed call computes; checked after the lookup, so hits pay for it
    // only when warming is under way somewhere in the process.
    if warming().is_some() {
        return None;
    }
    let function = site.counters.for_cache(handle);
    engine.answered(Some(&function), key, Outcome::HitL1, started);
    Some(K::rebuild(v))
}

/// What the hit path of a function with `refresh` found.
#[derive(Debug)]
pub enum Refreshing<R> {
    /// A fresh value.
    Hit(R),
    /// A fresh value whose refresh is due: return it, and start the refresh
    /// with [`refresh`] (this caller is the one chosen to).
    Due(R),
    /// Nothing usable: take the slow path.
    Miss,
}

/// The hit path of a function with `refresh`: like [`hit`], and it tells the
/// one caller that finds a copy's refresh due to start it.
#[inline]
pub fn hit_or_refresh<K, R>(
    _: kind::Tag<K>,
    handle: &CacheHandle,
    site: &'static Site,
    key: &str,
) -> Refreshing<R>
where
    K: Kind<R>,
    K::Value: Clone + 'static,
{
    let started = Observer::call_start();
    let engine = handle.engine();
    match engine.l1_hit_refresh::<K::Value>(key) {
        Some(_) if warming().is_some() => Refreshing::Miss,
        Some((v, due)) => {
            let function = site.counters.for_cache(handle);
            engine.answered(Some(&function), key, Outcome::HitL1, started);
            if due {
                Refreshing::Due(K::rebuild(v))
            } else {
                Refreshing::Hit(K::rebuild(v))
            }
        }
        None => Refreshing::Miss,
    }
}

/// Refreshes a value in the background with the function's own call
/// (`fut`), which is why `refresh` needs a future that owns its arguments
/// (`Send + 'static`). The caller does not wait.
#[allow(clippy::too_many_arguments)] // one per part of the expansion
pub fn refresh<K, R, F, U, T, O>(
    _: kind::Tag<K>,
    handle: CacheHandle,
    site: &'static Site,
    key: String,
    fut: F,
    unless: U,
    ttl_from: T,
    tags: Vec<String>,
) where
    K: Kind<R> + 'static,
    K::Value: CacheValue,
    F: Future<Output = R> + Send + 'static,
    R: Send + 'static,
    U: Fn(&K::Value) -> bool + Send + 'static,
    T: Fn(&K::Value) -> O + Send + 'static,
    O: TtlFrom,
{
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let cache: Cache = (*handle).clone();
    rt.spawn(async move {
        let counters = site.counters.for_cache(&cache);
        let mut spec = site.spec(&counters);
        spec.background = true;
        spec.tags = &tags;
        cache
            .engine()
            .refresh::<K, R, F, _>(key, spec, fut, store_rule(unless, ttl_from))
            .await;
    });
}

/// Boxes a `#[cached]` function's slow path (see the expansion).
#[inline]
pub fn slow_path<F: Future>(fut: F) -> std::pin::Pin<Box<F>> {
    Box::pin(fut)
}

/// The body of every `#[cached]` function. `key` is `None` when the cache is disabled.
///
/// `make` makes the function's future (the expansion's `move || async move
/// { body }`), called on a miss only: a call answered from Redis holds the
/// arguments it captured, never the body's state, however large.
#[allow(clippy::too_many_arguments)] // one per part of the expansion
pub async fn run<K, R, M, F, U, T, O>(
    _: kind::Tag<K>,
    handle: CacheHandle,
    site: &'static Site,
    key: Option<String>,
    make: M,
    unless: U,
    ttl_from: T,
    tags: Vec<String>,
) -> R
where
    K: Kind<R>,
    K::Value: CacheValue,
    M: FnOnce() -> F,
    F: Future<Output = R>,
    U: Fn(&K::Value) -> bool,
    T: Fn(&K::Value) -> O,
    O: TtlFrom,
{
    let Some(k) = &key else {
        return Box::pin(make()).await;
    };
    if let Some(run) = warming() {
        // Boxed: rare, and inline it made every call's state a third larger.
        return Box::pin(warm::<K, R, F, _>(
            &handle,
            site,
            k,
            make(),
            store_rule(unless, ttl_from),
            &tags,
            &run,
        ))
        .await;
    }
    let counters = site.counters.for_cache(&handle);
    let mut spec = site.spec(&counters);
    spec.started = Observer::call_start();
    spec.tags = &tags;
    handle
        .engine()
        .get_or_compute::<K, R, _, _, _>(key, spec, make, store_rule(unless, ttl_from))
        .await
}

/// A call made inside [`Warming::call`](crate::Warming::call): computes, and
/// writes what the attribute would store, as `#[cache_put]` does.
async fn warm<K, R, F, U>(
    handle: &CacheHandle,
    site: &'static Site,
    key: &str,
    fut: F,
    rule: U,
    tags: &[String],
    run: &WarmRun,
) -> R
where
    K: Kind<R>,
    K::Value: CacheValue,
    F: Future<Output = R>,
    U: Fn(&K::Value, Duration) -> Option<Duration>,
{
    let result = outside_warming(fut).await;
    let counters = site.counters.for_cache(handle);
    let mut spec = site.spec(&counters);
    spec.tags = tags;
    let engine = handle.engine();
    if let Some(value) = K::value(&result)
        && (spec.opts.cache_none || !K::is_none(&result))
        && let Some(ttl) = rule(value, engine.resolve_ttl(spec.opts.ttl))
    {
        engine.put_warmed(run, key, value, ttl, &spec).await;
    }
    result
}

/// Writes a `#[cache_put]` function's result under its key, as
/// [`Cache::set`] does (both tiers, other instances' copies replaced), with
/// the function's format, version and TTL, so the `#[cached]` function that
/// reads the key finds it. `Err` writes nothing; `None` (without
/// `cache_none`) removes the key, since no value is current. `key` is
/// `None` when the cache is disabled.
pub async fn put_after<K, R>(
    _: kind::Tag<K>,
    handle: CacheHandle,
    site: &'static Site,
    key: Option<(String, Vec<String>)>,
    result: &R,
) where
    K: Kind<R>,
    K::Value: CacheValue,
{
    let Some((key, tags)) = key else {
        return;
    };
    let Some(value) = K::value(result) else {
        return;
    };
    let counters = site.counters.for_cache(&handle);
    let mut spec = site.spec(&counters);
    spec.tags = &tags;
    let engine = handle.engine();
    // In the default mode these fail only in strict mode; the function's
    // own result is returned either way (a write that did not reach Redis
    // is queued as the key's removal).
    let outcome = if K::is_none(result) && !site.options.cache_none {
        engine.delete(&key).await.map(|_| ())
    } else {
        engine.put(&key, value, &spec).await
    };
    if let Err(e) = outcome {
        tracing::warn!(key, error = %e, "#[cache_put] could not write its result");
    }
}

/// Applies `#[invalidates]` patterns after the function returned `result`
/// (nothing on `Err`). `patterns` is `None` when the cache is disabled.
pub async fn invalidate_after<K, R, P, T>(
    _: kind::Tag<K>,
    handle: CacheHandle,
    site: &'static InvalidateSite,
    patterns: Option<(P, T)>,
    result: &R,
) where
    K: Kind<R>,
    P: IntoIterator<Item = String>,
    T: IntoIterator<Item = String>,
{
    let Some((patterns, tags)) = patterns else {
        return;
    };
    if K::value(result).is_none() {
        return;
    }
    let function = site.counters.for_cache(&handle);
    let engine = handle.engine();
    engine
        .observer
        .record(Some(&function), Event::InvalidatingCall);
    for pattern in patterns {
        // Never an error here: what cannot reach Redis is kept and replayed.
        let removed = engine.invalidate(&pattern).await.map_or(0, |r| r.removed);
        engine
            .observer
            .record(Some(&function), Event::PatternApplied { removed });
    }
    for tag in tags {
        let removed = engine.invalidate_tag(&tag).await.map_or(0, |r| r.removed);
        engine
            .observer
            .record(Some(&function), Event::PatternApplied { removed });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What one call's slow path (the engine's state, boxed once per call
    /// that misses the in-process tier, so once per Redis hit) weighs: a
    /// guard against rare paths creeping back inline, and against the
    /// body's state coming back into it. Here 1,016 bytes with a 4 KB body
    /// (the body was once held twice, and a warming path inline made the
    /// rest 2,240).
    #[tokio::test]
    async fn a_calls_boxed_slow_path_stays_small() {
        type Value = (String, Vec<u32>, [u64; 12]);
        static SITE: Site = Site::new(|| "t::f", "k:<id>", Ttl::Default, None, false);
        let handle = resolve(&SITE);
        let tag = {
            use kind::ResultProbe as _;
            (&&kind::Probe::<Result<Value, std::io::Error>>::new()).cache_kind()
        };
        // A body whose state is large (a buffer held across an await, as a
        // database query's future may be): a Redis hit never holds it.
        let body = move || async move {
            let buf = [7u8; 4096];
            tokio::task::yield_now().await;
            let mut v = Value::default();
            v.1.push(u32::from(buf[4095]));
            Ok::<Value, std::io::Error>(v)
        };
        let body_size = std::mem::size_of_val(&body());
        let fut = slow_path(run(
            tag,
            handle,
            &SITE,
            Some("k:1".to_owned()),
            body,
            never,
            no_ttl_from,
            Vec::new(),
        ));
        let size = std::mem::size_of_val(&*fut);
        assert!(
            size <= 1_200,
            "a call's boxed slow path weighs {size} bytes (its body {body_size}): \
             the body's state, or a rare path (lock wait, origin call, warming), is \
             held inline again?"
        );
    }
}
