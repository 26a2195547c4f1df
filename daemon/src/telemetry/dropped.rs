//! Log lines dropped by the non-blocking file writers, which drop rather
//! than stall the daemon when the disk cannot keep up: counted as
//! `warden_log_lines_dropped_total` and reported in the log as they grow.

use std::sync::Mutex;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Metric, MetricFamily, MetricType};
use tracing_appender::non_blocking::ErrorCounter;

const NAME: &str = "warden_log_lines_dropped_total";
const HELP: &str = "Log lines dropped because the log writer fell behind.";
/// How often the counters are looked at for a warning.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// The counters of every non-blocking writer in use.
static COUNTERS: Mutex<Vec<ErrorCounter>> = Mutex::new(Vec::new());

/// Counts the drops of one more writer.
pub(crate) fn track(counter: ErrorCounter) {
    COUNTERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(counter);
}

/// Lines dropped so far by all writers.
pub fn dropped_lines() -> u64 {
    COUNTERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|c| c.dropped_lines() as u64)
        .sum()
}

/// A thread that logs a warning whenever lines were dropped since it last
/// looked; stopped and joined on drop.
#[derive(Debug)]
pub(crate) struct Reporter {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Reporter {
    pub(crate) fn start() -> Reporter {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("warden-log-drops".to_owned())
            .spawn(move || {
                let mut reported = 0;
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(REPORT_EVERY)
                {
                    let total = dropped_lines();
                    if total > reported {
                        tracing::warn!(dropped = total - reported, total, "log lines dropped");
                        reported = total;
                    }
                }
            })
            .ok();
        Reporter {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Exposes [`dropped_lines`] to Prometheus.
#[derive(Debug)]
pub(crate) struct DroppedLinesCollector {
    desc: Desc,
}

impl DroppedLinesCollector {
    pub(crate) fn new() -> Self {
        DroppedLinesCollector {
            desc: Desc::new(
                NAME.to_owned(),
                HELP.to_owned(),
                Vec::new(),
                Default::default(),
            )
            .expect("valid metric description"),
        }
    }
}

impl Collector for DroppedLinesCollector {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut counter = Counter::default();
        counter.set_value(dropped_lines() as f64);
        let mut metric = Metric::default();
        metric.set_counter(counter);
        let mut family = MetricFamily::default();
        family.set_name(NAME.to_owned());
        family.set_help(HELP.to_owned());
        family.set_field_type(MetricType::COUNTER);
        family.mut_metric().push(metric);
        vec![family]
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::sync::{Arc, Condvar};

    use super::*;

    /// A writer stuck until the test opens the gate, like a disk that stalls.
    struct Stalled(Arc<(Mutex<bool>, Condvar)>);

    impl std::io::Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (open, changed) = &*self.0;
            let mut open = open.lock().expect("not poisoned");
            while !*open {
                open = changed.wait(open).expect("not poisoned");
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn drops_of_a_stalled_writer_are_counted_and_exported() {
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let (mut writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
            .lossy(true)
            .buffered_lines_limit(2)
            .finish(Stalled(Arc::clone(&gate)));
        let before = dropped_lines();
        track(writer.error_counter());
        for _ in 0..20 {
            writer
                .write_all(b"line\n")
                .expect("lossy writes never fail");
        }
        // The worker holds at most one line and the queue two; the rest
        // were dropped, and counted.
        let dropped = dropped_lines() - before;
        assert!(dropped >= 17, "only {dropped} counted");
        let families = DroppedLinesCollector::new().collect();
        assert_eq!(families[0].name(), NAME);
        assert!(families[0].get_metric()[0].get_counter().get_value() >= dropped as f64);
        // Let the worker drain what it kept so the guard can shut it down.
        *gate.0.lock().expect("not poisoned") = true;
        gate.1.notify_all();
        drop(guard);
    }
}
