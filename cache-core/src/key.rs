//! Cache keys: `[prefix:]template-with-values`.
//!
//! # Encoding
//!
//! Literal template text is kept as written. Each interpolated value is
//! written through its `Display` impl and escaped on the fly: ASCII letters,
//! digits, `_`, `-`, `.` and non-ASCII characters are kept; every other ASCII
//! byte (`:`, `*`, `?`, `[`, `]`, `\`, `%`, `~`, spaces, …) becomes `%XX`. In
//! addition, the character that follows a value in the template is escaped
//! inside that value, and so is the character that precedes it, so
//! `<from>-<to>` escapes `-` in both values. Hence:
//!
//! * **No collisions:** a value can never contain the literal that ends it, so
//!   each key splits back into exactly one tuple of values
//!   (`org="a:b", name="c"` ≠ `org="a", name="b:c"`).
//! * **No widened patterns:** escaped values never contain glob
//!   metacharacters, so `user:<id>:*` with `id = "*"` matches only the keys of
//!   the user whose id is the one-character string `*`; nor the literal text
//!   around them, so `report:*-<slug>` cannot match inside another slug.
//!
//! Templates cannot contain `%` or `~` (they mark escapes and hashes); the
//! attributes reject them at compile time.
//!
//! # Values without `Display`
//!
//! A placeholder whose value has no `Display` impl but implements
//! `Serialize` is written through `serde` ([`KeyBuilder::serialized`]):
//! scalars as above, a unit enum variant as its serialized name (so
//! `#[serde(rename_all = "snake_case")]` applies), a newtype struct as its
//! inner value, `Some(v)` as `v`, and `None` as `%none`. Escaping writes `%`
//! only before two uppercase hex digits, so `None` meets no other value, not
//! even `Some("")` (an empty segment) or `Some("%none")` (`%25none`). Anything
//! else (structs, sequences, an `Option` inside an `Option`) is written as
//! `~` and the BLAKE3 hash of its postcard encoding.
//!
//! # Length
//!
//! An escaped value longer than [`MAX_VALUE_LEN`] bytes is replaced by its
//! first 32 bytes, `~`, and 32 hex digits of its BLAKE3 hash. `~` never occurs
//! in an escaped value, so shortened and plain values cannot meet, and the
//! template's structure is kept, so patterns over it still match. Key length
//! is therefore bounded by the template, not by user input. Keys given to the
//! manual API longer than [`MAX_KEY_LEN`] are shortened the same way.
//!
//! # Default keys
//!
//! Without a `key` template, `#[cached]` keys on the function path and every
//! argument through `serde`: scalars (strings, integers, floats, booleans,
//! chars) are written like template values, anything else as `~` and a BLAKE3
//! hash of its postcard encoding. Both are stable across processes and builds
//! (unlike `DefaultHasher`); a `HashMap` argument is the exception, since its
//! iteration order is not.

use std::fmt::{self, Display, Write as _};

use serde::Serialize;

/// Escaped values longer than this many bytes are shortened to a hash.
pub const MAX_VALUE_LEN: usize = 128;
/// Keys given to the manual API longer than this many bytes are shortened.
pub const MAX_KEY_LEN: usize = 1024;
/// Bytes of a long value kept before its hash, for readability.
const KEPT_HEAD: usize = 32;
/// A placeholder's `None`: no escaped value is `%` and a lowercase letter.
const NONE: &str = "%none";

/// A value that can be interpolated into a key template: anything `Display`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be used in a cache key: it does not implement `std::fmt::Display`",
    label = "placeholder value must implement `Display`",
    note = "implement `Display` for the value's type, or name a field that has it, e.g. `<user.id>`"
)]
pub trait KeyValue {
    /// Writes the value's text form.
    fn write_key(&self, out: &mut dyn fmt::Write) -> fmt::Result;
}

impl<T: Display + ?Sized> KeyValue for T {
    fn write_key(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        write!(out, "{self}")
    }
}

/// An argument of a function keyed by default (no `key` template): anything `Serialize`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a default cache key: it does not implement `serde::Serialize`",
    label = "argument type must implement `Serialize`",
    note = "give the function a `key = \"...\"` template naming what to key on, or derive `Serialize` for the argument's type"
)]
pub trait KeyArg {
    /// Appends the argument to a key.
    fn push_to(&self, key: &mut KeyBuilder);
}

impl<T: Serialize + ?Sized> KeyArg for T {
    fn push_to(&self, key: &mut KeyBuilder) {
        key.push_serialize(self);
    }
}

/// Builds a key or an invalidation pattern from literal text and values,
/// escaping values exactly as `#[cached]` and `#[invalidates]` do.
///
/// Use it to build keys or patterns from user input for the manual API: the
/// result matches the keys the attributes write for the same values.
///
/// ```
/// use cache_core::KeyBuilder;
///
/// let key = KeyBuilder::new().lit("user:").value(&"a:b*").lit(":profile").build();
/// assert_eq!(key, "user:a%3Ab%2A:profile");
///
/// // Separate values with a literal: the literal that follows a value is escaped in it.
/// let key = KeyBuilder::new().lit("range:").value(&"1-2").lit("-").value(&3).build();
/// assert_eq!(key, "range:1%2D2-3");
/// ```
#[derive(Debug, Default, Clone)]
pub struct KeyBuilder {
    buf: String,
    /// Start of the last value and the character before it, until the text
    /// after it is known.
    pending: Option<(usize, Option<char>)>,
}

impl KeyBuilder {
    /// An empty builder (the cache adds its prefix when the key is used).
    #[must_use]
    pub fn new() -> KeyBuilder {
        KeyBuilder::default()
    }

    pub(crate) fn with_prefix(prefix: &str, capacity: usize) -> KeyBuilder {
        let mut buf = String::with_capacity(prefix.len() + 1 + capacity);
        if !prefix.is_empty() {
            buf.push_str(prefix);
            buf.push(':');
        }
        KeyBuilder { buf, pending: None }
    }

    /// Appends literal text, kept as written (in a pattern, `*` stays a wildcard).
    #[must_use]
    pub fn lit(mut self, text: &str) -> KeyBuilder {
        self.push_lit(text);
        self
    }

    /// Appends a value through its `Display` impl, escaped.
    #[must_use]
    pub fn value<V: KeyValue + ?Sized>(mut self, value: &V) -> KeyBuilder {
        self.push_value(value);
        self
    }

    /// Appends a value through `serde`, escaped, as a placeholder does for a
    /// value without `Display`: an `Option` (`None` is `%none`, which no
    /// other value produces), a unit enum variant (its serialized name), a
    /// newtype; anything compound as a hash (see the module docs).
    ///
    /// ```
    /// use cache_core::KeyBuilder;
    /// use serde::Serialize;
    ///
    /// #[derive(Serialize)]
    /// #[serde(rename_all = "snake_case")]
    /// enum Status { OnLeave }
    ///
    /// let key = |team: Option<&str>| KeyBuilder::new().lit("staff:").serialized(&team).build();
    /// assert_eq!(key(Some("data")), "staff:data");
    /// assert_eq!(key(None), "staff:%none");
    /// assert_eq!(key(Some("")), "staff:");
    /// assert_eq!(KeyBuilder::new().lit("s:").serialized(&Status::OnLeave).build(), "s:on_leave");
    /// ```
    #[must_use]
    pub fn serialized<V: Serialize + ?Sized>(mut self, value: &V) -> KeyBuilder {
        self.push_placeholder(value);
        self
    }

    /// The finished key or pattern.
    #[must_use]
    pub fn build(mut self) -> String {
        self.seal(None);
        self.buf
    }

    #[doc(hidden)]
    pub fn push_lit(&mut self, text: &str) {
        self.seal(text.chars().next());
        self.buf.push_str(text);
    }

    #[doc(hidden)]
    pub fn push_value<V: KeyValue + ?Sized>(&mut self, value: &V) {
        self.seal(None);
        let start = self.buf.len();
        let before = self.buf.chars().next_back();
        // Writing into a String cannot fail; a Display impl that reports an
        // error leaves what it wrote, which is still a deterministic key.
        let _ = value.write_key(&mut Escaper { out: &mut self.buf });
        self.pending = Some((start, before));
    }

    /// Appends a function argument for a default key (see the module docs).
    #[doc(hidden)]
    pub fn push_arg<V: KeyArg + ?Sized>(&mut self, value: &V) {
        value.push_to(self);
    }

    /// Appends a placeholder's value through `serde` (see the module docs).
    #[doc(hidden)]
    pub fn push_placeholder<V: Serialize + ?Sized>(&mut self, value: &V) {
        self.push_serde(value, Mode::Placeholder { in_some: false });
    }

    fn push_serialize<V: Serialize + ?Sized>(&mut self, value: &V) {
        self.push_serde(value, Mode::DefaultKey);
    }

    fn push_serde<V: Serialize + ?Sized>(&mut self, value: &V, mode: Mode) {
        self.seal(None);
        let start = self.buf.len();
        let before = self.buf.chars().next_back();
        let scalar = value.serialize(ScalarWriter {
            out: &mut Escaper { out: &mut self.buf },
            mode,
        });
        if scalar.is_err() {
            self.buf.truncate(start);
            let hash = match postcard::to_allocvec(value) {
                Ok(bytes) => blake3::hash(&bytes),
                // A Serialize impl that fails: key on its type name alone, still deterministic.
                Err(_) => blake3::hash(std::any::type_name::<V>().as_bytes()),
            };
            self.buf.push('~');
            self.buf.push_str(&hash.to_hex()[..32]);
        }
        self.pending = Some((start, before));
    }

    /// Closes the pending value: escapes the characters that precede and
    /// follow it, then shortens it if it is too long.
    fn seal(&mut self, next: Option<char>) {
        let Some((start, before)) = self.pending.take() else {
            return;
        };
        let a = before.filter(|c| keeps(*c));
        let b = next.filter(|c| keeps(*c));
        let special = |ch: char| Some(ch) == a || Some(ch) == b;
        if (a.is_some() || b.is_some()) && self.buf[start..].contains(special) {
            let mut escaped = String::with_capacity(self.buf.len() - start + 8);
            let mut utf8 = [0u8; 4];
            for ch in self.buf[start..].chars() {
                if special(ch) {
                    for byte in ch.encode_utf8(&mut utf8).bytes() {
                        push_pct(&mut escaped, byte);
                    }
                } else {
                    escaped.push(ch);
                }
            }
            self.buf.truncate(start);
            self.buf.push_str(&escaped);
        }
        if self.buf.len() - start > MAX_VALUE_LEN {
            shorten(&mut self.buf, start, KEPT_HEAD);
        }
    }
}

/// Replaces `buf[start..]` with its first `keep` bytes (at a char boundary),
/// `~` and 32 hex digits of the BLAKE3 hash of the whole of it.
fn shorten(buf: &mut String, start: usize, keep: usize) {
    let hash = blake3::hash(&buf.as_bytes()[start..]);
    let mut cut = start + keep.min(buf.len() - start);
    while !buf.is_char_boundary(cut) {
        cut -= 1;
    }
    buf.truncate(cut);
    buf.push('~');
    buf.push_str(&hash.to_hex()[..32]);
}

/// A key (or pattern) of the manual API under `prefix`. A `~` that starts a
/// segment becomes `%7E`: that namespace holds the cache's locks, indexes
/// and markers, which a key like `~lock:x` would otherwise reach.
pub(crate) fn manual_key(prefix: &str, key: &str) -> String {
    let escaped;
    let key = if key.starts_with('~') || key.contains(":~") {
        escaped = key
            .split(':')
            .map(|seg| match seg.strip_prefix('~') {
                Some(rest) => format!("%7E{rest}"),
                None => seg.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(":");
        escaped.as_str()
    } else {
        key
    };
    let full = if prefix.is_empty() {
        key.to_owned()
    } else {
        let mut s = String::with_capacity(prefix.len() + 1 + key.len());
        s.push_str(prefix);
        s.push(':');
        s.push_str(key);
        s
    };
    cap_key(full)
}

/// Shortens an over-long key from the manual API (see the module docs).
fn cap_key(mut key: String) -> String {
    if key.len() > MAX_KEY_LEN {
        shorten(&mut key, 0, MAX_KEY_LEN / 2);
    }
    key
}

/// Characters a value keeps unescaped (unless one ends the value).
fn keeps(c: char) -> bool {
    !c.is_ascii() || c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

fn push_pct(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 0xF)] as char);
}

/// A `fmt::Write` that escapes what passes through it.
struct Escaper<'a> {
    out: &'a mut String,
}

impl fmt::Write for Escaper<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Fast path: most values (ids, slugs, uuids) need no escaping.
        if s.chars().all(keeps) {
            self.out.push_str(s);
            return Ok(());
        }
        for c in s.chars() {
            if keeps(c) {
                self.out.push(c);
            } else {
                // Only ASCII reaches here, so the char is one byte.
                push_pct(self.out, c as u8);
            }
        }
        Ok(())
    }
}

/// Writes serde scalars as text; refuses anything compound.
struct ScalarWriter<'a, 'b> {
    out: &'a mut Escaper<'b>,
    mode: Mode,
}

/// What a [`ScalarWriter`] accepts besides scalars.
#[derive(Clone, Copy)]
enum Mode {
    /// A default key's argument: scalars only (unchanged, so default keys
    /// stay the same across versions).
    DefaultKey,
    /// A placeholder's value: also `None`, `Some`, unit variants and
    /// newtypes. `in_some` is true inside a `Some`, where another `Option`
    /// is refused (hashed), so `Some(None)` cannot meet `None`.
    Placeholder { in_some: bool },
}

#[derive(Debug)]
struct NotScalar;

impl Display for NotScalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a scalar")
    }
}

impl std::error::Error for NotScalar {}

impl serde::ser::Error for NotScalar {
    fn custom<T: Display>(_: T) -> Self {
        NotScalar
    }
}

macro_rules! scalar {
    ($($method:ident: $ty:ty),* $(,)?) => {
        $(fn $method(self, v: $ty) -> Result<(), NotScalar> {
            write!(self.out, "{v}").map_err(|_| NotScalar)
        })*
    };
}

macro_rules! compound {
    ($($method:ident($($arg:ty),*) -> $ret:ty),* $(,)?) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$ret, NotScalar> {
            Err(NotScalar)
        })*
    };
}

type Never = serde::ser::Impossible<(), NotScalar>;

impl serde::Serializer for ScalarWriter<'_, '_> {
    type Ok = ();
    type Error = NotScalar;
    type SerializeSeq = Never;
    type SerializeTuple = Never;
    type SerializeTupleStruct = Never;
    type SerializeTupleVariant = Never;
    type SerializeMap = Never;
    type SerializeStruct = Never;
    type SerializeStructVariant = Never;

    scalar!(
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_i128: i128, serialize_u8: u8, serialize_u16: u16,
        serialize_u32: u32, serialize_u64: u64, serialize_u128: u128, serialize_f32: f32,
        serialize_f64: f64, serialize_char: char, serialize_str: &str,
    );

    compound!(
        serialize_bytes(&[u8]) -> (),
        serialize_unit() -> (),
        serialize_unit_struct(&'static str) -> (),
        serialize_seq(Option<usize>) -> Never,
        serialize_tuple(usize) -> Never,
        serialize_tuple_struct(&'static str, usize) -> Never,
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Never,
        serialize_map(Option<usize>) -> Never,
        serialize_struct(&'static str, usize) -> Never,
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Never,
    );

    fn serialize_none(self) -> Result<(), NotScalar> {
        match self.mode {
            // Unescaped: escaping writes `%` only before two uppercase hex digits.
            Mode::Placeholder { in_some: false } => {
                self.out.out.push_str(NONE);
                Ok(())
            }
            _ => Err(NotScalar),
        }
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), NotScalar> {
        match self.mode {
            Mode::Placeholder { in_some: false } => value.serialize(ScalarWriter {
                out: self.out,
                mode: Mode::Placeholder { in_some: true },
            }),
            _ => Err(NotScalar),
        }
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), NotScalar> {
        match self.mode {
            Mode::Placeholder { .. } => self.serialize_str(variant),
            Mode::DefaultKey => Err(NotScalar),
        }
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), NotScalar> {
        match self.mode {
            Mode::Placeholder { .. } => value.serialize(self),
            Mode::DefaultKey => Err(NotScalar),
        }
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), NotScalar> {
        Err(NotScalar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tpl(parts: &[(&str, Option<&str>)]) -> String {
        let mut b = KeyBuilder::with_prefix("cache", 0);
        for (lit, val) in parts {
            b.push_lit(lit);
            if let Some(v) = val {
                b.push_value(v);
            }
        }
        b.build()
    }

    #[test]
    fn escapes_separators_and_glob() {
        assert_eq!(
            tpl(&[("employee:", Some("42"))]),
            "cache:employee:42",
            "plain values are kept"
        );
        assert_eq!(
            tpl(&[("u:", Some("*?[]\\%~: "))]),
            "cache:u:%2A%3F%5B%5D%5C%25%7E%3A%20"
        );
        assert_eq!(tpl(&[("", Some("a:b")), (":", Some("c"))]), "cache:a%3Ab:c");
        assert_ne!(
            tpl(&[("", Some("a:b")), (":", Some("c"))]),
            tpl(&[("", Some("a")), (":", Some("b:c"))])
        );
    }

    #[test]
    fn escapes_following_literal() {
        let a = tpl(&[("r:", Some("1-2")), ("-", Some("3"))]);
        let b = tpl(&[("r:", Some("1")), ("-", Some("2-3"))]);
        assert_eq!(a, "cache:r:1%2D2-3");
        assert_eq!(b, "cache:r:1-2%2D3");
        assert_ne!(a, b);
        let u = tpl(&[("x:", Some("é")), ("é", Some("y"))]);
        assert_eq!(u, "cache:x:%C3%A9éy");
    }

    #[test]
    fn long_values_are_hashed_deterministically() {
        let long = "a".repeat(500);
        let k1 = tpl(&[("u:", Some(&long)), (":p", None)]);
        let k2 = tpl(&[("u:", Some(&long)), (":p", None)]);
        assert_eq!(k1, k2);
        assert!(k1.len() < 100, "{k1}");
        assert!(k1.ends_with(":p"));
        let other = format!("{}b", "a".repeat(499));
        assert_ne!(k1, tpl(&[("u:", Some(&other)), (":p", None)]));
        let multi = "é".repeat(100);
        let k = tpl(&[("u:", Some(&multi))]);
        assert!(k.contains('~'));
    }

    #[test]
    fn default_key_args() {
        #[derive(Serialize)]
        struct Filter {
            team: String,
            page: u32,
        }
        let mut b = KeyBuilder::with_prefix("", 0);
        b.push_lit("svc::list");
        b.push_lit(":");
        b.push_arg(&"a:b");
        b.push_lit(":");
        b.push_arg(&7u32);
        b.push_lit(":");
        b.push_arg(&Filter {
            team: "x".into(),
            page: 1,
        });
        let k = b.build();
        assert!(k.starts_with("svc::list:a%3Ab:7:~"), "{k}");
        assert_eq!(k.len(), "svc::list:a%3Ab:7:~".len() + 32);
    }

    #[test]
    fn placeholders_through_serde() {
        #[derive(Serialize)]
        enum Status {
            Active,
            #[serde(rename = "on-leave")]
            OnLeave,
        }
        #[derive(Serialize)]
        struct Team(String);
        let key = |v: &dyn Fn(&mut KeyBuilder)| {
            let mut b = KeyBuilder::with_prefix("p", 0);
            b.push_lit("s:");
            v(&mut b);
            b.push_lit(":x");
            b.build()
        };
        assert_eq!(key(&|b| b.push_placeholder(&None::<&str>)), "p:s:%none:x");
        assert_eq!(
            key(&|b| b.push_placeholder(&Some("%none"))),
            "p:s:%25none:x"
        );
        assert_eq!(key(&|b| b.push_placeholder(&Some(""))), "p:s::x");
        assert_eq!(key(&|b| b.push_placeholder(&Some("~"))), "p:s:%7E:x");
        assert_eq!(key(&|b| b.push_placeholder(&Some("a:b"))), "p:s:a%3Ab:x");
        assert_eq!(
            key(&|b| b.push_placeholder(&Status::Active)),
            "p:s:Active:x"
        );
        assert_eq!(
            key(&|b| b.push_placeholder(&Status::OnLeave)),
            "p:s:on-leave:x"
        );
        assert_eq!(key(&|b| b.push_placeholder(&Team("*".into()))), "p:s:%2A:x");
        // `Some(None)` is hashed: it meets neither `None` nor `Some(Some(""))`.
        let some_none = key(&|b| b.push_placeholder(&Some(None::<u8>)));
        let some_some = key(&|b| b.push_placeholder(&Some(Some(0u8))));
        assert!(some_none.starts_with("p:s:~") && some_none.len() == "p:s:~:x".len() + 32);
        assert_ne!(some_none, some_some);
        // Default keys are unchanged: an `Option` argument is hashed there.
        let mut b = KeyBuilder::with_prefix("", 0);
        b.push_arg(&None::<u8>);
        assert_eq!(b.build().len(), 33);
    }

    #[test]
    fn manual_keys_are_capped() {
        let k = cap_key("k".repeat(5000));
        assert!(k.len() <= MAX_KEY_LEN);
        assert_eq!(k, cap_key("k".repeat(5000)));
        assert_eq!(cap_key("short".into()), "short");
    }
}
