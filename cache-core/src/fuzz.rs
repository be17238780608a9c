//! Entry points of the fuzz targets in `fuzz/` and of the suites that
//! replay their corpora (feature `fuzzing`; not an API: no stability
//! promise). Each takes the fuzzer's bytes and panics only when a property
//! the library promises does not hold.

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecConfig, Compression, Format};
use crate::glob::Glob;
use crate::key::KeyBuilder;

/// The decoder's limit in the envelope target: a decoder that allocates
/// far beyond it is caught by the fuzzer's `-malloc_limit_mb`.
pub const ENVELOPE_MAX_SIZE: usize = 64 * 1024;

/// A value with the shapes the decoders meet: integers, strings,
/// sequences, maps, options, enums, recursion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Arbitrary)]
pub struct Sample {
    id: u64,
    name: String,
    tags: Vec<String>,
    scores: BTreeMap<String, i32>,
    kind: Kind,
    parent: Option<Box<Sample>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Arbitrary)]
enum Kind {
    Plain,
    Sized(u32),
    Named { label: String, weight: i16 },
}

/// What Redis holds for a key, read as a [`Sample`] and as a `String`: the
/// variants container, then the envelope (format, compression, bounded
/// decompression, deserialization). Any bytes are a value or an error,
/// never a panic; a value decoded re-encodes to a value that decodes equal.
pub fn envelope(data: &[u8]) {
    let config = CodecConfig {
        max_size: ENVELOPE_MAX_SIZE,
        ..CodecConfig::default()
    };
    // The fingerprint the bytes claim (so that the fuzzer reaches the
    // payload), and the real ones.
    let claimed = data
        .get(5..13)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes);
    let fingerprints = [
        claimed,
        Some(codec::fingerprint::<Sample>(0)),
        Some(codec::fingerprint::<String>(0)),
    ];
    for fingerprint in fingerprints.into_iter().flatten() {
        if let Some(body) = stored(data, fingerprint) {
            if let Ok((sample, meta)) = codec::decode::<Sample>(body, fingerprint, &config) {
                for format in [Format::Postcard, Format::Json, Format::MessagePack] {
                    let again = codec::encode(
                        &sample,
                        fingerprint,
                        format,
                        Compression::Auto,
                        meta,
                        &config,
                    );
                    // Too large to re-encode is possible (JSON is wordier).
                    if let Ok(bytes) = again {
                        let back = codec::decode::<Sample>(&bytes, fingerprint, &config);
                        assert_eq!(
                            back.ok().map(|(s, _)| s),
                            Some(sample.clone()),
                            "{format:?}"
                        );
                    }
                }
            }
            let _ = codec::decode::<String>(body, fingerprint, &config);
        }
    }
}

/// Valid entries to start the envelope fuzzer from: [`Sample`]s and
/// strings in every format, compressed and not, with timing facts and
/// without, alone and as entries of several builds under one key.
pub fn envelope_seeds() -> Vec<Vec<u8>> {
    let config = CodecConfig {
        max_size: ENVELOPE_MAX_SIZE,
        threshold: 64,
        ..CodecConfig::default()
    };
    let leaf = Sample {
        id: 7,
        name: "Ada".into(),
        tags: vec!["a".into(), "b".repeat(100)],
        scores: [("x".to_owned(), -3)].into(),
        kind: Kind::Named {
            label: "l".into(),
            weight: 2,
        },
        parent: None,
    };
    let nested = Sample {
        kind: Kind::Sized(9),
        parent: Some(Box::new(leaf.clone())),
        ..leaf.clone()
    };
    let meta = codec::Meta {
        stale_ms: 1000,
        delta_ms: 20,
    };
    let mut out = Vec::new();
    for format in [Format::Postcard, Format::Json, Format::MessagePack] {
        for compression in [Compression::Never, Compression::Always] {
            for m in [None, Some(meta)] {
                for v in [&leaf, &nested] {
                    let fp = codec::fingerprint::<Sample>(0);
                    if let Ok(b) = codec::encode(v, fp, format, compression, m, &config) {
                        out.push(b);
                    }
                }
                let fp = codec::fingerprint::<String>(0);
                if let Ok(b) =
                    codec::encode(&"text".to_owned(), fp, format, compression, m, &config)
                {
                    out.push(b);
                }
            }
        }
    }
    #[cfg(feature = "redis")]
    if let [a, .., b] = out.as_slice() {
        let shared = cache_redis::variants::shared(&[
            (codec::fingerprint::<Sample>(0), 0, a),
            (codec::fingerprint::<String>(0), 500, b),
        ]);
        out.push(shared);
    }
    out
}

/// The entry the read path would decode for `fingerprint`.
#[cfg(feature = "redis")]
fn stored(data: &[u8], fingerprint: u64) -> Option<&[u8]> {
    use cache_redis::variants::{Stored, select};
    match select(data, fingerprint) {
        Stored::Single(b) => Some(b),
        Stored::Shared { value, .. } => Some(value),
        _ => None,
    }
}

#[cfg(not(feature = "redis"))]
fn stored(data: &[u8], _: u64) -> Option<&[u8]> {
    Some(data)
}

/// A key template as the attributes accept it: literal text (no `%`, `~`
/// or glob metacharacters) around placeholders, each pair of placeholders
/// separated by some literal.
#[derive(Debug)]
struct Template {
    literals: Vec<String>,
}

impl<'a> Arbitrary<'a> for Template {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Template> {
        let placeholders = u.int_in_range(1..=4)?;
        let mut literals = Vec::with_capacity(placeholders + 1);
        for i in 0..=placeholders {
            let len = u.int_in_range(usize::from(i > 0 && i < placeholders)..=4)?;
            let mut text = String::with_capacity(len);
            for _ in 0..len {
                text.push(*u.choose(&[':', '-', '.', '_', '/', 'a', 'b', '1', '@', '|'])?);
            }
            literals.push(text);
        }
        Ok(Template { literals })
    }
}

impl Template {
    fn key(&self, values: &[String], last: Option<&str>) -> String {
        let mut b = KeyBuilder::new();
        for (i, lit) in self.literals.iter().enumerate() {
            if i > 0 {
                b.push_value(&values[i - 1]);
            }
            b.push_lit(lit);
        }
        if let Some(text) = last {
            b.push_lit(text);
        }
        b.build()
    }
}

/// Keys from one template: two different tuples of values never give one
/// key, and a pattern made of a key's template up to a placeholder's value
/// and `*` matches another key exactly when it has the same values there.
pub fn keys(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(template) = Template::arbitrary(&mut u) else {
        return;
    };
    let n = template.literals.len() - 1;
    let values = |u: &mut Unstructured<'_>| -> arbitrary::Result<Vec<String>> {
        (0..n).map(|_| String::arbitrary(u)).collect()
    };
    let (Ok(a), Ok(b)) = (values(&mut u), values(&mut u)) else {
        return;
    };
    let (ka, kb) = (template.key(&a, None), template.key(&b, None));
    assert_eq!(a == b, ka == kb, "{template:?} {a:?} {b:?}: {ka:?} {kb:?}");
    // `lit0 <v1> lit1 … <vi> lit_i*`: matches the keys whose first i values are a's.
    let i = usize::from(u.arbitrary::<u8>().unwrap_or(0)) % n + 1;
    let mut p = KeyBuilder::new();
    for (j, lit) in template.literals[..=i].iter().enumerate() {
        if j > 0 {
            p.push_value(&a[j - 1]);
        }
        p.push_lit(lit);
    }
    p.push_lit("*");
    let pattern = p.build();
    // A pattern is only a prefix pattern if the literal after the value is
    // not empty: `<a>*` also matches a longer value that starts with `a`.
    if template.literals[i].is_empty() {
        return;
    }
    let same = a[..i] == b[..i];
    assert_eq!(
        Glob::new(&pattern).matches(&kb),
        same,
        "{pattern:?} against {kb:?} ({a:?} / {b:?})"
    );
}

/// Redis's glob grammar: the in-process matcher agrees with a plain
/// dynamic-programming reference of `stringmatchlen` on any pattern and
/// key, and never panics.
pub fn glob(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = usize::from(split).min(rest.len());
    let (pattern, key) = rest.split_at(at);
    let (Ok(pattern), Ok(key)) = (std::str::from_utf8(pattern), std::str::from_utf8(key)) else {
        return;
    };
    assert_eq!(
        Glob::new(pattern).matches(key),
        reference_match(pattern.as_bytes(), key.as_bytes()),
        "{pattern:?} against {key:?}"
    );
}

/// Whether Redis's glob matcher would match: its grammar (`*`, `?`,
/// `[...]` with `^`, ranges either way round and `\` escapes, an
/// unterminated class running to the end of the pattern, a trailing `\`
/// matching itself), by dynamic programming over (pattern, key) positions.
pub fn glob_matches(pattern: &str, key: &str) -> bool {
    Glob::new(pattern).matches(key)
}

fn reference_match(p: &[u8], s: &[u8]) -> bool {
    // matches[i][j]: pattern from i matches key from j.
    let mut memo = vec![vec![None; s.len() + 1]; p.len() + 1];
    fn go(p: &[u8], s: &[u8], i: usize, j: usize, memo: &mut Vec<Vec<Option<bool>>>) -> bool {
        if let Some(v) = memo[i][j] {
            return v;
        }
        let v = if i == p.len() {
            j == s.len()
        } else {
            match p[i] {
                b'*' => go(p, s, i + 1, j, memo) || (j < s.len() && go(p, s, i, j + 1, memo)),
                b'?' => j < s.len() && go(p, s, i + 1, j + 1, memo),
                b'[' => {
                    let (next, accepts) = class(p, i + 1);
                    j < s.len() && accepts(s[j]) && go(p, s, next, j + 1, memo)
                }
                b'\\' if i + 1 < p.len() => {
                    j < s.len() && s[j] == p[i + 1] && go(p, s, i + 2, j + 1, memo)
                }
                c => j < s.len() && s[j] == c && go(p, s, i + 1, j + 1, memo),
            }
        };
        memo[i][j] = Some(v);
        v
    }
    go(p, s, 0, 0, &mut memo)
}

/// A class starting at `p[i]` (after `[`): where the pattern goes on, and
/// what the class accepts.
fn class(p: &[u8], mut i: usize) -> (usize, impl Fn(u8) -> bool) {
    let negate = p.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut ranges: Vec<(u8, u8)> = Vec::new();
    loop {
        match p.get(i) {
            None => break, // unterminated: the class runs to the end
            Some(b']') => {
                i += 1;
                break;
            }
            Some(b'\\') if i + 1 < p.len() => {
                ranges.push((p[i + 1], p[i + 1]));
                i += 2;
            }
            Some(&a) if p.get(i + 1) == Some(&b'-') && i + 2 < p.len() => {
                let b = p[i + 2];
                ranges.push((a.min(b), a.max(b)));
                i += 3;
            }
            Some(&a) => {
                ranges.push((a, a));
                i += 1;
            }
        }
    }
    (i, move |c: u8| {
        ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != negate
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_agrees_on_known_cases() {
        for (p, k, m) in [
            ("user:*", "user:42", true),
            ("user:?", "user:42", false),
            ("[a-c]x", "bx", true),
            ("[c-a]x", "bx", true),
            ("[^a]x", "ax", false),
            ("a\\*", "a*", true),
            ("a\\*", "ab", false),
            ("*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaa", false),
        ] {
            assert_eq!(reference_match(p.as_bytes(), k.as_bytes()), m, "{p} {k}");
            assert_eq!(glob_matches(p, k), m, "{p} {k}");
        }
    }

    #[test]
    fn the_targets_run_on_small_inputs() {
        for data in [
            &b""[..],
            b"\x00",
            b"\xca\xc4\x01\x01\x00",
            b"abc*",
            b"\x03a*b",
        ] {
            envelope(data);
            keys(data);
            glob(data);
        }
    }
}
