//! The results: a table on stdout, JSON, and an SVG chart.
//!
//! The chart is written by hand: it is one shape (a panel of labelled
//! horizontal bars per case) and needs no text layout beyond a fixed-width
//! estimate. plotters, the crate made for charts, lays text out with a font
//! backend (`ttf` brings font-kit and the system's fontconfig, which a fresh
//! Debian machine lacks), for nothing this chart uses.

use std::fmt::Write as _;

use serde::Serialize;

use crate::measure::{Kind, Spec};

/// The whole run.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) mode: &'static str,
    pub(crate) command: String,
    pub(crate) machine: Machine,
    pub(crate) versions: Vec<(String, String)>,
    pub(crate) cases: Vec<Case>,
}

/// Where it ran.
#[derive(Debug, Serialize)]
pub(crate) struct Machine {
    pub(crate) cpu: String,
    pub(crate) cores: usize,
    pub(crate) memory_gib: f64,
    pub(crate) kernel: String,
    pub(crate) rustc: String,
    pub(crate) redis: String,
    pub(crate) unix_time: u64,
}

/// What a case's values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Unit {
    /// Seconds per call (printed as ns, µs, ms or s): lower is better.
    Seconds,
    /// Calls per second: higher is better.
    PerSecond,
    /// A count of origin calls: lower is better.
    OriginCalls,
}

/// One case: its rows and how to read them.
#[derive(Debug, Serialize)]
pub(crate) struct Case {
    pub(crate) id: &'static str,
    pub(crate) title: String,
    pub(crate) how: String,
    pub(crate) unit: Unit,
    /// The row the ratios divide by (`value / baseline value`, in every unit).
    pub(crate) baseline: Option<String>,
    pub(crate) rows: Vec<Row>,
}

/// One library's figure in a case.
#[derive(Debug, Serialize)]
pub(crate) struct Row {
    pub(crate) library: String,
    pub(crate) setup: String,
    pub(crate) format: String,
    pub(crate) kind: Kind,
    /// In the case's unit; for a bounded call, the bound.
    pub(crate) value: f64,
    /// The value did not finish: it is at least `value`.
    pub(crate) bounded: bool,
    pub(crate) ratio: Option<f64>,
    pub(crate) note: String,
    /// A few words the chart shows after the value.
    pub(crate) mark: String,
}

impl Row {
    pub(crate) fn new(spec: &Spec, value: f64) -> Row {
        Row {
            library: spec.library.clone(),
            setup: spec.setup.clone(),
            format: spec.format.clone(),
            kind: spec.kind,
            value,
            bounded: false,
            ratio: None,
            note: String::new(),
            mark: String::new(),
        }
    }

    pub(crate) fn note(mut self, note: impl Into<String>) -> Row {
        self.note = note.into();
        self
    }

    pub(crate) fn mark(mut self, mark: impl Into<String>) -> Row {
        self.mark = mark.into();
        self
    }

    pub(crate) fn bounded(mut self, bounded: bool) -> Row {
        self.bounded = bounded;
        self
    }

    fn label(&self) -> String {
        if self.setup.is_empty() {
            self.library.clone()
        } else {
            format!("{}: {}", self.library, self.setup)
        }
    }
}

impl Case {
    /// Fills in the ratios against the first row whose label starts with
    /// `baseline` (library name, or `library: setup`).
    pub(crate) fn with_ratios(mut self, baseline: &str) -> Case {
        let base = self
            .rows
            .iter()
            .find(|r| r.label().starts_with(baseline))
            .map(|r| (r.label(), r.value));
        if let Some((label, value)) = base
            && value > 0.0
        {
            for r in &mut self.rows {
                r.ratio = Some(r.value / value);
            }
            self.baseline = Some(label);
        }
        self
    }
}

/// `value` in the unit, for people.
pub(crate) fn display(unit: Unit, value: f64, bounded: bool) -> String {
    let s = match unit {
        Unit::Seconds => duration(value),
        Unit::PerSecond => format!("{}/s", thousands(value.round() as u64)),
        Unit::OriginCalls => thousands(value.round() as u64),
    };
    if bounded { format!("> {s}") } else { s }
}

pub(crate) fn duration(secs: f64) -> String {
    if secs < 1e-6 {
        format!("{:.0} ns", secs * 1e9)
    } else if secs < 1e-4 {
        format!("{:.1} µs", secs * 1e6)
    } else if secs < 1e-3 {
        format!("{:.0} µs", secs * 1e6)
    } else if secs < 1.0 {
        format!("{:.1} ms", secs * 1e3)
    } else {
        format!("{secs:.2} s")
    }
}

pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r >= 100.0 => format!("{r:.0}x"),
        Some(r) if r >= 10.0 => format!("{r:.1}x"),
        Some(r) => format!("{r:.2}x"),
        None => String::new(),
    }
}

impl Report {
    /// The table, as printed at the end of the run.
    pub(crate) fn table(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "\nmachine: {} ({} cores, {:.0} GiB), Linux {}, {}, redis-server {}; {} mode",
            m.cpu, m.cores, m.memory_gib, m.kernel, m.rustc, m.redis, self.mode
        );
        let versions: Vec<String> = self
            .versions
            .iter()
            .map(|(n, v)| format!("{n} {v}"))
            .collect();
        let _ = writeln!(out, "versions: {}", versions.join(", "));
        for case in &self.cases {
            let _ = writeln!(out, "\n== {}", case.title);
            let _ = writeln!(out, "   {}", case.how);
            if let Some(b) = &case.baseline {
                let _ = writeln!(out, "   ratio = value / ({b})");
            }
            let _ = writeln!(
                out,
                "   {:<58} {:<12} {:>14} {:>8}  note",
                "library: setup", "format", "value", "ratio"
            );
            for r in &case.rows {
                let _ = writeln!(
                    out,
                    "   {:<58} {:<12} {:>14} {:>8}  {}",
                    r.label(),
                    r.format,
                    display(case.unit, r.value, r.bounded),
                    ratio(r.ratio),
                    r.note
                );
            }
        }
        out
    }

    /// A Markdown version of the table, for README.
    pub(crate) fn markdown(&self) -> String {
        let mut out = String::new();
        for case in &self.cases {
            let _ = writeln!(out, "**{}** ({})\n", case.title, case.how);
            let _ = writeln!(out, "| library: setup | format | value | ratio | note |");
            let _ = writeln!(out, "|---|---|---|---|---|");
            for r in &case.rows {
                let label = r.label().replace('|', "\\|");
                let (b0, b1) = if r.kind == Kind::Ours {
                    ("**", "**")
                } else {
                    ("", "")
                };
                let _ = writeln!(
                    out,
                    "| {b0}{label}{b1} | {} | {} | {} | {} |",
                    r.format,
                    display(case.unit, r.value, r.bounded),
                    ratio(r.ratio),
                    r.note.replace('|', "\\|")
                );
            }
            if let Some(b) = &case.baseline {
                let _ = writeln!(out, "\nratio = value / ({b})");
            }
            out.push('\n');
        }
        out
    }

    /// The chart: one panel of horizontal bars per case.
    pub(crate) fn svg(&self) -> String {
        const W: f64 = 1000.0;
        const BAR_X: f64 = 450.0;
        const BAR_W: f64 = 400.0;
        const ROW_H: f64 = 19.0;
        let mut body = String::new();
        let mut y = 64.0;
        for case in &self.cases {
            let log = case.unit != Unit::PerSecond;
            let values: Vec<f64> = case
                .rows
                .iter()
                .map(|r| r.value)
                .filter(|v| *v > 0.0)
                .collect();
            let hi = values.iter().copied().fold(f64::MIN, f64::max);
            let lo = values.iter().copied().fold(f64::MAX, f64::min) / 4.0;
            let _ = writeln!(
                body,
                r#"<text x="10" y="{y}" class="t">{}</text>"#,
                esc(&case.title)
            );
            let scale = if log { "log scale" } else { "linear scale" };
            let better = match case.unit {
                Unit::PerSecond => "longer is better",
                _ => "shorter is better",
            };
            let _ = writeln!(
                body,
                r#"<text x="10" y="{}" class="s">{} ({scale}, {better})</text>"#,
                y + 15.0,
                esc(&case.how)
            );
            y += 24.0;
            for r in &case.rows {
                let frac = if r.value <= 0.0 || hi <= 0.0 {
                    0.0
                } else if log {
                    if hi <= lo {
                        1.0
                    } else {
                        (r.value / lo).ln() / (hi / lo).ln()
                    }
                } else {
                    r.value / hi
                };
                let w = (frac.clamp(0.0, 1.0) * BAR_W).max(2.0);
                let class = match r.kind {
                    Kind::Ours => "o",
                    Kind::Raw => "r",
                    Kind::Peer => "p",
                };
                let label = truncate(&r.label(), 72);
                let _ = writeln!(
                    body,
                    r#"<text x="{}" y="{}" class="l">{}</text>"#,
                    BAR_X - 8.0,
                    y + 13.0,
                    esc(&label)
                );
                let hatch = if r.bounded {
                    r#" fill-opacity="0.45""#
                } else {
                    ""
                };
                let _ = writeln!(
                    body,
                    r#"<rect x="{BAR_X}" y="{}" width="{w:.1}" height="{}" class="{class}"{hatch}/>"#,
                    y + 2.0,
                    ROW_H - 5.0
                );
                let mut text = display(case.unit, r.value, r.bounded);
                if let Some(x) = r.ratio {
                    text.push_str(&format!("  ({})", ratio(Some(x))));
                }
                if !r.mark.is_empty() {
                    text.push_str(&format!("  {}", r.mark));
                }
                let _ = writeln!(
                    body,
                    r#"<text x="{}" y="{}" class="v">{}</text>"#,
                    BAR_X + w + 6.0,
                    y + 13.0,
                    esc(&text)
                );
                y += ROW_H;
            }
            y += 22.0;
        }
        let m = &self.machine;
        let machine = format!(
            "{} mode · {} ({} cores, {:.0} GiB) · Linux {} · redis-server {} · {}",
            self.mode, m.cpu, m.cores, m.memory_gib, m.kernel, m.redis, m.rustc
        );
        let h = y + 10.0;
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">"#
        );
        svg.push_str(
            "<style>.t{font-size:14px;font-weight:bold}.s{font-size:11px;fill:#555}\
             .l{font-size:11px;text-anchor:end}.v{font-size:11px}.h{font-size:16px;font-weight:bold}\
             .o{fill:#e8590c}.r{fill:#868e96}.p{fill:#1971c2}</style>\n",
        );
        let _ = writeln!(svg, r#"<rect width="{W}" height="{h}" fill="white"/>"#);
        let _ = writeln!(
            svg,
            r#"<text x="10" y="22" class="h">cache-rs beside raw moka / redis-rs and the Rust peers, one run</text>"#
        );
        let _ = writeln!(
            svg,
            r#"<text x="10" y="40" class="s">{}</text>"#,
            esc(&machine)
        );
        let legend = [
            ("o", "cache-rs"),
            ("r", "raw building block"),
            ("p", "peer library"),
        ];
        let mut x = 620.0;
        for (class, name) in legend {
            let _ = writeln!(
                svg,
                r#"<rect x="{x}" y="12" width="12" height="12" class="{class}"/><text x="{}" y="22" class="v">{name}</text>"#,
                x + 16.0
            );
            x += 16.0 + 7.0 * name.len() as f64 + 18.0;
        }
        svg.push_str(&body);
        svg.push_str("</svg>\n");
        svg
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(duration(612e-9), "612 ns");
        assert_eq!(duration(31.25e-6), "31.2 µs");
        assert_eq!(duration(0.0521), "52.1 ms");
        assert_eq!(duration(9.45), "9.45 s");
        assert_eq!(display(Unit::Seconds, 2.0, true), "> 2.00 s");
    }

    #[test]
    fn ratios_are_against_the_named_row() {
        let spec = |lib: &str| Spec::new(lib, "x", "postcard", Kind::Peer);
        let case = Case {
            id: "t",
            title: "t".into(),
            how: String::new(),
            unit: Unit::Seconds,
            baseline: None,
            rows: vec![Row::new(&spec("a"), 2.0), Row::new(&spec("b"), 1.0)],
        }
        .with_ratios("b");
        assert_eq!(case.rows[0].ratio, Some(2.0));
        assert_eq!(case.baseline.as_deref(), Some("b: x"));
    }

    #[test]
    fn svg_escapes_labels() {
        let report = Report {
            mode: "quick",
            command: String::new(),
            machine: Machine {
                cpu: "c".into(),
                cores: 2,
                memory_gib: 1.0,
                kernel: "k".into(),
                rustc: "r".into(),
                redis: "7".into(),
                unix_time: 0,
            },
            versions: Vec::new(),
            cases: vec![Case {
                id: "t",
                title: "a <b> & c".into(),
                how: String::new(),
                unit: Unit::OriginCalls,
                baseline: None,
                rows: vec![Row::new(&Spec::new("x<y>", "", "", Kind::Ours), 1.0)],
            }],
        };
        let svg = report.svg();
        assert!(svg.contains("a &lt;b&gt; &amp; c"));
        assert!(svg.contains("x&lt;y&gt;"));
        assert!(!svg.contains("<b>"));
    }
}
