//! What the commands print: human tables (comfy-table) and the shapes
//! `--json` serializes.

use std::fmt::Write as _;

use cache_core::{
    BreakerState, ClusterStats, EntryInfo, FunctionKind, InstanceStats, NamespaceStats, Removal,
    Stats,
};
use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{CellAlignment, ContentArrangement, Table};
use serde::Serialize;

/// A table whose first `text` columns are left-aligned, the rest (figures) right.
pub(crate) fn table(text: usize, header: &[&str]) -> Table {
    let mut t = Table::new();
    // Fitted to the terminal when it has a usable width; a terminal that
    // reports none (0 columns under some wrappers) would squash every column.
    let arrangement = match crossterm::terminal::size() {
        Ok((width, _)) if width >= 60 => ContentArrangement::Dynamic,
        _ => ContentArrangement::Disabled,
    };
    t.load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(arrangement)
        .set_header(header.iter().copied());
    for i in text..header.len() {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// `1234567` as `1,234,567`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

pub(crate) fn percent(rate: f64) -> String {
    format!("{:.1} %", rate * 100.0)
}

fn millis(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..120_000 => format!("{:.1} s", ms as f64 / 1e3),
        120_000..7_200_000 => format!("{:.1} min", ms as f64 / 6e4),
        _ => format!("{:.1} h", ms as f64 / 3.6e6),
    }
}

pub(crate) fn breaker(b: Option<BreakerState>) -> &'static str {
    match b {
        Some(BreakerState::Open) => "open",
        Some(BreakerState::HalfOpen) => "half-open",
        Some(_) => "closed",
        None => "-",
    }
}

/// `host/pid`, or the instance id when the host is unknown.
pub(crate) fn who(i: &InstanceStats) -> String {
    match &i.host {
        Some(h) => format!("{h}/{}", i.pid),
        None => format!("pid {} ({})", i.pid, short(&i.instance)),
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

pub(crate) fn stats(all: &ClusterStats) -> String {
    let mut out = String::new();
    let t = &all.total;
    if let Some(r) = &t.redis {
        let _ = writeln!(
            out,
            "Redis: {} used, {} keys in the database, {} entries of this cache{}",
            bytes(r.used_memory),
            count(r.db_keys),
            count(r.entries),
            if r.entries_exact { "" } else { " (estimated)" }
        );
    }
    let _ = writeln!(out, "{} live instance(s)", all.instances.len());
    let mut rows = table(
        1,
        &[
            "instance", "hit rate", "L1 hits", "L2 hits", "misses", "errors", "sets", "breaker",
        ],
    );
    let row = |name: String, s: &Stats| {
        vec![
            name,
            percent(s.hit_rate),
            count(s.l1_hits),
            count(s.l2_hits),
            count(s.misses),
            count(s.errors),
            count(s.sets),
            breaker(s.breaker).to_owned(),
        ]
    };
    for i in &all.instances {
        rows.add_row(row(who(i), &i.stats));
    }
    rows.add_row(row("total".into(), t));
    let _ = writeln!(out, "{rows}");
    let functions: Vec<_> = t
        .functions
        .iter()
        .filter(|f| f.kind == FunctionKind::Cached)
        .collect();
    if !functions.is_empty() {
        let mut ft = table(
            2,
            &[
                "function",
                "key",
                "hit rate",
                "hits",
                "misses",
                "origin mean",
            ],
        );
        for f in functions {
            let lookups = f.hits + f.misses + f.coalesced;
            let rate = if lookups == 0 {
                0.0
            } else {
                (f.hits + f.coalesced) as f64 / lookups as f64
            };
            ft.add_row(vec![
                f.function.clone(),
                f.label.clone(),
                percent(rate),
                count(f.hits),
                count(f.misses),
                format!("{:.1} ms", f.mean_origin_us / 1e3),
            ]);
        }
        let _ = writeln!(out, "{ft}");
    }
    let invalidating: Vec<_> = t
        .functions
        .iter()
        .filter(|f| f.kind != FunctionKind::Cached)
        .collect();
    if !invalidating.is_empty() {
        let mut it = table(
            2,
            &["function", "patterns / key", "calls", "entries removed"],
        );
        for f in invalidating {
            it.add_row(vec![
                f.function.clone(),
                f.label.clone(),
                count(f.invalidations.max(f.sets)),
                count(f.invalidated_entries),
            ]);
        }
        let _ = writeln!(out, "{it}");
    }
    out
}

pub(crate) fn namespaces(ns: &Vec<NamespaceStats>) -> String {
    if ns.is_empty() {
        return "no entries\n".into();
    }
    let mut t = table(1, &["prefix", "entries", "exact"]);
    for n in ns {
        let prefix = if n.prefix.is_empty() {
            "(no prefix)".to_owned()
        } else {
            format!("{}*", n.prefix)
        };
        t.add_row(vec![
            prefix,
            count(n.entries),
            if n.exact { "yes" } else { "estimated" }.to_owned(),
        ]);
    }
    format!("{t}\n")
}

pub(crate) fn entry(info: &EntryInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "key        {}", info.key);
    let _ = writeln!(
        out,
        "ttl        {}",
        info.ttl_ms.map_or("none (no expiry)".to_owned(), millis)
    );
    let _ = writeln!(out, "stored     {}", bytes(info.stored_bytes as u64));
    if let Some(p) = &info.problem {
        let _ = writeln!(out, "not a valid cache entry: {p}");
        return out;
    }
    let several = info.values.len() > 1;
    for (n, v) in info.values.iter().enumerate() {
        if several {
            let _ = writeln!(
                out,
                "-- value {} of {} (one per build)",
                n + 1,
                info.values.len()
            );
        }
        let _ = writeln!(out, "format     {}", v.format);
        let _ = writeln!(out, "compressed {}", v.compression);
        let _ = writeln!(out, "type       fingerprint {}", v.fingerprint);
        let fresh = v.fresh_ms.map_or("no expiry".to_owned(), millis);
        if v.stale_window_ms > 0 {
            let _ = writeln!(
                out,
                "fresh      {fresh}, then stale for {}",
                millis(v.stale_window_ms)
            );
        } else {
            let _ = writeln!(out, "fresh      {fresh}");
        }
        if let Some(ms) = v.compute_ms {
            let _ = writeln!(out, "computed   in {}", millis(u64::from(ms)));
        }
        let _ = writeln!(out, "payload    {}", bytes(v.payload_bytes as u64));
        match (&v.payload, &v.problem) {
            (_, Some(p)) => {
                let _ = writeln!(out, "does not decode: {p}");
                let _ = writeln!(out, "head       {}", v.hex_head);
            }
            (Some(value), None) => {
                let pretty = serde_json::to_string_pretty(value).unwrap_or_default();
                let _ = writeln!(out, "{pretty}");
            }
            (None, None) => {
                let _ = writeln!(out, "head       {}", v.hex_head);
            }
        }
    }
    out
}

/// One pattern's or tag's invalidation.
#[derive(Debug, Serialize)]
pub(crate) struct Invalidated {
    #[serde(skip_serializing_if = "Option::is_none")]
    pattern: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<String>,
    removed: u64,
    queued: bool,
}

impl Invalidated {
    pub(crate) fn pattern(p: &str, r: Removal) -> Invalidated {
        Invalidated {
            pattern: Some(p.to_owned()),
            tag: None,
            removed: r.removed,
            queued: r.queued,
        }
    }

    pub(crate) fn tag(t: &str, r: Removal) -> Invalidated {
        Invalidated {
            pattern: None,
            tag: Some(t.to_owned()),
            removed: r.removed,
            queued: r.queued,
        }
    }
}

pub(crate) fn invalidated(done: &Vec<Invalidated>) -> String {
    let mut t = table(1, &["pattern or tag", "removed"]);
    let mut total = 0;
    for d in done {
        let name = match (&d.pattern, &d.tag) {
            (Some(p), _) => p.clone(),
            (None, Some(t)) => format!("tag {t}"),
            (None, None) => String::new(),
        };
        total += d.removed;
        t.add_row(vec![name, count(d.removed)]);
    }
    format!(
        "{t}\n{} entries removed; every instance drops its in-process copies\n",
        count(total)
    )
}

#[derive(Debug, Serialize)]
pub(crate) struct Cleared {
    removed: u64,
}

impl From<Removal> for Cleared {
    fn from(r: Removal) -> Cleared {
        Cleared { removed: r.removed }
    }
}

pub(crate) fn cleared(c: &Cleared) -> String {
    format!(
        "cleared: {} entries removed, on every instance\n",
        count(c.removed)
    )
}

#[derive(Debug, Serialize)]
pub(crate) struct HealthReport {
    pub(crate) status: &'static str,
    pub(crate) redis_latency_us: f64,
    pub(crate) instances: usize,
    pub(crate) problems: Vec<String>,
}

pub(crate) fn health(h: &HealthReport) -> String {
    let mut out = format!(
        "{}: Redis answered in {:.0} µs, {} live instance(s)\n",
        h.status, h.redis_latency_us, h.instances
    );
    if h.status == "unreachable" {
        out = format!("{}\n", h.status);
    }
    for p in &h.problems {
        let _ = writeln!(out, "  {p}");
    }
    out
}
