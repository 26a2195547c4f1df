//! The board's series, described once and written two ways: straight into
//! the Prometheus text format for `/metrics`, or as `MetricFamily` values
//! for the rule engine's feed. Writing text directly skips building a
//! protobuf tree per sample (most of a rendering's allocations), and one
//! description keeps what rules read identical to what is scraped.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::UNIX_EPOCH;

use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};

use crate::status::{CheckView, Health};

/// Most plugin series kept per check; beyond it they are dropped and counted,
/// so a runaway plugin cannot blow up the scrape.
pub const MAX_PLUGIN_SERIES_PER_CHECK: usize = 500;

/// The labels every per-check series carries.
fn base(v: &CheckView) -> [(&'static str, &str); 2] {
    [
        ("check", v.spec.name.as_str()),
        ("plugin", v.spec.plugin.as_str()),
    ]
}

/// One per-check gauge: its value for a check, `None` for no sample.
type PerCheck = fn(&CheckView) -> Option<f64>;

/// Receives families and their samples in exposition order.
pub(super) trait Sink {
    /// Starts a family; every following sample belongs to it.
    fn family(&mut self, name: &str, help: &str, kind: MetricType);
    /// One sample; `labels` are sorted by name.
    fn sample(&mut self, labels: &[(&str, &str)], value: f64);
}

/// Describes every series derived from the board: per-check up, status,
/// staleness, last run and dropped-metric gauges, then the plugins' own
/// metrics grouped into one family per name. Families without samples are
/// left out.
pub(super) fn describe_board(views: &[CheckView], sink: &mut impl Sink) {
    let per_check: [(&str, &str, PerCheck); 5] = [
        (
            "warden_check_up",
            "1 when the check passes (rise/fall and staleness applied), else 0.",
            |v| {
                Some(f64::from(u8::from(matches!(
                    v.health,
                    Health::Healthy | Health::Warning
                ))))
            },
        ),
        (
            "warden_check_status",
            "Latest status as a Nagios code: 0 ok, 1 warning, 2 critical, 3 unknown \
             (stale results are 3).",
            |v| {
                let last = v.last.as_ref()?;
                let code = if v.stale {
                    3
                } else {
                    last.outcome.status().exit_code()
                };
                Some(f64::from(code))
            },
        ),
        (
            "warden_check_stale",
            "1 when the latest result is older than stale_after intervals.",
            |v| Some(f64::from(u8::from(v.stale))),
        ),
        (
            "warden_check_last_run_timestamp_seconds",
            "Unix time of the start of the latest run.",
            |v| {
                let started = v.last.as_ref()?.started_at.duration_since(UNIX_EPOCH);
                Some(started.unwrap_or_default().as_secs_f64())
            },
        ),
        (
            "warden_check_metrics_dropped",
            "Plugin metrics of the latest result dropped for exceeding the per-check limit.",
            |v| {
                let last = v.last.as_ref().filter(|_| !v.stale)?;
                Some(
                    last.metrics_reported
                        .saturating_sub(MAX_PLUGIN_SERIES_PER_CHECK) as f64,
                )
            },
        ),
    ];
    for (name, help, value) in per_check {
        let mut samples = views.iter().filter_map(|v| Some((v, value(v)?))).peekable();
        if samples.peek().is_none() {
            continue;
        }
        sink.family(name, help, MetricType::GAUGE);
        for (v, value) in samples {
            sink.sample(&base(v), value);
        }
    }

    // Plugin metrics, grouped by exposed name across checks; the first
    // check reporting a name gives its help text.
    struct Family<'v> {
        help: String,
        samples: Vec<(&'v CheckView, &'v warden_plugin_api::Metric)>,
    }
    let mut families: BTreeMap<String, Family<'_>> = BTreeMap::new();
    let fresh = views
        .iter()
        .filter(|v| !v.stale)
        .filter_map(|v| v.last.as_ref().map(|l| (v, l)));
    for (v, last) in fresh {
        let plugin = sanitize_name(&v.spec.plugin);
        for metric in last.metrics.iter().take(MAX_PLUGIN_SERIES_PER_CHECK) {
            let name = format!("warden_{plugin}_{}", sanitize_name(&metric.name));
            families
                .entry(name)
                .or_insert_with(|| {
                    let unit = metric
                        .unit
                        .as_deref()
                        .map(|u| format!(" ({u})"))
                        .unwrap_or_default();
                    Family {
                        help: format!(
                            "Metric {}{unit} reported by the {} plugin.",
                            metric.name, v.spec.plugin
                        ),
                        samples: Vec::new(),
                    }
                })
                .samples
                .push((v, metric));
        }
    }
    for (name, family) in &families {
        // By Prometheus convention `_total` names a counter; exposing it as
        // a gauge would mislead rate().
        let kind = if name.ends_with("_total") {
            MetricType::COUNTER
        } else {
            MetricType::GAUGE
        };
        sink.family(name, &family.help, kind);
        for (v, metric) in &family.samples {
            if metric.labels.is_empty() {
                sink.sample(&base(v), metric.value);
                continue;
            }
            let mut labels: Vec<(Cow<'_, str>, &str)> =
                base(v).map(|(k, v)| (Cow::Borrowed(k), v)).to_vec();
            for (key, value) in &metric.labels {
                let key = match sanitize_label(key) {
                    // The check's own labels win; the plugin's are renamed.
                    k if k == "check" || k == "plugin" => Cow::Owned(format!("exported_{k}")),
                    k => k,
                };
                labels.push((key, value.as_str()));
            }
            // Stable sort, then keep the first of equal names: the check's
            // own labels, then the plugin's in name order. Two plugin labels
            // can sanitise to one name (`a.b`, `a-b`), and a duplicate name
            // would make Prometheus reject the whole scrape.
            labels.sort_by(|a, b| a.0.cmp(&b.0));
            labels.dedup_by(|later, earlier| later.0 == earlier.0);
            let sorted: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_ref(), *v)).collect();
            sink.sample(&sorted, metric.value);
        }
    }
}

/// Writes families into the text exposition format 0.0.4.
pub(super) struct TextSink<'o> {
    out: &'o mut Vec<u8>,
    name: String,
}

impl<'o> TextSink<'o> {
    pub(super) fn new(out: &'o mut Vec<u8>) -> Self {
        TextSink {
            out,
            name: String::new(),
        }
    }
}

impl Sink for TextSink<'_> {
    fn family(&mut self, name: &str, help: &str, kind: MetricType) {
        write_header(self.out, name, help, kind);
        name.clone_into(&mut self.name);
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        write_sample(self.out, &self.name, "", labels, None, value);
    }
}

/// Builds `MetricFamily` values, as a prometheus `Collector` returns them.
#[derive(Default)]
pub(super) struct FamilySink {
    pub(super) families: Vec<MetricFamily>,
}

impl Sink for FamilySink {
    fn family(&mut self, name: &str, help: &str, kind: MetricType) {
        let mut family = MetricFamily::default();
        family.set_name(name.to_owned());
        family.set_help(help.to_owned());
        family.set_field_type(kind);
        self.families.push(family);
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        let family = self.families.last_mut().expect("a family is started first");
        let mut metric = Metric::default();
        metric.set_label(
            labels
                .iter()
                .map(|(k, v)| {
                    let mut pair = LabelPair::default();
                    pair.set_name((*k).to_owned());
                    pair.set_value((*v).to_owned());
                    pair
                })
                .collect(),
        );
        if family.get_field_type() == MetricType::COUNTER {
            let mut counter = Counter::default();
            counter.set_value(value);
            metric.set_counter(counter);
        } else {
            let mut gauge = Gauge::default();
            gauge.set_value(value);
            metric.set_gauge(gauge);
        }
        family.mut_metric().push(metric);
    }
}

/// Writes gathered registry families in the text format, as prometheus's
/// `TextEncoder` does, without its per-fragment write calls.
pub(super) fn write_families(out: &mut Vec<u8>, families: &[MetricFamily]) {
    for family in families {
        let name = family.name();
        write_header(out, name, family.help(), family.get_field_type());
        for_each_sample(family, |suffix, labels, extra, value| {
            write_sample(out, name, suffix, labels, extra, value);
        });
    }
}

/// Calls `sample(suffix, labels, extra label, value)` for every line
/// `family` has in the text format: histograms as `_bucket` lines (with
/// `le`, `+Inf` always included), `_sum` and `_count`; summaries as their
/// quantiles, `_sum` and `_count`. The registry holds no untyped metrics.
pub(crate) fn for_each_sample(
    family: &MetricFamily,
    mut sample: impl FnMut(&str, &[(&str, &str)], Option<(&str, &str)>, f64),
) {
    let mut labels: Vec<(&str, &str)> = Vec::new();
    let mut text = Vec::new();
    for metric in family.get_metric() {
        labels.clear();
        labels.extend(metric.get_label().iter().map(|p| (p.name(), p.value())));
        match family.get_field_type() {
            MetricType::COUNTER => sample("", &labels, None, metric.get_counter().get_value()),
            MetricType::GAUGE => sample("", &labels, None, metric.get_gauge().get_value()),
            MetricType::UNTYPED => {}
            MetricType::HISTOGRAM => {
                let h = metric.get_histogram();
                let count = h.get_sample_count() as f64;
                let mut inf_seen = false;
                for bucket in h.get_bucket() {
                    let bound = bucket.upper_bound();
                    inf_seen |= bound == f64::INFINITY;
                    let le = value_text(&mut text, bound);
                    sample(
                        "_bucket",
                        &labels,
                        Some(("le", le)),
                        bucket.cumulative_count() as f64,
                    );
                }
                if !inf_seen {
                    sample("_bucket", &labels, Some(("le", "+Inf")), count);
                }
                sample("_sum", &labels, None, h.get_sample_sum());
                sample("_count", &labels, None, count);
            }
            MetricType::SUMMARY => {
                let s = metric.get_summary();
                for quantile in s.get_quantile() {
                    let q = value_text(&mut text, quantile.quantile());
                    sample("", &labels, Some(("quantile", q)), quantile.value());
                }
                sample("_sum", &labels, None, s.sample_sum());
                sample("_count", &labels, None, s.sample_count() as f64);
            }
        }
    }
}

/// `value` as the format spells it, written into `buf`.
fn value_text(buf: &mut Vec<u8>, value: f64) -> &str {
    buf.clear();
    write_value(buf, value);
    std::str::from_utf8(buf).expect("numbers are ASCII")
}

fn write_header(out: &mut Vec<u8>, name: &str, help: &str, kind: MetricType) {
    out.extend_from_slice(b"# HELP ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    escape(out, help, false);
    out.extend_from_slice(b"\n# TYPE ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(match kind {
        MetricType::COUNTER => b" counter\n".as_slice(),
        MetricType::GAUGE => b" gauge\n",
        MetricType::HISTOGRAM => b" histogram\n",
        MetricType::SUMMARY => b" summary\n",
        MetricType::UNTYPED => b" untyped\n",
    });
}

/// `name` `suffix` `{labels, extra}` `value`, one line.
fn write_sample(
    out: &mut Vec<u8>,
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    extra: Option<(&str, &str)>,
    value: f64,
) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(suffix.as_bytes());
    let mut first = true;
    for (k, v) in labels.iter().chain(extra.as_ref()) {
        out.push(if first { b'{' } else { b',' });
        first = false;
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"=\"");
        escape(out, v, true);
        out.push(b'"');
    }
    if !first {
        out.push(b'}');
    }
    out.push(b' ');
    write_value(out, value);
    out.push(b'\n');
}

/// A sample value or bound as the format spells it.
fn write_value(out: &mut Vec<u8>, value: f64) {
    if value == f64::INFINITY {
        out.extend_from_slice(b"+Inf");
    } else if value == f64::NEG_INFINITY {
        out.extend_from_slice(b"-Inf");
    } else if value.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if value.fract() == 0.0 && value.abs() < 9.0e15 {
        // Counts and bucket totals: integer formatting is several times
        // cheaper than the shortest-float search and prints the same text.
        write!(out, "{}", value as i64).expect("writing to a Vec");
    } else {
        write!(out, "{value}").expect("writing to a Vec");
    }
}

/// Escapes a backslash and a newline, and in label values a double quote.
fn escape(out: &mut Vec<u8>, text: &str, quote: bool) {
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let replacement: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'"' if quote => b"\\\"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(replacement);
        start = i + 1;
    }
    out.write_all(&bytes[start..]).expect("writing to a Vec");
}

/// Maps any text onto a valid metric name fragment.
fn sanitize_name(name: &str) -> Cow<'_, str> {
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if !name.is_empty() && name.chars().all(valid) {
        return Cow::Borrowed(name);
    }
    let out: String = name
        .chars()
        .map(|c| if valid(c) { c } else { '_' })
        .collect();
    Cow::Owned(if out.is_empty() { "_".to_owned() } else { out })
}

/// Maps any text onto a valid label name.
fn sanitize_label(name: &str) -> Cow<'_, str> {
    let out = sanitize_name(name);
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.starts_with("__") {
        Cow::Owned(format!("l_{out}"))
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitised() {
        assert_eq!(sanitize_name("disk.used-ratio"), "disk_used_ratio");
        assert_eq!(sanitize_name(""), "_");
        assert!(matches!(sanitize_name("load1"), Cow::Borrowed(_)));
        assert_eq!(sanitize_label("0day"), "l_0day");
        assert_eq!(sanitize_label("__name__"), "l___name__");
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut out = Vec::new();
        let mut sink = TextSink::new(&mut out);
        sink.family("x", "a \\ b\nc \"q\"", MetricType::GAUGE);
        sink.sample(&[("check", "we\"ird\\\nname")], 1.5);
        sink.sample(&[], f64::INFINITY);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# HELP x a \\\\ b\\nc \"q\"\n# TYPE x gauge\n\
             x{check=\"we\\\"ird\\\\\\nname\"} 1.5\nx +Inf\n"
        );
    }

    #[test]
    fn values_print_as_rust_displays_them() {
        // -0.0 prints as "0" on the integer path; Prometheus parses both alike.
        for value in [
            0.0,
            3.0,
            -7.0,
            1e15,
            8.9e15,
            1e16,
            1e21,
            0.25,
            -1.5e-7,
            f64::MAX,
        ] {
            assert_eq!(
                value_text(&mut Vec::new(), value),
                value.to_string(),
                "{value:e}"
            );
        }
    }

    #[test]
    fn registry_families_are_written_as_the_prometheus_encoder_writes_them() {
        use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
        let registry = Registry::new();
        let runs = IntCounterVec::new(Opts::new("runs_total", "Runs \\ by\noutcome."), &["check"])
            .unwrap();
        let durations = HistogramVec::new(
            HistogramOpts::new("run_seconds", "Durations.").buckets(vec![0.001, 0.25, 2.5]),
            &["check", "plugin"],
        )
        .unwrap();
        registry.register(Box::new(runs.clone())).unwrap();
        registry.register(Box::new(durations.clone())).unwrap();
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .unwrap();
        runs.with_label_values(&["we\"ird\n\\"]).inc_by(3);
        runs.with_label_values(&["db"]).inc();
        for seconds in [0.0004, 0.3, 7.0, 1e-9] {
            durations
                .with_label_values(&["db", "postgres"])
                .observe(seconds);
        }
        let families = registry.gather();
        let mut ours = Vec::new();
        write_families(&mut ours, &families);
        let mut theirs = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&families, &mut theirs)
            .unwrap();
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            String::from_utf8(theirs).unwrap()
        );
    }

    fn view(metrics: Vec<warden_plugin_api::Metric>) -> CheckView {
        use std::time::{Duration, SystemTime};
        let mut result = warden_plugin_api::CheckResult::ok("fine");
        result.metrics = metrics;
        CheckView {
            spec: crate::status::CheckSpec {
                name: "db".to_owned(),
                plugin: "scripted".to_owned(),
                critical: true,
                interval: Duration::from_secs(10),
                timeout: Duration::from_secs(5),
                stale_after: 3,
                fall: 1,
                rise: 1,
            },
            health: Health::Healthy,
            stale: false,
            ever_passed: true,
            last: Some(crate::status::RunRecord::from_result(
                result,
                SystemTime::now(),
                Duration::from_millis(1),
            )),
        }
    }

    fn text(views: &[CheckView]) -> String {
        let mut out = Vec::new();
        describe_board(views, &mut TextSink::new(&mut out));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn label_names_that_collide_after_renaming_appear_once() {
        use warden_plugin_api::Metric;
        let shown = text(&[view(vec![
            Metric::new("collide", 1.0)
                .label("a.b", "1")
                .label("a-b", "2"),
            Metric::new("own", 2.0)
                .label("check", "x")
                .label("exported_check", "y"),
        ])]);
        // BTreeMap order: "a-b" sorts before "a.b", so its value is kept.
        assert!(
            shown.contains(
                "warden_scripted_collide{a_b=\"2\",check=\"db\",plugin=\"scripted\"} 1\n"
            ),
            "{shown}"
        );
        assert!(
            shown.contains(
                "warden_scripted_own{check=\"db\",exported_check=\"x\",plugin=\"scripted\"} 2\n"
            ),
            "{shown}"
        );
    }

    #[test]
    fn dropped_metrics_count_everything_past_the_limit() {
        let metrics = (0..1201)
            .map(|i| warden_plugin_api::Metric::new(format!("m{i:04}"), 1.0))
            .collect();
        let shown = text(&[view(metrics)]);
        assert!(
            shown.contains("warden_check_metrics_dropped{check=\"db\",plugin=\"scripted\"} 701\n"),
            "dropped gauge wrong"
        );
        let series = shown
            .lines()
            .filter(|l| l.starts_with("warden_scripted_m"))
            .count();
        assert_eq!(series, MAX_PLUGIN_SERIES_PER_CHECK);
    }
}
