use super::*;

fn parse(text: &str) -> Result<Config, Diagnostics> {
    Config::parse(text, Origin::File("warden.toml".into()))
}

fn errors(text: &str) -> Vec<String> {
    parse(text)
        .unwrap_err()
        .0
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn embedded_default_is_valid() {
    let config = Config::load(None).unwrap();
    assert_eq!(config.checks.len(), 1);
    assert_eq!(config.checks[0].plugin, "system");
    assert_eq!(config.server.listen.to_string(), DEFAULT_LISTEN);
}

#[test]
fn reads_a_full_check() {
    let config = parse(
        r#"
        [server]
        listen = "127.0.0.1:0"
        degraded_status = 299

        [[check]]
        name = "db"
        plugin = "postgres"
        interval = "1h30m"
        timeout = "250ms"
        critical = false
        fall = 3
        rise = 2
        isolation = "process"
        [check.config]
        url = "postgres://127.0.0.1/app"
        password = { env = "PATH" }
        "#,
    )
    .unwrap();
    let check = &config.checks[0];
    assert_eq!(check.interval.get(), std::time::Duration::from_secs(5400));
    assert_eq!(check.timeout.get(), std::time::Duration::from_millis(250));
    assert_eq!((check.fall, check.rise, check.critical), (3, 2, false));
    assert_eq!(check.isolation, Isolation::Process);
    assert_eq!(check.config["password"], std::env::var("PATH").unwrap());
    assert_eq!(config.secrets, [std::env::var("PATH").unwrap()]);
    assert_eq!(check.plugin_position.line, 8);
}

#[test]
fn reports_every_error_with_its_line() {
    let found = errors(
        r#"[server]
listen = "127.0.0.1:9731"

[[check]]
name = "a"
plugin = "system"
intervall = "10s"

[[check]]
name = "b"
plugin = "system"
interval = 10

[[check]]
name = "c"
plugin = "system"
interval = "-5s"

[[check]]
name = "d"
plugin = "system"
interval = "0s"

[bogus]
"#,
    );
    assert_eq!(found.len(), 5, "{found:#?}");
    assert!(
        found[0].starts_with("warden.toml:7:1: unknown field `intervall`"),
        "{found:#?}"
    );
    assert!(
        found[1].starts_with("warden.toml:12:12: `interval`: invalid type: integer `10`"),
        "{found:#?}"
    );
    assert!(
        found[2].starts_with("warden.toml:17:12: `interval`: duration \"-5s\" is negative"),
        "{found:#?}"
    );
    assert_eq!(
        found[3],
        "warden.toml:22:12: check \"d\": `interval` must be greater than zero"
    );
    assert_eq!(found[4], "warden.toml:24:2: unknown section `bogus`");
}

#[test]
fn refuses_duplicates_and_bad_counts() {
    let found = errors(
        r#"
[[check]]
name = "x"
plugin = "system"
fall = 0
timeout = "20s"

[[check]]
name = "y"
plugin = "system"

[[check]]
name = "y"
plugin = "system"
"#,
    );
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(
        found[0].contains(":5:8: check \"x\": `fall` must be at least 1"),
        "{found:#?}"
    );
    assert!(
        found[1].contains("`timeout` (20s) must not exceed `interval` (10s)"),
        "{found:#?}"
    );
    assert!(
        found[2].contains("check \"y\" is defined twice (first at line 10)"),
        "{found:#?}"
    );
}

#[test]
fn syntax_errors_have_positions() {
    let found = errors("[server\nlisten = 1\n");
    assert!(found[0].starts_with("warden.toml:1:"), "{found:#?}");
}

#[test]
fn missing_secret_is_an_error_naming_the_key() {
    let found = errors(
        r#"
[[check]]
name = "db"
plugin = "postgres"
[check.config]
password = { env = "WARDEN_TEST_UNSET_SECRET" }
"#,
    );
    assert_eq!(
        found,
        [
            "warden.toml:5:1: check \"db\": config.password: environment variable WARDEN_TEST_UNSET_SECRET is not set"
        ]
    );
}

#[test]
fn a_config_section_with_a_file_key_is_not_a_secret_reference() {
    let config = parse(
        r#"
[[check]]
name = "s"
plugin = "scripted"
[check.config]
file = "/nonexistent/script"
"#,
    )
    .unwrap();
    assert_eq!(
        config.checks[0].config,
        serde_json::json!({"file": "/nonexistent/script"})
    );
}
