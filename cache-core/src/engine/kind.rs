//! [`Kind`]: how a function's return type maps to what is stored and
//! shared (`Result`: `Ok` only; `Option`: `Some`, `None` with `cache_none`;
//! anything else: always). The attribute picks the kind at compile time
//! (`__private::kind`); the engine is generic over it.

/// How a function's return value maps to what is stored.
pub trait Kind<R> {
    /// The stored value.
    type Value;
    /// The value to store and share, or `None` if the call failed.
    fn value(r: &R) -> Option<&Self::Value>;
    /// True for `None` results (stored only with `cache_none`).
    fn is_none(_: &R) -> bool {
        false
    }
    /// The return value for a cached value.
    fn rebuild(v: Self::Value) -> R;
}

/// `Result<T, E>`: `Ok(T)` is stored, `Err` never.
#[derive(Debug)]
pub enum ResultKind {}

impl<T, E> Kind<Result<T, E>> for ResultKind {
    type Value = T;
    fn value(r: &Result<T, E>) -> Option<&T> {
        r.as_ref().ok()
    }
    fn rebuild(v: T) -> Result<T, E> {
        Ok(v)
    }
}

/// `Option<T>`: `Some` is stored; `None` only with `cache_none`.
#[derive(Debug)]
pub enum OptionKind {}

impl<T> Kind<Option<T>> for OptionKind {
    type Value = Option<T>;
    fn value(r: &Option<T>) -> Option<&Option<T>> {
        Some(r)
    }
    fn is_none(r: &Option<T>) -> bool {
        r.is_none()
    }
    fn rebuild(v: Option<T>) -> Option<T> {
        v
    }
}

/// Any other `T`: always stored.
#[derive(Debug)]
pub enum PlainKind {}

impl<T> Kind<T> for PlainKind {
    type Value = T;
    fn value(r: &T) -> Option<&T> {
        Some(r)
    }
    fn rebuild(v: T) -> T {
        v
    }
}
