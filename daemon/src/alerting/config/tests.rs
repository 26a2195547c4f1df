use super::*;
use crate::config::Config;

fn parse(text: &str) -> Result<Config, Vec<String>> {
    Config::parse(text, Origin::File("warden.toml".into()))
        .map_err(|d| d.0.iter().map(ToString::to_string).collect())
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "warden-rules-{tag}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(dir.join("rules")).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn reads_rules_with_defaults_and_settings() {
    let config = parse(
        r#"
[alerting]
evaluation_interval = "2s"
max_series = 500

[[rule]]
name = "DatabaseDown"
expr = 'warden_check_up{check="db"} == 0'
for = "1m"
severity = "critical"
labels = { team = "db" }
annotations = { summary = "{{ labels.check }} is down" }

[[rule]]
name = "Any"
expr = "warden_check_up == 0"
"#,
    )
    .unwrap();
    let alerting = &config.alerting;
    assert_eq!(alerting.evaluation_interval, Duration::from_secs(2));
    assert_eq!(alerting.max_series, 500);
    let [db, any] = alerting.rules.as_slice() else {
        panic!("two rules")
    };
    assert_eq!(db.for_, Duration::from_secs(60));
    assert_eq!(db.severity, "critical");
    assert_eq!(db.labels["team"], "db");
    assert_eq!(db.position, Position { line: 7, column: 8 });
    assert_eq!(any.for_, Duration::ZERO);
    assert_eq!(any.keep_firing_for, Duration::ZERO);
    assert_eq!(any.severity, DEFAULT_SEVERITY);
    assert_eq!(
        Config::parse("", Origin::Embedded)
            .unwrap()
            .alerting
            .evaluation_interval,
        DEFAULT_EVALUATION_INTERVAL
    );
}

#[test]
fn a_bad_expression_points_into_the_expr_string() {
    let errors =
        parse("[[rule]]\nname = \"Bad\"\nexpr = 'warden_check_up{check=\"db\"} == == 0'\n")
            .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    // The second `==` starts at column 38 of line 3.
    assert!(errors[0].starts_with("warden.toml:3:"), "{}", errors[0]);
    assert!(errors[0].contains("rule \"Bad\": `expr`:"), "{}", errors[0]);
    let column: usize = errors[0].split(':').nth(2).unwrap().parse().unwrap();
    assert!(column > 8, "points into the string: {}", errors[0]);
}

#[test]
fn an_escaped_expression_falls_back_to_the_string_start() {
    let errors = parse("[[rule]]\nname = \"Bad\"\nexpr = \"up{a=\\\"b\\\"} +\"\n").unwrap_err();
    assert!(errors[0].starts_with("warden.toml:3:8:"), "{errors:?}");
}

#[test]
fn unsupported_functions_and_bad_templates_are_errors() {
    let errors = parse(
        r#"
[[rule]]
name = "Predict"
expr = "predict_linear(warden_check_up[5m], 60) < 0"

[[rule]]
name = "Template"
expr = "warden_check_up == 0"
annotations = { summary = "{{ labels.check " }
"#,
    )
    .unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].starts_with("warden.toml:4:"), "{}", errors[0]);
    assert!(errors[0].contains("rule \"Predict\""), "{}", errors[0]);
    assert!(errors[0].contains("predict_linear"), "{}", errors[0]);
    assert!(errors[1].starts_with("warden.toml:9:"), "{}", errors[1]);
    assert!(
        errors[1].contains("rule \"Template\": annotation `summary`: template error"),
        "{}",
        errors[1]
    );
}

#[test]
fn bad_keys_names_and_labels_are_errors() {
    let errors = parse(
        r#"
[[rule]]
name = "9lives"
expr = "up"
labels = { alertname = "x" }
fore = "1m"

[[rule]]
name = "Ok"
expr = "up"
for = "10"
"#,
    )
    .unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("unknown field `fore`"), "{}", errors[0]);
    assert!(errors[1].starts_with("warden.toml:11:"), "{}", errors[1]);
    assert!(errors[1].contains("no unit"), "{}", errors[1]);

    let errors =
        parse("[[rule]]\nname = \"9lives\"\nexpr = \"up\"\nlabels = { alertname = \"x\" }\n")
            .unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].starts_with("warden.toml:2:8:"), "{}", errors[0]);
    assert!(errors[1].contains("label `alertname`"), "{}", errors[1]);
}

#[test]
fn rule_files_are_globbed_beside_the_config_and_names_are_unique() {
    let dir = Scratch::new("files");
    dir.write(
        "rules/a.toml",
        "[[rule]]\nname = \"FromA\"\nexpr = \"up == 0\"\n",
    );
    dir.write(
        "rules/b.toml",
        "[[rule]]\nname = \"Main\"\nexpr = \"up == 0\"\n\n[[rule]]\nname = \"Broken\"\nexpr = \"up ==\"\n",
    );
    dir.write("rules/ignored.txt", "not toml");
    let main = dir.write(
        "warden.toml",
        "rule_files = [\"rules/*.toml\"]\n\n[[rule]]\nname = \"Main\"\nexpr = \"up\"\n",
    );
    let errors = Config::load(Some(&main)).unwrap_err();
    let errors: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
    let b = dir.0.join("rules/b.toml");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors.iter().any(|e| e.starts_with(&format!(
            "{}:2:8: rule \"Main\" is defined twice (first at {}:4:8)",
            b.display(),
            main.display()
        ))),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.starts_with(&format!("{}:7:", b.display())) && e.contains("rule \"Broken\"")),
        "{errors:?}"
    );

    std::fs::remove_file(&b).unwrap();
    let config = Config::load(Some(&main)).unwrap();
    let names: Vec<&str> = config
        .alerting
        .rules
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["Main", "FromA"]);
    assert_eq!(
        config.alerting.rules[1].origin,
        Origin::File(dir.0.join("rules/a.toml"))
    );
}

#[test]
fn a_missing_rule_file_and_foreign_sections_are_errors() {
    let dir = Scratch::new("missing");
    dir.write("rules/x.toml", "[server]\nlisten = \"127.0.0.1:1\"\n");
    let main = dir.write(
        "warden.toml",
        "rule_files = [\"rules/none.toml\", \"rules/x.toml\"]\n",
    );
    let errors: Vec<String> = Config::load(Some(&main))
        .unwrap_err()
        .0
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("none.toml does not exist")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("x.toml:1:2: unknown section `server`")),
        "{errors:?}"
    );
}

#[test]
fn wildcards_match_like_a_shell() {
    assert!(wildcard_match(b"*.toml", b"db.toml"));
    assert!(!wildcard_match(b"*.toml", b"db.toml.bak"));
    assert!(!wildcard_match(b"*.toml", b".hidden.toml"));
    assert!(wildcard_match(b"d?.t*l", b"db.toml"));
    assert!(wildcard_match(b"*a*b", b"xaxab"));
}
