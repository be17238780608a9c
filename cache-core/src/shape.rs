//! The shape of a cached type, as its `Deserialize` impl describes it: the
//! stable half of the type fingerprint stored with every shared entry.
//!
//! Two builds share one Redis during a rolling deploy. The fingerprint must
//! tell their types apart when the stored bytes would mean something else
//! to the other build (a field added, renamed or retyped, a variant added),
//! and must not change when nothing did: not with the compiler version, not
//! with the crate's path, not between two builds of the same source.
//! `std::any::type_name` fails the second half (its output is explicitly not
//! promised to be stable) and misses the first (a field added to `Employee`
//! keeps the name).
//!
//! So the shape is read from the type itself: [`Tracer`] is a
//! `serde::Deserializer` that hands the type's `Deserialize` impl neutral
//! values (zero, `""`, one element per sequence and map, `Some` for options)
//! and records what it asks for: primitive kinds, struct, enum and variant
//! names, field names, and the shape of each field. An enum is traced once
//! per variant index (pass `i` picks variant `i mod n` of every enum), so a
//! change inside any variant shows. Recursion stops at a fixed depth
//! (sequences, maps and options come back empty there), so recursive types
//! trace too.
//!
//! A `Deserialize` impl that refuses a neutral value (a `Uuid` parsed from
//! `""`) ends its trace there: what was recorded up to that point is still
//! the same for every build of that source, and a struct's field names are
//! recorded before any field is visited. Such a type is told apart less
//! finely, which is what `version = N` is for. A trace that panics is treated
//! the same way. No dependency does this job: `serde-reflection` gives up on
//! the first refused value, and that is common (timestamps, ids, decimals).
//!
//! Tracing runs once per type and thread; later lookups hit a thread-local
//! map (a few nanoseconds).

use std::any::TypeId;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};

/// Below this depth, sequences, maps and options come back empty.
const MAX_DEPTH: u32 = 24;
/// Enums with more variants than this are traced for the first ones only.
const MAX_PASSES: usize = 64;

/// The shape fingerprint of `T` (FNV-1a over its trace), cached per thread.
pub(crate) fn of<T: DeserializeOwned + 'static>() -> u64 {
    thread_local! {
        static SHAPES: RefCell<HashMap<TypeId, u64, BuildHasherDefault<IdHasher>>> =
            RefCell::new(HashMap::default());
    }
    let id = TypeId::of::<T>();
    if let Some(fp) = SHAPES.with(|s| s.borrow().get(&id).copied()) {
        return fp;
    }
    let fp = trace::<T>();
    SHAPES.with(|s| s.borrow_mut().insert(id, fp));
    fp
}

/// Traces `T` in as many passes as its largest enum has variants.
fn trace<T: DeserializeOwned>() -> u64 {
    let mut out = Fnv::new();
    let mut pass = 0;
    loop {
        let mut widest = 0usize;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut rec = Record {
                out: &mut out,
                pass,
                widest: &mut widest,
            };
            T::deserialize(Tracer {
                rec: &mut rec,
                depth: 0,
            })
            .map(|_| ())
        }));
        // Where the trace ended is part of the shape.
        out.byte(match result {
            Ok(Ok(())) => b'.',
            Ok(Err(_)) => b'!',
            Err(_) => b'#',
        });
        pass += 1;
        if pass >= widest.min(MAX_PASSES) {
            return out.finish();
        }
    }
}

/// FNV-1a, 64 bits: the trace is short and built once per type.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn byte(&mut self, b: u8) {
        self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.byte(*b);
        }
    }

    /// A name, length-prefixed so that `ab`,`c` and `a`,`bc` differ.
    fn name(&mut self, name: &str) {
        self.bytes(&(name.len() as u32).to_le_bytes());
        self.bytes(name.as_bytes());
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// `TypeId`s are already hashes: the map needs no second one.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

struct Record<'a> {
    out: &'a mut Fnv,
    /// Which variant of each enum this pass takes (`pass mod variants`).
    pass: usize,
    /// The most variants an enum has had in this pass.
    widest: &'a mut usize,
}

/// What a trace reports when a `Deserialize` impl refuses a neutral value.
#[derive(Debug)]
struct Refused;

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("refused a neutral value")
    }
}

impl std::error::Error for Refused {}

impl de::Error for Refused {
    fn custom<M: fmt::Display>(_: M) -> Refused {
        Refused
    }
}

struct Tracer<'r, 'a> {
    rec: &'r mut Record<'a>,
    depth: u32,
}

impl<'r, 'a> Tracer<'r, 'a> {
    fn tag(&mut self, tag: u8) {
        self.rec.out.byte(tag);
    }

    fn child(&mut self) -> Tracer<'_, 'a> {
        Tracer {
            rec: self.rec,
            depth: self.depth + 1,
        }
    }

    fn deep(&self) -> bool {
        self.depth >= MAX_DEPTH
    }
}

macro_rules! primitive {
    ($($method:ident => $tag:literal, $visit:ident($($value:expr)?);)*) => {
        $(
            fn $method<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Refused> {
                self.tag($tag);
                visitor.$visit($($value)?)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for Tracer<'_, '_> {
    type Error = Refused;

    primitive! {
        deserialize_bool => b'b', visit_bool(false);
        deserialize_i8 => 1, visit_i8(0);
        deserialize_i16 => 2, visit_i16(0);
        deserialize_i32 => 3, visit_i32(0);
        deserialize_i64 => 4, visit_i64(0);
        deserialize_i128 => 5, visit_i128(0);
        deserialize_u8 => 6, visit_u8(0);
        deserialize_u16 => 7, visit_u16(0);
        deserialize_u32 => 8, visit_u32(0);
        deserialize_u64 => 9, visit_u64(0);
        deserialize_u128 => 10, visit_u128(0);
        deserialize_f32 => 11, visit_f32(0.0);
        deserialize_f64 => 12, visit_f64(0.0);
        deserialize_char => b'c', visit_char('0');
        deserialize_str => b's', visit_str("");
        deserialize_string => b's', visit_str("");
        deserialize_bytes => b'y', visit_bytes(&[]);
        deserialize_byte_buf => b'y', visit_bytes(&[]);
        deserialize_unit => b'u', visit_unit();
        deserialize_any => b'a', visit_unit();
        deserialize_ignored_any => b'_', visit_unit();
        deserialize_identifier => b'i', visit_u64(0);
    }

    fn deserialize_option<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Refused> {
        self.tag(b'o');
        if self.deep() {
            return visitor.visit_none();
        }
        visitor.visit_some(self.child())
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Refused> {
        self.tag(b'U');
        self.rec.out.name(name);
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Refused> {
        self.tag(b'N');
        self.rec.out.name(name);
        if self.deep() {
            return Err(Refused);
        }
        visitor.visit_newtype_struct(self.child())
    }

    fn deserialize_seq<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Refused> {
        self.tag(b'[');
        let n = usize::from(!self.deep());
        visitor.visit_seq(Elements {
            tracer: self.child(),
            left: n,
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        mut self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Refused> {
        self.tag(b'(');
        self.rec.out.bytes(&(len as u32).to_le_bytes());
        if self.deep() {
            return Err(Refused);
        }
        visitor.visit_seq(Elements {
            tracer: self.child(),
            left: len,
        })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Refused> {
        self.tag(b'T');
        self.rec.out.name(name);
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Refused> {
        self.tag(b'{');
        let n = usize::from(!self.deep());
        visitor.visit_map(Entries {
            tracer: self.child(),
            left: n,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Refused> {
        self.tag(b'S');
        self.rec.out.name(name);
        for field in fields {
            self.rec.out.name(field);
        }
        if self.deep() {
            return Err(Refused);
        }
        visitor.visit_seq(Elements {
            tracer: self.child(),
            left: fields.len(),
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Refused> {
        self.tag(b'E');
        self.rec.out.name(name);
        for variant in variants {
            self.rec.out.name(variant);
        }
        if variants.is_empty() || self.deep() {
            return Err(Refused);
        }
        *self.rec.widest = (*self.rec.widest).max(variants.len());
        let index = self.rec.pass % variants.len();
        visitor.visit_enum(Variant {
            tracer: self.child(),
            index: index as u32,
        })
    }

    fn is_human_readable(&self) -> bool {
        // The same answer every format sees by default; the trace must not
        // depend on which format the entry will use.
        true
    }
}

/// A sequence of `left` traced elements.
struct Elements<'r, 'a> {
    tracer: Tracer<'r, 'a>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Elements<'_, '_> {
    type Error = Refused;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Refused> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(self.tracer.child()).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// A map of `left` traced entries.
struct Entries<'r, 'a> {
    tracer: Tracer<'r, 'a>,
    left: usize,
}

impl<'de> de::MapAccess<'de> for Entries<'_, '_> {
    type Error = Refused;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Refused> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(self.tracer.child()).map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Refused> {
        seed.deserialize(self.tracer.child())
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// The variant this pass takes, and its contents.
struct Variant<'r, 'a> {
    tracer: Tracer<'r, 'a>,
    index: u32,
}

impl<'de> de::EnumAccess<'de> for Variant<'_, '_> {
    type Error = Refused;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), Refused> {
        let de: de::value::U32Deserializer<Refused> = self.index.into_deserializer();
        let v = seed.deserialize(de)?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, '_> {
    type Error = Refused;

    fn unit_variant(mut self) -> Result<(), Refused> {
        self.tracer.tag(b'v');
        Ok(())
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(
        mut self,
        seed: S,
    ) -> Result<S::Value, Refused> {
        self.tracer.tag(b'w');
        seed.deserialize(self.tracer.child())
    }

    fn tuple_variant<V: Visitor<'de>>(
        mut self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Refused> {
        self.tracer.tag(b'x');
        de::Deserializer::deserialize_tuple(self.tracer.child(), len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        mut self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Refused> {
        self.tracer.tag(b'z');
        for field in fields {
            self.tracer.rec.out.name(field);
        }
        visitor.visit_seq(Elements {
            tracer: self.tracer.child(),
            left: fields.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Employee {
        id: u64,
        name: String,
        tags: Vec<String>,
        manager: Option<Box<Employee>>,
    }

    mod v2 {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub(super) struct Employee {
            pub id: u64,
            pub name: String,
            pub tags: Vec<String>,
            pub manager: Option<Box<Employee>>,
            pub email: String,
        }
    }

    mod elsewhere {
        /// The same source under another module path.
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub(super) struct Employee {
            pub id: u64,
            pub name: String,
            pub tags: Vec<String>,
            pub manager: Option<Box<Employee>>,
        }
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Shape {
        Dot,
        Circle { r: f64 },
        Poly(Vec<(i32, i32)>),
    }

    mod shape_v2 {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub(super) enum Shape {
            Dot,
            Circle { r: f64 },
            Poly(Vec<(i32, i64)>),
        }
    }

    /// Parses its string: refuses the tracer's `""`.
    #[derive(Debug)]
    struct Parsed;

    impl<'de> Deserialize<'de> for Parsed {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Parsed, D::Error> {
            let s = String::deserialize(d)?;
            if s.is_empty() {
                return Err(de::Error::custom("empty"));
            }
            Ok(Parsed)
        }
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct WithParsed {
        id: Parsed,
        name: String,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct WithParsedRenamed {
        id: Parsed,
        full_name: String,
    }

    #[test]
    fn pinned_values_do_not_change_between_builds() {
        // Changing any of these makes every entry written by an older build
        // a miss for a newer one: do it only on purpose.
        assert_eq!(of::<u64>(), 0x084a_7807_b4ff_e69e);
        assert_eq!(of::<String>(), 0x08d8_f807_b578_c564);
        assert_eq!(of::<Employee>(), 0x0b0d_64b6_c20c_2446);
        assert_eq!(of::<Shape>(), 0xffa9_0e1e_0597_0631);
        assert_eq!(of::<Employee>(), trace::<elsewhere::Employee>());
    }

    #[test]
    fn the_same_source_elsewhere_has_the_same_shape() {
        assert_eq!(of::<Employee>(), of::<elsewhere::Employee>());
        assert_eq!(of::<String>(), of::<Box<str>>());
        assert_eq!(of::<Vec<u8>>(), of::<std::collections::VecDeque<u8>>());
    }

    #[test]
    fn a_changed_type_has_another_shape() {
        assert_ne!(of::<Employee>(), of::<v2::Employee>());
        assert_ne!(
            of::<Shape>(),
            of::<shape_v2::Shape>(),
            "a change in the last variant"
        );
        assert_ne!(of::<u32>(), of::<u64>());
        assert_ne!(of::<Vec<u32>>(), of::<Option<u32>>());
        assert_ne!(of::<BTreeMap<String, u32>>(), of::<Vec<(String, u32)>>());
        assert_ne!(of::<(u8, u16)>(), of::<(u16, u8)>());
    }

    #[test]
    fn a_refused_value_still_tells_field_names_apart() {
        assert_ne!(of::<WithParsed>(), of::<WithParsedRenamed>());
        assert_eq!(of::<WithParsed>(), of::<WithParsed>());
    }

    #[test]
    fn recursive_and_foreign_types_trace() {
        // Terminates, and is deterministic.
        assert_eq!(trace::<Employee>(), trace::<Employee>());
        assert_eq!(trace::<serde_json::Value>(), trace::<serde_json::Value>());
        assert_ne!(trace::<serde_json::Value>(), trace::<String>());
    }
}
