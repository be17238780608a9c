//! The outage journal: invalidations queued during a Redis outage, kept in
//! a file so that an instance killed before Redis returns loses none of
//! them (opt-in: [`CacheBuilder::outage_journal`](crate::CacheBuilder::outage_journal)).
//!
//! Each instance appends to a file of its own in the directory the user
//! names, `<prefix>.<slot>.journal`, held with an exclusive file lock for
//! as long as the instance lives. Every queued invalidation is appended and
//! `fdatasync`ed before the call that made it returns; an invalidation that
//! reaches Redis is marked done (not synced: replaying it again is
//! harmless, invalidations are idempotent); once the queue is empty the file
//! is truncated. An instance that opens the directory takes the first slot
//! no live instance holds, and adopts the pending invalidations of every
//! slot it can lock (those of instances that died): they join its queue and
//! are replayed as soon as Redis answers. Its size is bounded like the
//! queue's: past [`MAX_PENDING`](super::queue::MAX_PENDING) items the queue
//! becomes "everything under the prefix", one record.
//!
//! Records, so that a torn last write (a crash in the middle) is detected
//! and ignored:
//!
//! ```text
//! +<session>:<id> <K|P|B|T|U> <bucket or -> <length>\n<text>\n        queued
//! -<session>:<id>\n                                                    done
//! !\n                                                                  everything
//! ```
//!
//! The text is a key (`K`), a pattern (`P`, or `B` for its share in one
//! cluster bucket) or a tag (`T`, or `U` for its share in one bucket).
//!
//! The session is random per process, so ids of a dead instance never meet
//! those of the one that adopted its file. No crate does this small job; a
//! database (sled, redb) would be a large dependency for an append-only file
//! that is empty outside outages.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::deferred::{Deferred, Scope};

/// How many instances may share one directory.
const SLOTS: usize = 64;

/// Why the journal cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum JournalError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{dir}: all {SLOTS} journal slots are held by live instances")]
    Full { dir: PathBuf },
}

/// What a journal holds: queued invalidations, oldest first, and whether
/// the queue had become "everything".
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Pending {
    pub(crate) items: Vec<(Deferred, Scope)>,
    pub(crate) everything: bool,
    /// The records' ids, to mark them done once re-queued.
    ids: Vec<String>,
}

/// This instance's journal file.
#[derive(Debug)]
pub(crate) struct Journal {
    file: File,
    path: PathBuf,
    session: u64,
    /// Whether anything was written since the last truncation.
    dirty: bool,
    /// What [`settle`](Self::settle) closes: this slot's records from
    /// before, and the dead instances' slots, locked until then.
    before: Vec<String>,
    adopted: Vec<(File, PathBuf)>,
}

impl Journal {
    /// Opens this instance's slot in `dir` for a cache with `prefix`, and
    /// reads what the dead instances' slots (this one's included) left.
    pub(crate) fn open(dir: &Path, prefix: &str) -> Result<(Journal, Pending), JournalError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| JournalError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let name = sanitize(prefix);
        let mut mine: Option<(File, PathBuf)> = None;
        let mut left = Pending::default();
        let mut adopted = Vec::new();
        let mut own_ids = Vec::new();
        for slot in 0..SLOTS {
            let path = dir.join(format!("{name}.{slot}.journal"));
            let mut file = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .open(&path)
                .map_err(io(&path))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => continue,
                Err(std::fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
            }
            let pending = read(&mut file).map_err(io(&path))?;
            left.everything |= pending.everything;
            left.items.extend(pending.items);
            if mine.is_none() {
                own_ids = pending.ids;
                mine = Some((file, path));
            } else if pending.everything || !pending.ids.is_empty() {
                adopted.push((file, path));
            }
        }
        let Some((file, path)) = mine else {
            return Err(JournalError::Full {
                dir: dir.to_owned(),
            });
        };
        if !left.items.is_empty() || left.everything {
            tracing::warn!(
                journal = %path.display(),
                pending = left.items.len(),
                everything = left.everything,
                "invalidations left by an instance that stopped during a Redis outage: replaying them"
            );
        }
        let journal = Journal {
            file,
            path,
            session: crate::id::random_id(),
            dirty: true,
            before: std::mem::take(&mut own_ids),
            adopted,
        };
        Ok((journal, left))
    }

    /// The pending invalidations [`open`](Self::open) returned are queued
    /// again (so in this slot, under new ids): marks their old records
    /// done and empties the dead instances' slots. A crash before this
    /// only replays them twice.
    pub(crate) fn settle(&mut self) -> io::Result<()> {
        if !self.before.is_empty() {
            let mut records = String::new();
            for id in self.before.drain(..) {
                records.push('-');
                records.push_str(&id);
                records.push('\n');
            }
            self.write(records.as_bytes(), true)?;
        }
        for (file, path) in self.adopted.drain(..) {
            file.set_len(0)
                .and_then(|()| file.sync_data())
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        }
        Ok(())
    }

    /// Appends a queued invalidation and syncs it to disk.
    pub(crate) fn add(&mut self, id: u64, what: &Deferred, scope: Scope) -> io::Result<()> {
        let (kind, bucket, text) = match what {
            Deferred::Key(k) => ('K', None, k),
            Deferred::Pattern(p) => ('P', None, p),
            Deferred::PatternIn(b, p) => ('B', Some(*b), p),
            Deferred::Tag(t) => ('T', None, t),
            Deferred::TagIn(b, t) => ('U', Some(*b), t),
        };
        let bucket = bucket
            .or(match scope {
                Scope::Bucket(b) => Some(b),
                Scope::All => None,
            })
            .map_or_else(|| "-".to_owned(), |b| b.to_string());
        let mut record = format!(
            "+{:016x}:{id} {kind} {bucket} {}\n",
            self.session,
            text.len()
        )
        .into_bytes();
        record.extend_from_slice(text.as_bytes());
        record.push(b'\n');
        self.write(&record, true)
    }

    /// The queue became "everything under the prefix".
    pub(crate) fn everything(&mut self) -> io::Result<()> {
        self.write(b"!\n", true)
    }

    /// The invalidation `id` reached Redis.
    pub(crate) fn done(&mut self, id: u64) -> io::Result<()> {
        let record = format!("-{:016x}:{id}\n", self.session);
        self.write(record.as_bytes(), false)
    }

    /// The queue is empty: so is the file.
    pub(crate) fn clear(&mut self) -> io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        self.file.set_len(0)?;
        self.file.sync_data()?;
        self.dirty = false;
        Ok(())
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, record: &[u8], sync: bool) -> io::Result<()> {
        self.dirty = true;
        self.file.write_all(record)?;
        if sync {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

/// A prefix as a file name: letters, digits, `-` and `_` kept, the rest
/// hex-escaped, so two prefixes never share a file.
fn sanitize(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 6);
    out.push_str("cache-");
    for b in prefix.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

/// The records of `file` not marked done; a torn last record is ignored.
fn read(file: &mut File) -> io::Result<Pending> {
    file.seek(SeekFrom::Start(0))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(parse(&bytes))
}

fn parse(bytes: &[u8]) -> Pending {
    let mut added: Vec<(String, Deferred, Scope)> = Vec::new();
    let mut done: HashSet<String> = HashSet::new();
    let mut everything = false;
    let mut rest = bytes;
    while let Some(end) = rest.iter().position(|b| *b == b'\n') {
        let line = &rest[..end];
        let after = &rest[end + 1..];
        match line.first() {
            Some(b'+') => {
                let Some((id, kind, bucket, len)) = header(&line[1..]) else {
                    break;
                };
                if after.len() < len + 1 || after[len] != b'\n' {
                    break; // torn
                }
                let Ok(text) = std::str::from_utf8(&after[..len]) else {
                    break;
                };
                let text = text.to_owned();
                let what = match (kind, bucket) {
                    (b'K', _) => Deferred::Key(text),
                    (b'P', _) => Deferred::Pattern(text),
                    (b'B', Some(b)) => Deferred::PatternIn(b, text),
                    (b'T', _) => Deferred::Tag(text),
                    (b'U', Some(b)) => Deferred::TagIn(b, text),
                    _ => break,
                };
                let scope = bucket.map_or(Scope::All, Scope::Bucket);
                added.push((id, what, scope));
                rest = &after[len + 1..];
                continue;
            }
            Some(b'-') => {
                done.insert(String::from_utf8_lossy(&line[1..]).into_owned());
            }
            Some(b'!') => everything = true,
            _ => break,
        }
        rest = after;
    }
    let mut pending = Pending {
        everything,
        ..Pending::default()
    };
    for (id, what, scope) in added {
        if !done.contains(&id) {
            pending.items.push((what, scope));
            pending.ids.push(id);
        }
    }
    pending
}

/// `<session>:<id> <kind> <bucket> <len>`.
fn header(line: &[u8]) -> Option<(String, u8, Option<usize>, usize)> {
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    let id = parts.next()?.to_owned();
    let kind = match parts.next()?.as_bytes() {
        [k @ (b'K' | b'P' | b'B' | b'T' | b'U')] => *k,
        _ => return None,
    };
    let bucket = match parts.next()? {
        "-" => None,
        b => Some(b.parse::<usize>().ok()?),
    };
    let len = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some((id, kind, bucket, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn what_was_queued_and_not_done_survives_the_process() {
        let d = dir();
        {
            let (mut j, left) = Journal::open(d.path(), "hr").unwrap();
            assert_eq!(left, Pending::default());
            j.add(1, &Deferred::Key("hr:employee:1".into()), Scope::All)
                .unwrap();
            j.add(2, &Deferred::Pattern("hr:user:*".into()), Scope::All)
                .unwrap();
            j.add(
                3,
                &Deferred::PatternIn(7, "hr:team:1:*".into()),
                Scope::Bucket(7),
            )
            .unwrap();
            j.add(
                4,
                &Deferred::Key("with\nnewline\nkey".to_owned()),
                Scope::All,
            )
            .unwrap();
            j.add(5, &Deferred::Tag("tenant:7".into()), Scope::All)
                .unwrap();
            j.add(6, &Deferred::TagIn(3, "tenant:8".into()), Scope::Bucket(3))
                .unwrap();
            j.done(2).unwrap();
            // Dropped without clearing: the process died.
        }
        let (j, left) = Journal::open(d.path(), "hr").unwrap();
        assert_eq!(
            j.before.len(),
            5,
            "their records, to mark done once queued again"
        );
        assert_eq!(
            left.items,
            vec![
                (Deferred::Key("hr:employee:1".into()), Scope::All),
                (
                    Deferred::PatternIn(7, "hr:team:1:*".into()),
                    Scope::Bucket(7)
                ),
                (Deferred::Key("with\nnewline\nkey".to_owned()), Scope::All),
                (Deferred::Tag("tenant:7".into()), Scope::All),
                (Deferred::TagIn(3, "tenant:8".into()), Scope::Bucket(3)),
            ]
        );
        assert!(!left.everything);
    }

    #[test]
    fn a_live_instance_keeps_its_slot_and_a_dead_ones_is_adopted() {
        let d = dir();
        let (mut live, _) = Journal::open(d.path(), "p").unwrap();
        live.add(1, &Deferred::Key("p:live".into()), Scope::All)
            .unwrap();
        {
            let (mut dead, _) = Journal::open(d.path(), "p").unwrap();
            assert_ne!(dead.path(), live.path());
            dead.add(1, &Deferred::Key("p:dead".into()), Scope::All)
                .unwrap();
            dead.everything().unwrap();
        }
        let (mut next, left) = Journal::open(d.path(), "p").unwrap();
        assert_eq!(
            left.items,
            vec![(Deferred::Key("p:dead".into()), Scope::All)]
        );
        assert!(left.everything);
        // The queue takes them again (new ids), then the journal settles.
        next.add(1, &Deferred::Key("p:dead".into()), Scope::All)
            .unwrap();
        next.everything().unwrap();
        next.settle().unwrap();
        drop(next);
        // Once, not twice: a fourth instance finds each still pending item one time.
        let (_fourth, left) = Journal::open(d.path(), "p").unwrap();
        assert_eq!(
            left.items,
            vec![(Deferred::Key("p:dead".into()), Scope::All)]
        );
        assert!(left.everything);
        // Other prefixes have files of their own.
        let (_, other) = Journal::open(d.path(), "q").unwrap();
        assert_eq!(other, Pending::default());
    }

    #[test]
    fn an_empty_queue_empties_the_file_and_a_torn_record_is_ignored() {
        let d = dir();
        let (mut j, _) = Journal::open(d.path(), "p").unwrap();
        j.add(1, &Deferred::Key("p:a".into()), Scope::All).unwrap();
        j.clear().unwrap();
        assert_eq!(std::fs::metadata(j.path()).unwrap().len(), 0);
        j.add(2, &Deferred::Key("p:b".into()), Scope::All).unwrap();
        // A crash in the middle of the next record.
        j.file
            .write_all(b"+0000000000000001:3 K - 40\np:partial")
            .unwrap();
        let path = j.path().to_owned();
        drop(j);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            parse(&bytes).items,
            vec![(Deferred::Key("p:b".into()), Scope::All)]
        );
        for garbage in [
            &b"garbage\n"[..],
            b"+x K - nope\n",
            b"+1 Z - 1\na\n",
            b"\xff\xfe",
        ] {
            assert_eq!(parse(garbage), Pending::default());
        }
    }

    #[test]
    fn prefixes_never_share_a_file() {
        assert_ne!(sanitize("a.b"), sanitize("a_2eb"));
        assert_ne!(sanitize("a/b"), sanitize("a_b"));
        assert_eq!(sanitize("hr-app"), "cache-hr-app");
    }
}
