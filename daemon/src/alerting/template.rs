//! Annotation templates: minijinja source rendered per alert instance with
//! `labels` (the result sample's labels, as Prometheus's `$labels`), `value`
//! and `name`, and their translation into Prometheus's Go templates for
//! `warden rules export`.
//!
//! Floats print as Go's `fmt` prints them (`0.95`, `1`, `1e+06`), so a
//! rendered annotation reads the same as Prometheus's `{{ $value }}`.

use std::collections::BTreeMap;

use minijinja::{Environment, Error, ErrorKind, Output, State, Value};

/// The environment every annotation renders in.
pub(crate) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_formatter(format_value);
    env
}

fn format_value(
    out: &mut Output<'_>,
    state: &mut State<'_, '_>,
    value: &Value,
) -> Result<(), Error> {
    if value.is_number()
        && !value.is_integer()
        && let Ok(float) = f64::try_from(value.clone())
    {
        return out
            .write_str(&go_float(float))
            .map_err(|_| Error::new(ErrorKind::WriteFailure, "cannot write output"));
    }
    minijinja::escape_formatter(out, state, value)
}

/// Whether `source` compiles; the error is one line.
pub(crate) fn check(source: &str) -> Result<(), String> {
    let env = environment();
    env.template_from_str(source)
        .map(drop)
        .map_err(|e| one_line(&e))
}

fn one_line(error: &Error) -> String {
    let mut text = error
        .detail()
        .map_or_else(|| error.to_string(), str::to_owned);
    if let Some(line) = error.line() {
        text.push_str(&format!(" (template line {line})"));
    }
    text.replace('\n', " ")
}

/// Renders one annotation. A failure (e.g. a filter applied to the wrong
/// type) becomes the annotation text, as Prometheus does, so it is seen.
pub(crate) fn render(
    env: &Environment<'_>,
    source: &str,
    labels: &BTreeMap<String, String>,
    value: f64,
    name: &str,
) -> String {
    let context = minijinja::context! { labels => labels, value => value, name => name };
    env.render_str(source, context)
        .unwrap_or_else(|e| format!("<error expanding template: {}>", one_line(&e)))
}

/// Go's `fmt.Sprint` of a float64: `%g` with the shortest digits that read
/// back exactly, which switches to the `%e` form below 1e-4 and from 1e6.
pub(crate) fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    let scientific = format!("{v:e}");
    let (mantissa, exponent) = scientific.split_once('e').expect("`{:e}` has an exponent");
    let exponent: i32 = exponent.parse().expect("integer exponent");
    if (-4..6).contains(&exponent) {
        return format!("{v}");
    }
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exponent.abs())
}

/// Translates a minijinja annotation into a Prometheus Go template: `{{
/// labels.x }}`, `{{ labels["x"] }}` and `{{ value }}` become `{{
/// $labels.x }}` and `{{ $value }}`, `{{ name }}` the rule's name. Anything
/// else is refused with the construct that cannot be translated.
pub(crate) fn to_go_template(source: &str, rule_name: &str) -> Result<String, String> {
    let mut out = String::with_capacity(source.len() + 16);
    let mut rest = source;
    while let Some(start) = rest.find('{') {
        let (text, tail) = rest.split_at(start);
        out.push_str(text);
        if tail.starts_with("{%") || tail.starts_with("{#") {
            return Err(format!("`{}` has no Prometheus equivalent", &tail[..2]));
        }
        if !tail.starts_with("{{") {
            out.push('{');
            rest = &tail[1..];
            continue;
        }
        let end = tail.find("}}").ok_or_else(|| "unclosed `{{`".to_owned())?;
        let inner = tail[2..end].trim();
        let translated = translate_expression(inner, rule_name)
            .ok_or_else(|| format!("`{{{{ {inner} }}}}` has no Prometheus equivalent"))?;
        out.push_str(&translated);
        rest = &tail[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn translate_expression(inner: &str, rule_name: &str) -> Option<String> {
    if inner == "value" {
        return Some("{{ $value }}".to_owned());
    }
    if inner == "name" {
        return Some(rule_name.to_owned());
    }
    let label = if let Some(key) = inner.strip_prefix("labels.") {
        key
    } else {
        let key = inner.strip_prefix("labels[")?.strip_suffix(']')?.trim();
        key.strip_prefix('"')
            .and_then(|k| k.strip_suffix('"'))
            .or_else(|| key.strip_prefix('\'').and_then(|k| k.strip_suffix('\'')))?
    };
    super::config::is_label_name(label).then(|| format!("{{{{ $labels.{label} }}}}"))
}

/// A Go template that prints `source` literally (for text that cannot be
/// translated): every `{{` is emitted through a string action.
pub(crate) fn go_literal(source: &str) -> String {
    source.replace("{{", "{{ \"{{\" }}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go() {
        for (v, go) in [
            (0.95, "0.95"),
            (1.0, "1"),
            (123_456.0, "123456"),
            (1_234_567.0, "1.234567e+06"),
            (1e6, "1e+06"),
            (0.0001, "0.0001"),
            (0.00001234, "1.234e-05"),
            (-2.5, "-2.5"),
            (f64::INFINITY, "+Inf"),
            (f64::NAN, "NaN"),
            (1e21, "1e+21"),
        ] {
            assert_eq!(go_float(v), go, "{v}");
        }
    }

    #[test]
    fn renders_labels_value_and_name() {
        let env = environment();
        let labels: BTreeMap<String, String> = [("check".to_owned(), "db".to_owned())].into();
        let text = render(
            &env,
            "{{ name }}: {{ labels.check }} at {{ value }} ({{ labels.missing }})",
            &labels,
            0.25,
            "DatabaseDown",
        );
        assert_eq!(text, "DatabaseDown: db at 0.25 ()");
        assert_eq!(render(&env, "{{ value }}", &labels, 3.0, "x"), "3");
        assert_eq!(
            render(&env, "{{ value | round(1) }}", &labels, 0.123, "x"),
            "0.1"
        );
    }

    #[test]
    fn syntax_errors_are_one_line() {
        let error = check("{{ labels.check ").unwrap_err();
        assert!(!error.contains('\n'), "{error}");
        assert!(error.contains("line 1"), "{error}");
        assert!(check("{% if value > 1 %}high{% endif %}").is_ok());
    }

    #[test]
    fn translates_to_go_templates() {
        assert_eq!(
            to_go_template("{{ labels.check }} is {{value}} ({{ name }}) {x}", "Down").unwrap(),
            "{{ $labels.check }} is {{ $value }} (Down) {x}"
        );
        assert_eq!(
            to_go_template("{{ labels[\"check\"] }}", "R").unwrap(),
            "{{ $labels.check }}"
        );
        assert!(
            to_go_template("{% if value %}x{% endif %}", "R")
                .unwrap_err()
                .contains("{%")
        );
        assert!(
            to_go_template("{{ value | round }}", "R")
                .unwrap_err()
                .contains("value | round")
        );
        assert_eq!(go_literal("a {{ b }}"), "a {{ \"{{\" }} b }}");
    }
}
