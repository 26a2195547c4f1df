//! Log files: tracing-appender's rolling file, plus pruning of our own.
//!
//! A configured `/var/log/warden/warden.log` rotated daily is written as
//! `warden.2026-01-31.log` (hourly: `warden.2026-01-31-13.log`; never: the
//! path itself), dates in UTC. Pruning keeps the newest `max_files` of
//! them at start-up and at each rotation, and deletes only regular files
//! whose names match that pattern exactly: `other.log`, `warden.log.bak` or
//! `warden.2026-01-31.log.gz` in the same directory are never touched.
//! (tracing-appender's own `max_log_files` matches any name that merely
//! starts and ends right, so it is not used.)

use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_appender::rolling::{RollingFileAppender, Rotation as AppenderRotation};

use crate::config::Rotation;

/// The names one appender gives its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    /// The directory the files are in.
    pub(crate) dir: PathBuf,
    /// Before the date: the configured file name without its extension.
    prefix: String,
    /// After the date: the configured extension, if any.
    suffix: Option<String>,
    /// Whether dates carry the hour.
    hourly: bool,
}

impl Pattern {
    /// The pattern of rotated files for the configured `path`; `None` for
    /// `Rotation::Never`, whose single file is never pruned.
    pub(crate) fn new(path: &Path, rotation: Rotation) -> Option<Pattern> {
        let hourly = match rotation {
            Rotation::Daily => false,
            Rotation::Hourly => true,
            Rotation::Never => return None,
        };
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        Some(Pattern {
            dir,
            prefix: path.file_stem()?.to_string_lossy().into_owned(),
            suffix: path
                .extension()
                .map(|ext| ext.to_string_lossy().into_owned()),
            hourly,
        })
    }

    /// The date part of `name` when it is one of this appender's files.
    fn date_of<'a>(&self, name: &'a str) -> Option<&'a str> {
        let rest = name.strip_prefix(self.prefix.as_str())?.strip_prefix('.')?;
        let date = match &self.suffix {
            Some(suffix) => rest.strip_suffix(suffix.as_str())?.strip_suffix('.')?,
            None => rest,
        };
        is_date(date, self.hourly).then_some(date)
    }

    /// The file name this appender writes at Unix time `secs`.
    fn name_at(&self, secs: u64) -> String {
        let date = utc_date(secs, self.hourly);
        match &self.suffix {
            Some(suffix) => format!("{}.{date}.{suffix}", self.prefix),
            None => format!("{}.{date}", self.prefix),
        }
    }

    /// The rotation period `secs` falls in: a new one starts a new file.
    fn period(&self, secs: u64) -> u64 {
        secs / if self.hourly { 3600 } else { 86_400 }
    }
}

/// `YYYY-MM-DD`, or `YYYY-MM-DD-HH` when `hourly`: digits and dashes only.
fn is_date(text: &str, hourly: bool) -> bool {
    let shape: &[u8] = if hourly {
        b"dddd-dd-dd-dd"
    } else {
        b"dddd-dd-dd"
    };
    text.len() == shape.len()
        && text.bytes().zip(shape).all(|(c, s)| match s {
            b'd' => c.is_ascii_digit(),
            _ => c == *s,
        })
}

/// The UTC date (and hour) of Unix time `secs`, as tracing-appender names
/// its files.
fn utc_date(secs: u64, hourly: bool) -> String {
    let days = (secs / 86_400) as i64;
    // Civil-from-days (Howard Hinnant's algorithm), proleptic Gregorian.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if hourly {
        let hour = secs % 86_400 / 3600;
        format!("{year:04}-{month:02}-{day:02}-{hour:02}")
    } else {
        format!("{year:04}-{month:02}-{day:02}")
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Deletes this pattern's files beyond the newest `keep`, never the file
/// named `current`. Returns the paths deleted.
pub(crate) fn prune(pattern: &Pattern, keep: usize, current: &str) -> io::Result<Vec<PathBuf>> {
    let mut ours: Vec<(String, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(&pattern.dir)? {
        let entry = entry?;
        // Regular files only: a directory or symlink named like a log is
        // someone else's.
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name == current {
            continue;
        }
        if let Some(date) = pattern.date_of(name) {
            ours.push((date.to_owned(), entry.path()));
        }
    }
    // Fixed-width dates sort by time; newest first. The current file is one
    // of the `keep`.
    ours.sort_by(|a, b| b.0.cmp(&a.0));
    let mut removed = Vec::new();
    for (_, path) in ours.into_iter().skip(keep.saturating_sub(1)) {
        std::fs::remove_file(&path)?;
        removed.push(path);
    }
    Ok(removed)
}

/// A rolling log file that prunes old files whenever it rolls over.
#[derive(Debug)]
pub(crate) struct LogFile {
    appender: RollingFileAppender,
    pattern: Option<Pattern>,
    keep: usize,
    period: u64,
}

/// Why a log file could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open log file {}: {source}", path.display())]
pub struct OpenError {
    path: PathBuf,
    source: tracing_appender::rolling::InitError,
}

impl LogFile {
    /// Opens (creating directories as needed) the log file for `path`, and
    /// prunes old files. Returns the file and whatever pruning failed on.
    pub(crate) fn open(
        path: &Path,
        rotation: Rotation,
        keep: usize,
    ) -> Result<(LogFile, Option<io::Error>), OpenError> {
        let pattern = Pattern::new(path, rotation);
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let mut builder = RollingFileAppender::builder().rotation(match rotation {
            Rotation::Daily => AppenderRotation::DAILY,
            Rotation::Hourly => AppenderRotation::HOURLY,
            Rotation::Never => AppenderRotation::NEVER,
        });
        if let Some(stem) = path.file_stem() {
            builder = builder.filename_prefix(stem.to_string_lossy());
        }
        if let Some(ext) = path.extension() {
            builder = builder.filename_suffix(ext.to_string_lossy());
        }
        let appender = builder.build(dir).map_err(|source| OpenError {
            path: path.to_owned(),
            source,
        })?;
        let now = now_secs();
        let mut file = LogFile {
            appender,
            period: pattern.as_ref().map_or(0, |p| p.period(now)),
            pattern,
            keep,
        };
        let failure = file.prune(now).err();
        Ok((file, failure))
    }

    fn prune(&mut self, now: u64) -> io::Result<()> {
        let Some(pattern) = &self.pattern else {
            return Ok(());
        };
        self.period = pattern.period(now);
        prune(pattern, self.keep, &pattern.name_at(now)).map(drop)
    }
}

impl io::Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The appender rolls over inside this write when the period changed;
        // prune after it, so the new file is already one of those kept.
        let written = self.appender.write(buf)?;
        if let Some(pattern) = &self.pattern {
            let now = now_secs();
            if pattern.period(now) != self.period
                && let Err(error) = self.prune(now)
            {
                // This runs on the log writer's own thread: logging through
                // tracing here would feed the queue it is draining.
                eprintln!("warden: cannot prune old log files: {error}");
            }
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.appender.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("warden-prune-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn dates_are_utc_and_named_as_the_appender_names_them() {
        assert_eq!(utc_date(0, false), "1970-01-01");
        // 2024-02-29T13:45:00Z, a leap day.
        assert_eq!(utc_date(1_709_214_300, true), "2024-02-29-13");
        assert_eq!(utc_date(1_709_214_300, false), "2024-02-29");
        // 2026-12-31T23:59:59Z.
        assert_eq!(utc_date(1_798_761_599, true), "2026-12-31-23");
        let pattern = Pattern::new(Path::new("/x/warden.log"), Rotation::Daily).expect("rotated");
        assert_eq!(pattern.name_at(0), "warden.1970-01-01.log");
        assert_eq!(pattern.dir, Path::new("/x"));
        assert_eq!(Pattern::new(Path::new("warden.log"), Rotation::Never), None);
    }

    #[test]
    fn only_exact_names_are_ours() {
        let daily = Pattern::new(Path::new("/x/warden.log"), Rotation::Daily).expect("rotated");
        assert_eq!(daily.date_of("warden.2026-01-31.log"), Some("2026-01-31"));
        for other in [
            "warden.log",
            "other.log",
            "warden.log.bak-keep",
            "warden.2026-01-31.log.gz",
            "warden.2026-01-31-13.log",
            "warden-old.2026-01-31.log",
            "xwarden.2026-01-31.log",
            "warden.2026-1-31.log",
            "warden.2026-01-3x.log",
            "warden.2026-01-31.txt",
            "warden..log",
        ] {
            assert_eq!(daily.date_of(other), None, "{other} is not ours");
        }
        let hourly = Pattern::new(Path::new("/x/warden.log"), Rotation::Hourly).expect("rotated");
        assert_eq!(
            hourly.date_of("warden.2026-01-31-13.log"),
            Some("2026-01-31-13")
        );
        assert_eq!(hourly.date_of("warden.2026-01-31.log"), None);
        let bare = Pattern::new(Path::new("/x/audit"), Rotation::Daily).expect("rotated");
        assert_eq!(bare.date_of("audit.2026-01-31"), Some("2026-01-31"));
        assert_eq!(bare.date_of("audit.2026-01-31.log"), None);
    }

    #[test]
    fn prune_keeps_the_newest_and_touches_nothing_else() {
        let dir = scratch("keep");
        let pattern = Pattern::new(&dir.join("warden.log"), Rotation::Daily).expect("rotated");
        for name in [
            "warden.2020-01-01.log",
            "warden.2020-01-02.log",
            "warden.2020-01-03.log",
            "warden.2020-01-04.log",
            "other.log",
            "warden.log.bak-keep",
            "warden.2020-01-01.log.gz",
            "warden.2020-01-01-05.log",
        ] {
            std::fs::write(dir.join(name), "x").expect("write");
        }
        // A directory named like a log file is not a log file.
        std::fs::create_dir(dir.join("warden.2019-01-01.log")).expect("mkdir");
        std::fs::write(dir.join("warden.2030-01-01.log"), "current").expect("write");

        let removed = prune(&pattern, 3, "warden.2030-01-01.log").expect("prune");
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert_eq!(
            names(&dir),
            [
                "other.log",
                "warden.2019-01-01.log",
                "warden.2020-01-01-05.log",
                "warden.2020-01-01.log.gz",
                "warden.2020-01-03.log",
                "warden.2020-01-04.log",
                "warden.2030-01-01.log",
                "warden.log.bak-keep",
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn prune_never_deletes_the_current_file_even_when_older_ones_look_newer() {
        let dir = scratch("current");
        let pattern = Pattern::new(&dir.join("w.log"), Rotation::Hourly).expect("rotated");
        for name in [
            "w.2099-01-01-00.log",
            "w.2099-01-01-01.log",
            "w.2020-01-01-00.log",
        ] {
            std::fs::write(dir.join(name), "x").expect("write");
        }
        let removed = prune(&pattern, 1, "w.2020-01-01-00.log").expect("prune");
        assert_eq!(removed.len(), 2);
        assert_eq!(names(&dir), ["w.2020-01-01-00.log"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn opening_prunes_at_start_up_and_writes_the_current_file() {
        use std::io::Write as _;
        let dir = scratch("open");
        for day in 1..=5 {
            std::fs::write(dir.join(format!("warden.2020-01-0{day}.log")), "old").expect("write");
        }
        std::fs::write(dir.join("other.log"), "keep").expect("write");
        let (mut file, failure) =
            LogFile::open(&dir.join("warden.log"), Rotation::Daily, 2).expect("open");
        assert!(failure.is_none(), "{failure:?}");
        file.write_all(b"hello\n").expect("write");
        file.flush().expect("flush");
        let current = Pattern::new(&dir.join("warden.log"), Rotation::Daily)
            .expect("rotated")
            .name_at(now_secs());
        assert_eq!(
            std::fs::read_to_string(dir.join(&current)).expect("current file"),
            "hello\n"
        );
        let mut expected = vec![
            current,
            "other.log".to_owned(),
            "warden.2020-01-05.log".to_owned(),
        ];
        expected.sort();
        assert_eq!(names(&dir), expected);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
