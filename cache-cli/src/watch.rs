//! `watch`: every instance's rates over the last interval, redrawn.
//!
//! On a terminal it takes the alternate screen and raw mode (restored on
//! every exit path by a guard) and quits on `q`, Esc or Ctrl-C. Elsewhere
//! (a pipe, a test) it prints one frame after another, or one JSON object
//! per line with `--json`.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use cache_core::{Cache, ClusterStats, Stats};
use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::{cursor, execute, terminal};
use serde::Serialize;

use crate::view::{self, count, percent};
use crate::{Failure, others};

/// One instance's rates between its last two snapshots.
#[derive(Debug, Clone, Serialize)]
struct Rates {
    instance: String,
    /// The span the rates are over: the instance's reporting period
    /// (0 until it has written two snapshots while watched).
    over_s: f64,
    calls_per_s: f64,
    hit_rate: Option<f64>,
    l1_hits_per_s: f64,
    l2_hits_per_s: f64,
    misses_per_s: f64,
    errors_per_s: f64,
    breaker: &'static str,
}

#[derive(Debug, Serialize)]
struct Frame {
    elapsed_s: f64,
    redis_used_memory: Option<u64>,
    redis_db_keys: Option<u64>,
    instances: Vec<Rates>,
    total: Rates,
}

fn rates(name: String, now: &Stats, before: Option<&Stats>, secs: f64) -> Rates {
    let secs = secs.max(1e-3);
    let d = |f: fn(&Stats) -> u64| {
        let was = before.map_or(f(now), f);
        f(now).saturating_sub(was) as f64 / secs
    };
    let hits = d(|s| s.hits) + d(|s| s.coalesced);
    let misses = d(|s| s.misses);
    Rates {
        instance: name,
        over_s: if before.is_some() { secs } else { 0.0 },
        calls_per_s: hits + misses,
        hit_rate: (hits + misses > 0.0).then(|| hits / (hits + misses)),
        l1_hits_per_s: d(|s| s.l1_hits),
        l2_hits_per_s: d(|s| s.l2_hits),
        misses_per_s: misses,
        errors_per_s: d(|s| s.errors),
        breaker: view::breaker(now.breaker),
    }
}

/// What `watch` remembers of an instance: its last snapshot, and the
/// rates between it and the one before.
struct Seen {
    written_at_ms: u64,
    stats: Stats,
    rates: Rates,
}

/// Instances report every `stats_interval` (5 s by default), whatever the
/// refresh: rates are taken between an instance's own snapshots, by their
/// timestamps, and kept until its next one.
#[derive(Default)]
struct Tracker {
    seen: HashMap<String, Seen>,
}

impl Tracker {
    fn frame(&mut self, now: &ClusterStats, elapsed: f64) -> Frame {
        let mut instances = Vec::with_capacity(now.instances.len());
        for i in &now.instances {
            let name = view::who(i);
            let rates = match self.seen.get(&i.instance) {
                Some(seen) if seen.written_at_ms == i.written_at_ms => seen.rates.clone(),
                Some(seen) => {
                    let secs = i.written_at_ms.saturating_sub(seen.written_at_ms) as f64 / 1e3;
                    rates(name, &i.stats, Some(&seen.stats), secs)
                }
                None => rates(name, &i.stats, None, 1.0),
            };
            self.seen.insert(
                i.instance.clone(),
                Seen {
                    written_at_ms: i.written_at_ms,
                    stats: i.stats.clone(),
                    rates: rates.clone(),
                },
            );
            instances.push(rates);
        }
        // Instances that left are forgotten.
        self.seen
            .retain(|id, _| now.instances.iter().any(|i| &i.instance == id));
        let sum = |f: fn(&Rates) -> f64| instances.iter().map(f).sum::<f64>();
        let (calls, misses) = (sum(|r| r.calls_per_s), sum(|r| r.misses_per_s));
        let total = Rates {
            instance: "total".into(),
            over_s: instances.iter().map(|r| r.over_s).fold(0.0, f64::max),
            calls_per_s: calls,
            hit_rate: (calls > 0.0).then(|| (calls - misses) / calls),
            l1_hits_per_s: sum(|r| r.l1_hits_per_s),
            l2_hits_per_s: sum(|r| r.l2_hits_per_s),
            misses_per_s: misses,
            errors_per_s: sum(|r| r.errors_per_s),
            breaker: view::breaker(now.total.breaker),
        };
        Frame {
            elapsed_s: elapsed,
            redis_used_memory: now.total.redis.map(|r| r.used_memory),
            redis_db_keys: now.total.redis.map(|r| r.db_keys),
            instances,
            total,
        }
    }
}

fn human(f: &Frame) -> String {
    let per_s = |v: f64| count(v.round() as u64);
    let mut t = view::table(
        1,
        &[
            "instance",
            "calls/s",
            "hit rate",
            "L1 hits/s",
            "L2 hits/s",
            "misses/s",
            "errors/s",
            "breaker",
        ],
    );
    for r in f.instances.iter().chain(std::iter::once(&f.total)) {
        t.add_row(vec![
            r.instance.clone(),
            per_s(r.calls_per_s),
            r.hit_rate.map_or("-".into(), percent),
            per_s(r.l1_hits_per_s),
            per_s(r.l2_hits_per_s),
            per_s(r.misses_per_s),
            per_s(r.errors_per_s),
            r.breaker.to_owned(),
        ]);
    }
    let redis = match (f.redis_used_memory, f.redis_db_keys) {
        (Some(m), Some(k)) => format!(
            ", Redis {} MiB, {} keys",
            (m as f64 / 1_048_576.0 * 10.0).round() / 10.0,
            count(k)
        ),
        _ => String::new(),
    };
    let over = if f.total.over_s > 0.0 {
        format!("rates over each instance's last {:.1} s", f.total.over_s)
    } else {
        "rates from each instance's next report".to_owned()
    };
    format!(
        "t+{:.0}s, {} live instance(s){redis}; {over}\n{t}\n",
        f.elapsed_s,
        f.instances.len()
    )
}

/// Restores the terminal however `watch` ends.
struct Screen;

impl Screen {
    fn enter() -> Result<Screen, Failure> {
        terminal::enable_raw_mode()
            .map_err(|e| Failure::new(format!("cannot use the terminal: {e}")))?;
        let screen = Screen;
        execute!(
            std::io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide
        )
        .map_err(|e| Failure::new(format!("cannot use the terminal: {e}")))?;
        Ok(screen)
    }

    fn draw(&self, text: &str) {
        let mut out = std::io::stdout();
        let _ = execute!(
            out,
            cursor::MoveTo(0, 0),
            terminal::Clear(terminal::ClearType::All)
        );
        // Raw mode: lines need their carriage return.
        let _ = write!(out, "{}", text.replace('\n', "\r\n"));
        let _ = out.flush();
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = execute!(
            std::io::stdout(),
            cursor::Show,
            terminal::LeaveAlternateScreen
        );
        let _ = terminal::disable_raw_mode();
    }
}

/// Waits `d`, or less when a quit key comes: true to quit.
fn wait_or_quit(d: Duration) -> bool {
    let until = Instant::now() + d;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        match event::poll(left.min(Duration::from_millis(100))) {
            Ok(true) => {
                if let Ok(Event::Key(k)) = event::read()
                    && k.kind == KeyEventKind::Press
                    && (matches!(k.code, KeyCode::Char('q') | KeyCode::Esc)
                        || (k.code == KeyCode::Char('c')
                            && k.modifiers.contains(KeyModifiers::CONTROL)))
                {
                    return true;
                }
            }
            Ok(false) => {}
            Err(_) => return true,
        }
    }
}

pub(crate) async fn run(
    cache: &Cache,
    every: Duration,
    iterations: Option<u64>,
    tty: bool,
    json: bool,
) -> Result<(), Failure> {
    let started = Instant::now();
    let screen = if tty { Some(Screen::enter()?) } else { None };
    if let Some(s) = &screen {
        s.draw("collecting the first interval... (q to quit)\n");
    }
    let mut tracker = Tracker::default();
    tracker.frame(&others(cache.stats_all().await?), 0.0);
    let mut shown = 0u64;
    loop {
        if iterations.is_some_and(|n| shown >= n) {
            return Ok(());
        }
        match &screen {
            Some(_) => {
                if tokio::task::block_in_place(|| wait_or_quit(every)) {
                    return Ok(());
                }
            }
            None => tokio::time::sleep(every).await,
        }
        let now = others(cache.stats_all().await?);
        let f = tracker.frame(&now, started.elapsed().as_secs_f64());
        shown += 1;
        match &screen {
            Some(s) => s.draw(&format!("{}q to quit\n", human(&f))),
            None if json => match serde_json::to_string(&f) {
                Ok(line) => println!("{line}"),
                Err(e) => return Err(Failure::new(format!("cannot write JSON: {e}"))),
            },
            None => println!("{}", human(&f)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(hits: u64, misses: u64, errors: u64) -> Stats {
        let mut s = Stats::default();
        (s.hits, s.l1_hits, s.misses, s.errors) = (hits, hits, misses, errors);
        s
    }

    #[test]
    fn rates_are_over_the_interval_not_the_totals() {
        let before = stats(1_000, 1_000, 5);
        let now = stats(1_090, 1_010, 7);
        let r = rates("a".into(), &now, Some(&before), 2.0);
        assert_eq!(r.calls_per_s, 50.0);
        assert_eq!(r.hit_rate, Some(0.9));
        assert_eq!(
            (r.l1_hits_per_s, r.misses_per_s, r.errors_per_s),
            (45.0, 5.0, 1.0)
        );
        // A new instance (no earlier snapshot) starts at zero, not at its totals.
        assert_eq!(rates("b".into(), &now, None, 2.0).calls_per_s, 0.0);
        // A restarted instance (counters went down) does not go negative.
        assert_eq!(rates("c".into(), &before, Some(&now), 2.0).calls_per_s, 0.0);
    }

    fn cluster(written_at_ms: u64, hits: u64) -> ClusterStats {
        serde_json::from_value(serde_json::json!({
            "instances": [{
                "instance": "a", "host": "web-1", "pid": 7, "written_at_ms": written_at_ms,
                "stats": {"hits": hits, "l1_hits": hits},
            }],
            "total": {"hits": hits},
        }))
        .unwrap()
    }

    #[test]
    fn rates_follow_the_instances_snapshots_not_the_refreshes() {
        let mut t = Tracker::default();
        assert_eq!(t.frame(&cluster(10_000, 100), 0.0).total.calls_per_s, 0.0);
        // Refreshed before the instance wrote again: no new figures yet.
        assert_eq!(t.frame(&cluster(10_000, 100), 1.0).total.over_s, 0.0);
        // Its next snapshot, 5 s later: 500 calls over 5 s.
        let f = t.frame(&cluster(15_000, 600), 2.0);
        assert_eq!(
            (f.instances[0].over_s, f.instances[0].calls_per_s),
            (5.0, 100.0)
        );
        assert_eq!(f.instances[0].instance, "web-1/7");
        // Kept until the one after.
        assert_eq!(t.frame(&cluster(15_000, 600), 3.0).total.calls_per_s, 100.0);
    }
}
