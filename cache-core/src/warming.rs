//! The warming API of a cache (the mechanics are in the engine's `warm`).

use std::sync::Arc;

use crate::cache::Cache;
use crate::engine::{WarmReport, Warmer, Warming};
use crate::error::Error;
use crate::registry;

impl Cache {
    /// Registers `warmer` on this cache; with [`Warmer::on_start`] or
    /// [`Warmer::every`] its background runs start now. Its runs (scheduled
    /// or asked for) happen in the [`scope`](Cache::scope) this is called in,
    /// if any, so the `#[cached]` calls it warms resolve the cache they
    /// resolve there.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateWarmer`] if a warmer of that name is registered.
    pub fn add_warmer(&self, warmer: Warmer) -> Result<(), Error> {
        // The scope's cache is held weakly: the warmer lives in its cache's
        // engine, and a strong handle there (the same cache, in tests) would
        // keep that engine, and its schedule, alive for ever.
        let warmer = match registry::scoped() {
            Some(scope) => {
                let scope = Arc::downgrade(scope.engine_arc());
                warmer.within(move |fut| match scope.upgrade() {
                    Some(engine) => Box::pin(Cache::from_engine(engine).scope(fut)),
                    None => fut,
                })
            }
            None => warmer,
        };
        self.engine_arc().add_warmer(warmer)
    }

    /// Registers a warmer that runs only when asked
    /// ([`warm`](Self::warm), [`warm_all`](Self::warm_all), the admin
    /// router's `POST /warm`): shorthand for
    /// `add_warmer(Warmer::new(name, warm))`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// let cache = cache_core::Cache::builder().build().await?;
    /// cache.warmer("answer", |w| async move {
    ///     w.set("answer", &42u32, cache_core::Preset::Long).await
    /// })?;
    /// let reports = cache.warm_all().await;
    /// assert_eq!((reports[0].written, reports[0].error.as_deref()), (1, None));
    /// assert_eq!(cache.get::<u32>("answer").await?, Some(42));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateWarmer`] if a warmer of that name is registered.
    pub fn warmer<F, Fut, E>(&self, name: impl Into<String>, warm: F) -> Result<(), Error>
    where
        F: Fn(Warming) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    {
        self.add_warmer(Warmer::new(name, warm))
    }

    /// Runs the warmer `name` now, here (no claim: an operator asking for a
    /// run gets one), and reports what it did. A failing warmer's error is
    /// in its report.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownWarmer`], naming the registered ones.
    pub async fn warm(&self, name: &str) -> Result<WarmReport, Error> {
        self.engine_arc().warm(name).await
    }

    /// Runs every registered warmer now, one after another; one report
    /// each, in registration order. One failing never stops the others.
    pub async fn warm_all(&self) -> Vec<WarmReport> {
        self.engine_arc().warm_all().await
    }

    /// The registered warmers' names, in registration order.
    pub fn warmers(&self) -> Vec<String> {
        self.engine().warmer_names()
    }
}
