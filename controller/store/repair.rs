//! `clusvc store check|repair`: offline inspection and repair of an
//! embedded store the daemon refuses to open.
//!
//! [`check`] reads the snapshot and the log and says what the daemon would
//! do with them, changing nothing. [`repair`] keeps a copy of the damaged
//! files, then rebuilds the store from everything that still reads: the
//! snapshot (when intact), the log up to the damage and every intact
//! record after it (found by resynchronising on the next record whose
//! checksum holds and whose revision follows). It reports which revisions
//! were lost; objects last written by them may be stale.
//!
//! Both take the directory's lock: a running daemon must be stopped first.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::embedded::{
    LogEnd, apply_ops, decode_ops, decode_snapshot, encode_snapshot, fsync_dir, io, lock_dir,
    log_end, unframe,
};
use crate::{Error, KeyValue, Result, Revision};

/// The snapshot file's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Snapshot {
    /// There is none (the log holds everything).
    Missing,
    /// It reads: its revision and number of keys.
    Intact {
        /// Revision.
        revision: Revision,
        /// Keys.
        keys: usize,
    },
    /// It does not read.
    Damaged(String),
}

/// A stretch of the log that was skipped: bytes that do not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// Where it starts.
    pub offset: usize,
    /// How many bytes.
    pub bytes: usize,
    /// Revisions between the records around it that no record holds (a
    /// gap that loses no revision is damage in a record nobody needs).
    pub lost: Option<(Revision, Revision)>,
}

/// What [`check`] found.
#[derive(Debug, Clone)]
pub struct Report {
    /// The store directory.
    pub dir: PathBuf,
    /// The snapshot.
    pub snapshot: Snapshot,
    /// Bytes in the log.
    pub log_bytes: usize,
    /// Records the daemon replays (up to the first damage).
    pub records: usize,
    /// How the readable prefix of the log ends.
    pub end: End,
    /// Damaged stretches, and intact records found after them.
    pub gaps: Vec<Gap>,
    /// Intact records after the first damage.
    pub salvageable: usize,
    /// With a damaged snapshot: the revisions only it held (everything
    /// before the log's first record).
    pub lost_with_snapshot: Option<(Revision, Revision)>,
    /// The revision and key count the store has once repaired (or, when
    /// healthy, as the daemon opens it).
    pub revision: Revision,
    /// Keys.
    pub keys: usize,
}

/// How the readable prefix of the log ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The log ends with a whole record.
    Clean,
    /// A cut-short last write (never acknowledged), which the next start
    /// cuts off: harmless.
    TornTail {
        /// Bytes to cut.
        bytes: usize,
    },
    /// Damage with more log after it: the daemon refuses to start.
    Corrupt {
        /// Byte offset of the first bad record.
        offset: usize,
    },
}

impl Report {
    /// Whether the daemon opens this store (a torn tail is fine).
    pub fn healthy(&self) -> bool {
        !matches!(self.snapshot, Snapshot::Damaged(_)) && !matches!(self.end, End::Corrupt { .. })
    }
}

/// Largest revision step believed when resynchronising after damage.
const MAX_REVISION_STEP: Revision = 1 << 20;

/// Everything the files hold, read.
struct Scan {
    report: Report,
    data: BTreeMap<String, KeyValue>,
}

fn scan(dir: &Path) -> Result<Scan> {
    let snap_path = dir.join("snapshot");
    let (snapshot, mut rev, mut data) = match std::fs::read(&snap_path) {
        Ok(buf) => match decode_snapshot(&buf) {
            Ok((rev, data)) => (
                Snapshot::Intact {
                    revision: rev,
                    keys: data.len(),
                },
                rev,
                data,
            ),
            Err(e) => (Snapshot::Damaged(e.to_string()), 0, BTreeMap::new()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            (Snapshot::Missing, 0, BTreeMap::new())
        }
        Err(e) => return Err(io(&snap_path)(e)),
    };
    let wal_path = dir.join("wal");
    let buf = match std::fs::read(&wal_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(&wal_path)(e)),
    };
    let mut replay = |payload: &[u8], rev: &mut Revision| -> bool {
        let Some((r, ops)) = decode_ops(payload) else {
            return false;
        };
        if r > *rev {
            *rev = r;
            apply_ops(&mut data, r, &ops, &mut Vec::new());
        }
        true
    };
    let (records, valid) = unframe(&buf);
    let count = records.len();
    let first_log_rev = records.first().and_then(|p| decode_ops(p)).map(|(r, _)| r);
    let lost_with_snapshot = match (&snapshot, first_log_rev) {
        (Snapshot::Damaged(_), Some(first)) if first > 1 => Some((1, first - 1)),
        _ => None,
    };
    for p in records {
        if !replay(p, &mut rev) {
            return Err(Error::Corrupt(format!(
                "{}: a record with a good checksum does not decode",
                wal_path.display()
            )));
        }
    }
    let end = match log_end(&buf, valid) {
        LogEnd::Clean => End::Clean,
        LogEnd::TornTail => End::TornTail {
            bytes: buf.len() - valid,
        },
        LogEnd::Corrupt { offset, .. } => End::Corrupt { offset },
    };
    let mut gaps = Vec::new();
    let mut salvageable = 0;
    if let End::Corrupt { offset } = end {
        let mut at = offset;
        while at < buf.len() {
            let Some(next) = resync(&buf, at + 1, rev) else {
                gaps.push(Gap {
                    offset: at,
                    bytes: buf.len() - at,
                    lost: None,
                });
                break;
            };
            let (more, len) = unframe(&buf[next..]);
            let first = more.first().and_then(|p| decode_ops(p)).map(|(r, _)| r);
            gaps.push(Gap {
                offset: at,
                bytes: next - at,
                lost: first.filter(|r| *r > rev + 1).map(|r| (rev + 1, r - 1)),
            });
            for p in &more {
                if replay(p, &mut rev) {
                    salvageable += 1;
                }
            }
            at = next + len;
        }
    }
    let report = Report {
        dir: dir.to_path_buf(),
        snapshot,
        log_bytes: buf.len(),
        records: count,
        end,
        gaps,
        salvageable,
        lost_with_snapshot,
        revision: rev,
        // Keys on a lease do not survive a restart (nor the snapshot).
        keys: data.values().filter(|kv| kv.lease.is_none()).count(),
    };
    Ok(Scan { report, data })
}

/// The offset of the next intact record at or after `from` whose revision
/// follows `after`.
fn resync(buf: &[u8], from: usize, after: Revision) -> Option<usize> {
    (from..buf.len().saturating_sub(16)).find(|&k| {
        let len = u32::from_le_bytes(buf[k..k + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(buf[k + 4..k + 8].try_into().unwrap());
        let rev = u64::from_le_bytes(buf[k + 8..k + 16].try_into().unwrap());
        // Cheap tests first: a plausible revision, a length that fits.
        rev > after
            && rev - after <= MAX_REVISION_STEP
            && len >= 8
            && buf
                .get(k + 8..k + 8 + len)
                .is_some_and(|p| crc32fast::hash(p) == crc && decode_ops(p).is_some())
    })
}

/// Reads the store in `dir` and reports, changing nothing.
pub fn check(dir: &Path) -> Result<Report> {
    let _lock = lock_dir(dir)?;
    Ok(scan(dir)?.report)
}

/// What [`repair`] did.
#[derive(Debug, Clone)]
pub struct Repaired {
    /// What was found (and is now the store's state).
    pub report: Report,
    /// Where the original files were copied; `None` when the store was
    /// healthy and left alone.
    pub backup: Option<PathBuf>,
    /// What the `fix` of [`repair_with`] reported.
    pub fixed: Vec<String>,
}

/// Repairs the store in `dir` when it needs it: copies the damaged files
/// to `dir/damaged-UNIXTIME/`, then writes a snapshot of everything that
/// reads and an empty log. A healthy store is left alone.
pub fn repair(dir: &Path) -> Result<Repaired> {
    repair_with(dir, |_, _| Vec::new())
}

/// [`repair`], letting `fix` amend the rebuilt keys before they are
/// written (given the map and the revision to write them at), e.g. to
/// restore objects whose last write was lost; what it returns is reported.
pub fn repair_with(
    dir: &Path,
    fix: impl FnOnce(&mut BTreeMap<String, KeyValue>, Revision) -> Vec<String>,
) -> Result<Repaired> {
    let _lock = lock_dir(dir)?;
    let Scan {
        mut report,
        mut data,
    } = scan(dir)?;
    if report.healthy() {
        return Ok(Repaired {
            report,
            backup: None,
            fixed: Vec::new(),
        });
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let backup = dir.join(format!("damaged-{stamp}"));
    std::fs::create_dir_all(&backup).map_err(io(&backup))?;
    for name in ["snapshot", "wal"] {
        let from = dir.join(name);
        if from.exists() {
            let to = backup.join(name);
            std::fs::copy(&from, &to).map_err(io(&to))?;
            File::open(&to)
                .and_then(|f| f.sync_all())
                .map_err(io(&to))?;
        }
    }
    fsync_dir(&backup)?;
    fsync_dir(dir)?;
    // The new snapshot and an empty log, each written aside and renamed.
    let write = |name: &str, bytes: &[u8]| -> Result<()> {
        let tmp = dir.join(format!("{name}.repair"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        let path = dir.join(name);
        std::fs::rename(&tmp, &path).map_err(io(&path))
    };
    let fixed = fix(&mut data, report.revision + 1);
    if !fixed.is_empty() {
        report.revision += 1;
        report.keys = data.values().filter(|kv| kv.lease.is_none()).count();
    }
    write("snapshot", &encode_snapshot(report.revision, &data))?;
    write("wal", &[])?;
    fsync_dir(dir)?;
    Ok(Repaired {
        report,
        backup: Some(backup),
        fixed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::embedded::Embedded;

    use crate::embedded::tests::closed_store_of as store_of;

    #[tokio::test]
    async fn a_healthy_store_checks_clean_and_repair_leaves_it_alone() {
        let (dir, wal, bytes) = store_of(10).await;
        let r = check(dir.path()).unwrap();
        assert!(r.healthy());
        assert_eq!((r.records, r.keys, r.end), (10, 10, End::Clean));
        let done = repair(dir.path()).unwrap();
        assert!(done.backup.is_none());
        assert_eq!(std::fs::read(&wal).unwrap(), bytes);
    }

    #[tokio::test]
    async fn a_torn_tail_is_healthy() {
        let (dir, wal, bytes) = store_of(10).await;
        std::fs::write(&wal, &bytes[..bytes.len() - 5]).unwrap();
        let r = check(dir.path()).unwrap();
        assert!(r.healthy());
        assert_eq!(r.records, 9);
        assert!(matches!(r.end, End::TornTail { .. }));
    }

    #[tokio::test]
    async fn damage_in_the_middle_is_repaired_keeping_every_record_that_reads() {
        let (dir, wal, mut bytes) = store_of(50).await;
        let record = bytes.len() / 50;
        let offset = 20 * record;
        bytes[offset + 12] ^= 0xff;
        std::fs::write(&wal, &bytes).unwrap();
        let r = check(dir.path()).unwrap();
        assert!(!r.healthy());
        assert_eq!(r.end, End::Corrupt { offset });
        assert_eq!(r.records, 20);
        assert_eq!(r.salvageable, 29);
        assert_eq!(r.gaps.len(), 1);
        assert_eq!(r.gaps[0].offset, offset);
        assert_eq!(r.gaps[0].lost, Some((21, 21)));
        // Checking changed nothing.
        assert_eq!(std::fs::read(&wal).unwrap(), bytes);

        let done = repair(dir.path()).unwrap();
        let backup = done.backup.unwrap();
        assert_eq!(std::fs::read(backup.join("wal")).unwrap(), bytes);
        let s = Embedded::open(dir.path()).unwrap();
        let (kvs, rev) = s.list("/k/").await.unwrap();
        assert_eq!(rev, 50);
        // Only the record at index 20 (revision 21) is lost.
        assert_eq!(kvs.len(), 49);
        assert!(!kvs.iter().any(|kv| kv.key == "/k/20"));
        drop(s);
        assert!(check(dir.path()).unwrap().healthy());
    }

    #[tokio::test]
    async fn a_damaged_snapshot_is_rebuilt_from_the_log() {
        let (dir, _wal, _) = store_of(5).await;
        std::fs::write(dir.path().join("snapshot"), b"garbage!garbage!").unwrap();
        let r = check(dir.path()).unwrap();
        assert!(matches!(r.snapshot, Snapshot::Damaged(_)));
        assert!(!r.healthy());
        repair(dir.path()).unwrap();
        let s = Embedded::open(dir.path()).unwrap();
        assert_eq!(s.list("/k/").await.unwrap().0.len(), 5);
    }

    #[tokio::test]
    async fn a_damaged_snapshot_names_the_revisions_only_it_held() {
        // A snapshot (written by a repair) at revision 10, then three
        // writes in the log.
        let (dir, wal, mut bytes) = store_of(10).await;
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&wal, &bytes).unwrap();
        repair(dir.path()).unwrap();
        {
            let s = Embedded::open(dir.path()).unwrap();
            for i in 0..3 {
                s.put(&format!("/later/{i}"), b"v".to_vec()).await.unwrap();
            }
        }
        std::fs::write(dir.path().join("snapshot"), b"garbage!garbage!").unwrap();
        assert!(Embedded::open(dir.path()).is_err());
        let r = check(dir.path()).unwrap();
        assert!(!r.healthy());
        let first_log = r.revision - 2;
        assert_eq!(r.lost_with_snapshot, Some((1, first_log - 1)));
        assert_eq!(r.keys, 3);
    }

    #[tokio::test]
    async fn a_damaged_last_record_is_not_taken_for_a_torn_write() {
        let (dir, wal, mut bytes) = store_of(10).await;
        let last = bytes.len() - 5;
        bytes[last] ^= 0xff;
        std::fs::write(&wal, &bytes).unwrap();
        let r = check(dir.path()).unwrap();
        assert!(!r.healthy(), "{r:?}");
        assert!(Embedded::open(dir.path()).is_err());
        // A zero-filled tail (an interrupted append) is a torn write.
        let (dir, wal, mut bytes) = store_of(10).await;
        let n = bytes.len();
        let record = n / 10;
        for b in &mut bytes[n - record + 8..] {
            *b = 0;
        }
        std::fs::write(&wal, &bytes).unwrap();
        assert!(check(dir.path()).unwrap().healthy());
    }

    #[tokio::test]
    async fn a_running_daemons_store_is_not_touched() {
        let (dir, _, _) = store_of(1).await;
        let _open = Embedded::open(dir.path()).unwrap();
        let err = repair(dir.path()).unwrap_err().to_string();
        assert!(err.contains("in use"), "{err}");
    }
}
