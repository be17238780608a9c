//! [`CacheValue`]: what a cache can hold.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// What a cache can hold: owned, cloneable, thread-safe, and serializable
/// (so the same values work once a shared tier such as Redis is behind the cache).
///
/// ```
/// fn cacheable<T: cache_core::CacheValue>() {}
/// cacheable::<Vec<String>>();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached",
    label = "cached values must be `Clone + Send + Sync + 'static` and implement `Serialize` and `DeserializeOwned`",
    note = "derive `Clone`, `serde::Serialize` and `serde::Deserialize` for `{Self}`",
    note = "if `{Self}` comes from another crate (such as `axum::Json<T>`), cache a function that returns the inner value (`T`, e.g. the service function the handler calls) and wrap it where it is returned"
)]
pub trait CacheValue: Clone + Send + Sync + Serialize + DeserializeOwned + 'static {}

impl<T> CacheValue for T where T: Clone + Send + Sync + Serialize + DeserializeOwned + 'static {}
