//! The bytes stored in the shared tier: an envelope around the serialized value.
//!
//! ```text
//! offset  size  field
//! 0       2     magic  0xCA 0xC4
//! 2       1     envelope version (1, or 3 with timing facts)
//! 3       1     format: 1 postcard, 2 JSON, 3 MessagePack, 4 bincode
//! 4       1     compression: 0 none, 1 zstd
//! 5       8     fingerprint: the type's shape and the function's `version`, little-endian
//! 13      ..    payload (version 1)
//!
//! version 3 only (2 was an earlier layout of the same facts, now refused):
//! 13      8     stale window: how long the key outlives its freshness, ms, little-endian
//! 21      4     time the origin took to compute the value, ms, little-endian
//! 25      ..    payload
//! ```
//!
//! Version 3 is written for functions with a stale window (`stale_if_error`)
//! or early refresh: the Redis key then lives longer than the value is fresh
//! (TTL + window), so the window travels with the value, and a reader finds
//! the time the value stays fresh as the key's `PTTL` minus the window. Only
//! Redis's clock is involved: instances whose clocks disagree still agree on
//! freshness. Plain entries keep version 1, byte for byte.
//!
//! Anything that does not decode cleanly (another writer, another type, an
//! old layout, truncated or trailing bytes, an unknown format) is an error the
//! caller turns into a miss. The format is read from the envelope, so entries
//! written in another format stay readable during a format change.
//!
//! zstd is applied above a threshold (1 KiB by default). Compression contexts
//! are kept per thread and reused (a fresh context per call was measured at
//! ~25 µs vs ~8 µs reused). Decompression is bounded: the frame's declared
//! content size is read first, and a frame that declares more than the limit,
//! or does not declare its size, is refused before anything is allocated.

use std::cell::RefCell;
use std::io::Cursor;

use serde::Serialize;
use serde::de::DeserializeOwned;

const MAGIC: [u8; 2] = [0xCA, 0xC4];
const VERSION: u8 = 1;
const VERSION_META: u8 = 3;
const HEADER: usize = 13;
const HEADER_META: usize = 25;

/// Timing facts stored with a value that has a stale window or early refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    /// How long the key outlives the value's freshness, in milliseconds.
    pub(crate) stale_ms: u64,
    /// How long the origin took to compute it, in milliseconds.
    pub(crate) delta_ms: u32,
}

/// How values are serialized in the shared tier.
///
/// ```
/// use cache_core::Format;
/// assert_eq!(Format::default(), Format::Postcard);
/// assert_eq!(Format::from_name("json"), Some(Format::Json));
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// postcard: compact, fast, the default.
    #[default]
    Postcard,
    /// JSON: readable with `redis-cli`.
    Json,
    /// MessagePack (structs as maps, so field order may change).
    MessagePack,
    /// bincode 2 (feature `bincode`; unmaintained upstream, RUSTSEC-2025-0141).
    #[cfg(feature = "bincode")]
    #[cfg_attr(docsrs, doc(cfg(feature = "bincode")))]
    Bincode,
}

impl Format {
    /// The name used in `#[cached(format = "...")]`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Postcard => "postcard",
            Format::Json => "json",
            Format::MessagePack => "msgpack",
            #[cfg(feature = "bincode")]
            Format::Bincode => "bincode",
        }
    }

    /// Looks a format up by name (`postcard`, `json`, `msgpack`, `bincode`).
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "postcard" => Some(Format::Postcard),
            "json" => Some(Format::Json),
            "msgpack" | "messagepack" => Some(Format::MessagePack),
            #[cfg(feature = "bincode")]
            "bincode" => Some(Format::Bincode),
            _ => None,
        }
    }

    fn id(self) -> u8 {
        match self {
            Format::Postcard => 1,
            Format::Json => 2,
            Format::MessagePack => 3,
            #[cfg(feature = "bincode")]
            Format::Bincode => 4,
        }
    }

    fn from_id(id: u8) -> Result<Format, DecodeError> {
        match id {
            1 => Ok(Format::Postcard),
            2 => Ok(Format::Json),
            3 => Ok(Format::MessagePack),
            #[cfg(feature = "bincode")]
            4 => Ok(Format::Bincode),
            other => Err(DecodeError::UnknownFormat(other)),
        }
    }
}

/// When values are compressed with zstd.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Above the threshold (default 1 KiB).
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl Compression {
    /// Looks a mode up by name (`auto`, `always`, `never`).
    pub fn from_name(name: &str) -> Option<Compression> {
        match name {
            "auto" => Some(Compression::Auto),
            "always" => Some(Compression::Always),
            "never" => Some(Compression::Never),
            _ => None,
        }
    }
}

/// Codec settings of one cache.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CodecConfig {
    pub(crate) format: Format,
    pub(crate) compression: Compression,
    pub(crate) threshold: usize,
    pub(crate) level: i32,
    /// Largest encoded or decoded payload accepted.
    pub(crate) max_size: usize,
}

impl Default for CodecConfig {
    fn default() -> Self {
        CodecConfig {
            format: Format::Postcard,
            compression: Compression::Auto,
            threshold: 1024,
            level: 3,
            max_size: 8 * 1024 * 1024,
        }
    }
}

/// Why bytes were not turned into a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum DecodeError {
    #[error("not a cache entry (too short or wrong magic)")]
    Foreign,
    #[error("envelope version {0} is not supported")]
    Version(u8),
    #[error("unknown format id {0}")]
    UnknownFormat(u8),
    #[error("unknown compression id {0}")]
    UnknownCompression(u8),
    #[error("written for another type or version")]
    OtherType,
    #[error("entries of several builds that do not parse")]
    Shared,
    #[error("declares {declared} bytes, more than the {max}-byte limit")]
    TooLarge { declared: u64, max: usize },
    #[error("zstd: {0}")]
    Decompress(String),
    #[error("deserialize: {0}")]
    Deserialize(String),
}

/// Why a value was not turned into bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum EncodeError {
    #[error("serialize: {0}")]
    Serialize(String),
    #[error("{size} bytes is more than the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
    #[error("zstd: {0}")]
    Compress(String),
}

/// The fingerprint of `T` and the user's `version`: the shape of `T` as its
/// `Deserialize` impl describes it (see `shape.rs`: stable across compilers
/// and builds of the same source, changed by a changed type), mixed with
/// `version` by FNV-1a. It tells types apart by accident, not against an
/// adversary: shapes come from the program, not from users.
pub(crate) fn fingerprint<T: DeserializeOwned + 'static>(version: u32) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    version
        .to_le_bytes()
        .iter()
        .fold(crate::shape::of::<T>(), |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(PRIME)
        })
}

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

fn compress(data: &[u8], level: i32) -> Result<Vec<u8>, EncodeError> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            let c = zstd::bulk::Compressor::new(level)
                .map_err(|e| EncodeError::Compress(e.to_string()))?;
            *slot = Some((level, c));
        }
        match slot.as_mut() {
            Some((_, c)) => c
                .compress(data)
                .map_err(|e| EncodeError::Compress(e.to_string())),
            None => Err(EncodeError::Compress("no compression context".into())),
        }
    })
}

fn decompress(frame: &[u8], max: usize) -> Result<Vec<u8>, DecodeError> {
    let declared = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(n)) => n,
        Ok(None) => {
            return Err(DecodeError::Decompress(
                "frame does not declare its size".into(),
            ));
        }
        Err(_) => return Err(DecodeError::Decompress("not a zstd frame".into())),
    };
    if declared > max as u64 {
        return Err(DecodeError::TooLarge { declared, max });
    }
    let capacity =
        usize::try_from(declared).map_err(|_| DecodeError::TooLarge { declared, max })?;
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(
                zstd::bulk::Decompressor::new()
                    .map_err(|e| DecodeError::Decompress(e.to_string()))?,
            );
        }
        match slot.as_mut() {
            Some(d) => {
                let out = d
                    .decompress(frame, capacity)
                    .map_err(|e| DecodeError::Decompress(e.to_string()))?;
                if out.len() as u64 != declared {
                    return Err(DecodeError::Decompress(
                        "frame size does not match its header".into(),
                    ));
                }
                Ok(out)
            }
            None => Err(DecodeError::Decompress("no decompression context".into())),
        }
    })
}

fn serialize<T: Serialize>(value: &T, format: Format) -> Result<Vec<u8>, EncodeError> {
    let err = |e: &dyn std::fmt::Display| EncodeError::Serialize(e.to_string());
    match format {
        Format::Postcard => postcard::to_allocvec(value).map_err(|e| err(&e)),
        Format::Json => serde_json::to_vec(value).map_err(|e| err(&e)),
        Format::MessagePack => rmp_serde::to_vec_named(value).map_err(|e| err(&e)),
        #[cfg(feature = "bincode")]
        Format::Bincode => {
            bincode::serde::encode_to_vec(value, bincode::config::standard()).map_err(|e| err(&e))
        }
    }
}

fn deserialize<T: DeserializeOwned>(
    bytes: &[u8],
    format: Format,
    max: usize,
) -> Result<T, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            declared: bytes.len() as u64,
            max,
        });
    }
    let err = |e: &dyn std::fmt::Display| DecodeError::Deserialize(e.to_string());
    let trailing = || DecodeError::Deserialize("trailing bytes".into());
    match format {
        Format::Postcard => {
            let (v, rest) = postcard::take_from_bytes(bytes).map_err(|e| err(&e))?;
            if rest.is_empty() {
                Ok(v)
            } else {
                Err(trailing())
            }
        }
        Format::Json => serde_json::from_slice(bytes).map_err(|e| err(&e)),
        Format::MessagePack => {
            let mut de = rmp_serde::Deserializer::new(Cursor::new(bytes));
            let v = T::deserialize(&mut de).map_err(|e| err(&e))?;
            if de.into_inner().position() == bytes.len() as u64 {
                Ok(v)
            } else {
                Err(trailing())
            }
        }
        #[cfg(feature = "bincode")]
        Format::Bincode => {
            let config = bincode::config::standard().with_limit::<{ 64 * 1024 * 1024 }>();
            let (v, read) =
                bincode::serde::decode_from_slice(bytes, config).map_err(|e| err(&e))?;
            if read == bytes.len() {
                Ok(v)
            } else {
                Err(trailing())
            }
        }
    }
}

/// Encodes `value` into an envelope.
pub(crate) fn encode<T: Serialize>(
    value: &T,
    fingerprint: u64,
    format: Format,
    compression: Compression,
    meta: Option<Meta>,
    config: &CodecConfig,
) -> Result<Vec<u8>, EncodeError> {
    let payload = serialize(value, format)?;
    if payload.len() > config.max_size {
        return Err(EncodeError::TooLarge {
            size: payload.len(),
            max: config.max_size,
        });
    }
    let compress_it = match compression {
        Compression::Always => true,
        Compression::Never => false,
        Compression::Auto => payload.len() > config.threshold,
    };
    let (compression_id, body) = if compress_it {
        (1u8, compress(&payload, config.level)?)
    } else {
        (0u8, payload)
    };
    let mut out = Vec::with_capacity(HEADER_META + body.len());
    out.extend_from_slice(&MAGIC);
    out.push(if meta.is_some() {
        VERSION_META
    } else {
        VERSION
    });
    out.push(format.id());
    out.push(compression_id);
    out.extend_from_slice(&fingerprint.to_le_bytes());
    if let Some(m) = meta {
        out.extend_from_slice(&m.stale_ms.to_le_bytes());
        out.extend_from_slice(&m.delta_ms.to_le_bytes());
    }
    out.extend_from_slice(&body);
    Ok(out)
}

/// An envelope's header, read without decoding the value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Opened<'a> {
    pub(crate) format: Format,
    /// `0` none, `1` zstd (anything else is refused when the body is read).
    pub(crate) compression: u8,
    pub(crate) fingerprint: u64,
    pub(crate) meta: Option<Meta>,
    pub(crate) body: &'a [u8],
}

impl Opened<'_> {
    /// The serialized value, decompressed (bounded by `max`).
    pub(crate) fn payload(&self, max: usize) -> Result<std::borrow::Cow<'_, [u8]>, DecodeError> {
        match self.compression {
            0 => Ok(std::borrow::Cow::Borrowed(self.body)),
            1 => decompress(self.body, max).map(std::borrow::Cow::Owned),
            other => Err(DecodeError::UnknownCompression(other)),
        }
    }

    /// The value as JSON, for a JSON or MessagePack entry (whose values
    /// describe themselves); `None` for the other formats.
    pub(crate) fn as_json(&self, max: usize) -> Result<Option<serde_json::Value>, DecodeError> {
        match self.format {
            Format::Json | Format::MessagePack => {
                deserialize(&self.payload(max)?, self.format, max).map(Some)
            }
            _ => Ok(None),
        }
    }
}

/// Reads an envelope's header (see the module docs).
pub(crate) fn open(bytes: &[u8]) -> Result<Opened<'_>, DecodeError> {
    if bytes.len() < HEADER || bytes[..2] != MAGIC {
        return Err(DecodeError::Foreign);
    }
    let (meta, body) = match bytes[2] {
        VERSION => (None, &bytes[HEADER..]),
        VERSION_META if bytes.len() >= HEADER_META => {
            let (until, delta) = bytes[HEADER..HEADER_META].split_at(8);
            let mut u = [0u8; 8];
            u.copy_from_slice(until);
            let mut d = [0u8; 4];
            d.copy_from_slice(delta);
            let meta = Meta {
                stale_ms: u64::from_le_bytes(u),
                delta_ms: u32::from_le_bytes(d),
            };
            (Some(meta), &bytes[HEADER_META..])
        }
        VERSION_META => return Err(DecodeError::Foreign),
        other => return Err(DecodeError::Version(other)),
    };
    let format = Format::from_id(bytes[3])?;
    let mut fp = [0u8; 8];
    fp.copy_from_slice(&bytes[5..13]);
    Ok(Opened {
        format,
        compression: bytes[4],
        fingerprint: u64::from_le_bytes(fp),
        meta,
        body,
    })
}

/// Decodes an envelope written for `fingerprint`, with its timing facts if it has them.
pub(crate) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    fingerprint: u64,
    config: &CodecConfig,
) -> Result<(T, Option<Meta>), DecodeError> {
    let opened = open(bytes)?;
    if opened.fingerprint != fingerprint {
        return Err(DecodeError::OtherType);
    }
    let value = deserialize(
        &opened.payload(config.max_size)?,
        opened.format,
        config.max_size,
    )?;
    Ok((value, opened.meta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct V {
        id: u64,
        text: String,
    }

    fn formats() -> Vec<Format> {
        let all = [Format::Postcard, Format::Json, Format::MessagePack];
        #[cfg(feature = "bincode")]
        let all = [all.as_slice(), &[Format::Bincode]].concat();
        all.to_vec()
    }

    /// The Redis tier merges entries of several builds by reading the
    /// fingerprint where `cache_redis::variants` says a value keeps it
    /// (in its write script too): the envelope must put it there.
    #[cfg(feature = "redis")]
    #[test]
    fn the_envelope_keeps_its_fingerprint_where_the_redis_tier_reads_it() {
        use cache_redis::variants::{ENTRY_MAGIC, SHARED_MAGIC, VARIANT_AT};
        let c = CodecConfig::default();
        let fp = fingerprint::<V>(3);
        let v = V {
            id: 1,
            text: "x".into(),
        };
        for meta in [
            None,
            Some(Meta {
                stale_ms: 5,
                delta_ms: 6,
            }),
        ] {
            let bytes = encode(&v, fp, Format::Postcard, Compression::Never, meta, &c).unwrap();
            assert_eq!(bytes[..2], ENTRY_MAGIC);
            assert_ne!(bytes[..2], SHARED_MAGIC);
            assert_eq!(bytes[VARIANT_AT], fp.to_le_bytes());
        }
    }

    #[test]
    fn round_trips_every_format_with_and_without_compression() {
        let c = CodecConfig::default();
        let fp = fingerprint::<V>(0);
        for format in formats() {
            for text_len in [3, 5000] {
                let v = V {
                    id: 7,
                    text: "x".repeat(text_len),
                };
                let bytes = encode(&v, fp, format, Compression::Auto, None, &c).unwrap();
                assert_eq!(bytes[4], u8::from(text_len > 1024), "{format:?}");
                assert_eq!(
                    decode::<V>(&bytes, fp, &c).unwrap(),
                    (v, None),
                    "{format:?}"
                );
            }
        }
    }

    #[test]
    fn refuses_what_it_did_not_write() {
        let c = CodecConfig::default();
        let fp = fingerprint::<V>(0);
        let v = V {
            id: 1,
            text: "hello".into(),
        };
        let good = encode(&v, fp, Format::Postcard, Compression::Never, None, &c).unwrap();
        assert!(matches!(
            decode::<V>(b"garbage", fp, &c),
            Err(DecodeError::Foreign)
        ));
        assert!(matches!(
            decode::<V>(&good[..good.len() - 2], fp, &c),
            Err(DecodeError::Deserialize(_))
        ));
        assert!(matches!(
            decode::<V>(&good, fingerprint::<V>(1), &c),
            Err(DecodeError::OtherType)
        ));
        assert!(matches!(
            decode::<V>(&good, fingerprint::<u64>(0), &c),
            Err(DecodeError::OtherType)
        ));
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(decode::<V>(&trailing, fp, &c).is_err());
        let mut unknown = good;
        unknown[3] = 99;
        assert!(matches!(
            decode::<V>(&unknown, fp, &c),
            Err(DecodeError::UnknownFormat(99))
        ));
    }

    #[test]
    fn timing_facts_round_trip_and_truncation_is_foreign() {
        let c = CodecConfig::default();
        let fp = fingerprint::<V>(0);
        let v = V {
            id: 9,
            text: "y".repeat(2000),
        };
        let meta = Meta {
            stale_ms: 3_600_000,
            delta_ms: 42,
        };
        let bytes = encode(&v, fp, Format::Postcard, Compression::Auto, Some(meta), &c).unwrap();
        assert_eq!(bytes[2], VERSION_META);
        assert_eq!(decode::<V>(&bytes, fp, &c).unwrap(), (v, Some(meta)));
        assert!(matches!(
            decode::<V>(&bytes[..20], fp, &c),
            Err(DecodeError::Foreign)
        ));
        let mut future = bytes.clone();
        future[2] = 4;
        assert!(matches!(
            decode::<V>(&future, fp, &c),
            Err(DecodeError::Version(4))
        ));
    }

    #[test]
    fn decompression_bombs_are_refused_before_allocating() {
        let c = CodecConfig {
            max_size: 1024 * 1024,
            ..CodecConfig::default()
        };
        let fp = fingerprint::<String>(0);
        // 64 MiB of zeros compresses to a few KiB and declares its size.
        let bomb = zstd::bulk::compress(&vec![0u8; 64 * 1024 * 1024], 3).unwrap();
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[VERSION, 1, 1]);
        bytes.extend_from_slice(&fp.to_le_bytes());
        bytes.extend_from_slice(&bomb);
        assert!(matches!(
            decode::<String>(&bytes, fp, &c),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn oversized_values_are_refused() {
        let c = CodecConfig {
            max_size: 100,
            ..CodecConfig::default()
        };
        let v = "x".repeat(1000);
        assert!(matches!(
            encode(&v, 0, Format::Postcard, Compression::Auto, None, &c),
            Err(EncodeError::TooLarge { .. })
        ));
    }
}
