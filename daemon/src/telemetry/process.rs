//! The standard `process_*` series, read cheaply on every scrape.
//!
//! The `prometheus` crate's process collector parses `/proc/self/limits` and
//! opens `/proc/<pid>` afresh each time; on a scrape made as Prometheus makes
//! it, that was about a third of the daemon's CPU per scrape. Here one read
//! of `/proc/self/stat`, one listing of `/proc/self/fd` and `getrlimit` give
//! the same series, names and help texts included.
#![allow(unsafe_code, reason = "sysconf and getrlimit through libc")]

use std::io::Read as _;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, IntGauge, Opts};

/// The fields of `/proc/self/stat` used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    /// User and system CPU, in clock ticks.
    cpu_ticks: u64,
    threads: i64,
    /// Bytes of address space.
    vsize: u64,
    /// Resident pages.
    rss_pages: i64,
}

/// Parses `/proc/self/stat`; fields are counted after the command name,
/// which is in parentheses and may itself hold spaces or parentheses.
fn parse_stat(text: &str) -> Option<Stat> {
    let after_comm = &text[text.rfind(')')? + 1..];
    // Field 3 (state) is the first after the command name.
    let fields: Vec<&str> = after_comm.split_ascii_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).copied();
    let utime: u64 = field(14)?.parse().ok()?;
    let stime: u64 = field(15)?.parse().ok()?;
    Some(Stat {
        cpu_ticks: utime + stime,
        threads: field(20)?.parse().ok()?,
        vsize: field(23)?.parse().ok()?,
        rss_pages: field(24)?.parse().ok()?,
    })
}

fn read_stat() -> Option<Stat> {
    let mut buf = [0u8; 1024];
    let mut file = std::fs::File::open("/proc/self/stat").ok()?;
    let n = file.read(&mut buf).ok()?;
    parse_stat(std::str::from_utf8(&buf[..n]).ok()?)
}

/// Open descriptors, the listing's own included, as other exporters count.
fn open_fds() -> Option<i64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    i64::try_from(entries.count()).ok()
}

/// The soft limit on open descriptors; `None` when unlimited.
fn max_fds() -> Option<i64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the valid struct passed.
    let ret = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (ret == 0 && limit.rlim_cur != libc::RLIM_INFINITY)
        .then(|| i64::try_from(limit.rlim_cur).ok())
        .flatten()
}

fn sysconf(name: libc::c_int) -> libc::c_long {
    // SAFETY: sysconf only reads a configuration value.
    unsafe { libc::sysconf(name) }
}

/// `process_cpu_seconds_total`, `process_open_fds`, `process_max_fds`,
/// `process_virtual_memory_bytes`, `process_resident_memory_bytes`,
/// `process_start_time_seconds` and `process_threads` of this process.
#[derive(Debug)]
pub(crate) struct ProcessCollector {
    descs: Vec<Desc>,
    cpu: Counter,
    open_fds: IntGauge,
    max_fds: IntGauge,
    vsize: IntGauge,
    rss: IntGauge,
    start_time: IntGauge,
    threads: IntGauge,
    ticks_per_second: f64,
    page_size: i64,
}

impl ProcessCollector {
    /// `started`: when the process started, for `process_start_time_seconds`.
    pub(crate) fn new(started: SystemTime) -> Self {
        let gauge = |name: &str, help: &str| {
            IntGauge::with_opts(Opts::new(name, help)).expect("valid metric")
        };
        let cpu = Counter::with_opts(Opts::new(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
        ))
        .expect("valid metric");
        let open_fds = gauge("process_open_fds", "Number of open file descriptors.");
        let max_fds = gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
        );
        let vsize = gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
        );
        let rss = gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
        );
        let start_time = gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
        );
        let threads = gauge("process_threads", "Number of OS threads in the process.");
        start_time.set(
            started
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        );
        let descs = [
            cpu.desc(),
            open_fds.desc(),
            max_fds.desc(),
            vsize.desc(),
            rss.desc(),
            start_time.desc(),
            threads.desc(),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        ProcessCollector {
            descs,
            cpu,
            open_fds,
            max_fds,
            vsize,
            rss,
            start_time,
            threads,
            ticks_per_second: sysconf(libc::_SC_CLK_TCK).max(1) as f64,
            page_size: sysconf(libc::_SC_PAGESIZE).max(1),
        }
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families = Vec::with_capacity(7);
        if let Some(stat) = read_stat() {
            let seconds = stat.cpu_ticks as f64 / self.ticks_per_second;
            // Counters only go up; concurrent scrapes may race to the same value.
            let delta = seconds - self.cpu.get();
            if delta > 0.0 {
                self.cpu.inc_by(delta);
            }
            self.vsize
                .set(i64::try_from(stat.vsize).unwrap_or(i64::MAX));
            self.rss.set(stat.rss_pages.saturating_mul(self.page_size));
            self.threads.set(stat.threads);
            families.extend(self.cpu.collect());
        }
        if let Some(open) = open_fds() {
            self.open_fds.set(open);
        }
        if let Some(max) = max_fds() {
            self.max_fds.set(max);
        }
        for gauge in [
            &self.open_fds,
            &self.max_fds,
            &self.vsize,
            &self.rss,
            &self.start_time,
            &self.threads,
        ] {
            families.extend(gauge.collect());
        }
        families
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_a_command_name_with_spaces_and_parens() {
        // Fields 3.. of a real line, with the command name made awkward.
        let line = "4242 (tokio (rt) worker) S 1 4242 4242 0 -1 4194560 2237 0 0 0 \
                    151 37 0 0 20 0 9 0 123456 1130496000 5211 18446744073709551615 1 1 0 0 0 0 0 \
                    4096 17922 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                cpu_ticks: 188,
                threads: 9,
                vsize: 1_130_496_000,
                rss_pages: 5211,
            })
        );
        assert_eq!(parse_stat("4242 (cut short) S 1 2"), None);
    }

    #[test]
    fn reads_this_process_as_the_crate_collector_does() {
        let ours = ProcessCollector::new(SystemTime::now());
        let theirs = prometheus::process_collector::ProcessCollector::for_self();
        let names = |families: &[MetricFamily]| -> Vec<String> {
            families.iter().map(|f| f.name().to_owned()).collect()
        };
        let (a, b) = (ours.collect(), theirs.collect());
        assert_eq!(names(&a), names(&b));
        for (a, b) in a.iter().zip(&b) {
            assert_eq!(a.help(), b.help(), "{}", a.name());
        }
        let value = |families: &[MetricFamily], name: &str| -> f64 {
            let family = families.iter().find(|f| f.name() == name).unwrap();
            let metric = &family.get_metric()[0];
            if family.get_field_type() == prometheus::proto::MetricType::COUNTER {
                metric.get_counter().get_value()
            } else {
                metric.get_gauge().get_value()
            }
        };
        assert_eq!(value(&a, "process_max_fds"), value(&b, "process_max_fds"));
        let rss = value(&a, "process_resident_memory_bytes");
        assert!(rss > 1e6, "{rss}");
        assert!(value(&a, "process_threads") >= 1.0);
        assert!(value(&a, "process_open_fds") >= 3.0);
        // The crate truncates CPU to whole seconds; ours keeps the ticks.
        let (cpu_a, cpu_b) = (
            value(&a, "process_cpu_seconds_total"),
            value(&b, "process_cpu_seconds_total"),
        );
        assert!(cpu_a >= cpu_b && cpu_a < cpu_b + 2.0, "{cpu_a} vs {cpu_b}");
    }
}
