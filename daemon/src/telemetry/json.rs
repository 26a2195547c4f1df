//! JSON lines: one object per event with every field at the top level,
//! the fields of the spans it happened in included (outermost first, the
//! event's own winning), so `check`, `plugin`, `rule`, `notifier` and
//! `request_id` are plain keys whichever of them recorded them.
//!
//! tracing-subscriber's JSON format flattens only the event's own fields
//! and nests span fields, hence this small layer.

use std::fmt;
use std::io::Write as _;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Writes every event it sees as one JSON line to `W`.
#[derive(Debug)]
pub(crate) struct JsonLayer<W> {
    make_writer: W,
}

impl<W> JsonLayer<W> {
    pub(crate) fn new(make_writer: W) -> Self {
        JsonLayer { make_writer }
    }
}

/// A span's fields, kept in its extensions.
#[derive(Debug, Default)]
struct SpanFields(Map<String, Value>);

/// Records fields into a JSON object.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::from(format!("{value:?}")));
    }
}

impl<S, W> tracing_subscriber::Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        // Another JSON layer (the security file's) may have recorded them.
        if extensions.get_mut::<SpanFields>().is_none() {
            let mut fields = SpanFields::default();
            attrs.record(&mut Fields(&mut fields.0));
            extensions.insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            values.record(&mut Fields(&mut fields.0));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let mut object = Map::new();
        let mut timestamp = String::new();
        if SystemTime
            .format_time(&mut Writer::new(&mut timestamp))
            .is_ok()
        {
            object.insert("timestamp".to_owned(), Value::from(timestamp));
        }
        object.insert("level".to_owned(), Value::from(metadata.level().as_str()));
        object.insert("target".to_owned(), Value::from(metadata.target()));
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    for (key, value) in &fields.0 {
                        object.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        event.record(&mut Fields(&mut object));
        let mut line = serde_json::to_vec(&Value::Object(object)).unwrap_or_default();
        line.push(b'\n');
        // One write per line, so a line is never split between writers.
        let _ = self.make_writer.make_writer_for(metadata).write_all(&line);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("not poisoned").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }

    #[test]
    fn span_fields_are_flattened_into_each_line() {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::registry().with(JsonLayer::new(lines.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("check", check = "db", plugin = "postgres");
            let _outer = outer.enter();
            let inner = tracing::info_span!("run", attempt = tracing::field::Empty);
            inner.record("attempt", 2_u64);
            let _inner = inner.enter();
            tracing::warn!(target: "warden::test", duration_ms = 12_u64, ok = false, "slow");
        });
        let text = String::from_utf8(lines.0.lock().expect("not poisoned").clone()).expect("UTF-8");
        assert_eq!(text.lines().count(), 1, "{text}");
        let line: Value = serde_json::from_str(text.trim_end()).expect("one JSON object");
        assert_eq!(line["message"], "slow");
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["target"], "warden::test");
        assert_eq!(line["check"], "db");
        assert_eq!(line["plugin"], "postgres");
        assert_eq!(line["attempt"], 2);
        assert_eq!(line["duration_ms"], 12);
        assert_eq!(line["ok"], false);
        assert!(
            line["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{line}"
        );
    }
}
