//! The jwks plugin against the test HTTP server on 127.0.0.1, with key sets
//! shaped like those real identity providers publish, built from keys each
//! test generates afresh with the `openssl` CLI.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use warden_jwks::JwksCheck;
use warden_plugin_api::{CheckResult, Host, Plugin, Reason, RunContext, Status};
use warden_test_support::http::{HttpServer, Response};
use warden_test_support::redis::{TempDir, free_port};

/// A private key made by `openssl`, with its PEM kept for certificates.
struct Key {
    encoding: EncodingKey,
    alg: Algorithm,
    pem: PathBuf,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn key(dir: &Path, name: &str, alg: Algorithm) -> Key {
    let pem = dir.join(format!("{name}.pem"));
    let p = pem.to_str().unwrap();
    let encoding = match alg {
        Algorithm::RS256 => {
            openssl(&[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                p,
            ]);
            // jsonwebtoken takes RSA keys as PKCS#1 DER.
            EncodingKey::from_rsa_der(&openssl(&[
                "rsa",
                "-in",
                p,
                "-traditional",
                "-outform",
                "DER",
            ]))
        }
        Algorithm::ES256 | Algorithm::ES384 => {
            let curve = if alg == Algorithm::ES256 {
                "P-256"
            } else {
                "P-384"
            };
            let opt = format!("ec_paramgen_curve:{curve}");
            openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", &opt, "-out", p]);
            EncodingKey::from_ec_der(&pkcs8_der(p))
        }
        Algorithm::EdDSA => {
            openssl(&["genpkey", "-algorithm", "ED25519", "-out", p]);
            EncodingKey::from_ed_der(&pkcs8_der(p))
        }
        other => panic!("no generator for {other:?}"),
    };
    Key { encoding, alg, pem }
}

/// PKCS#8 DER, which jsonwebtoken takes for EC and Ed25519 keys (`openssl
/// pkey -outform DER` writes SEC1 for EC).
fn pkcs8_der(pem: &str) -> Vec<u8> {
    openssl(&["pkcs8", "-topk8", "-nocrypt", "-in", pem, "-outform", "DER"])
}

impl Key {
    /// The public JWK with `kid` and `extra` members merged in.
    fn jwk(&self, kid: &str, extra: Value) -> Value {
        let mut jwk =
            serde_json::to_value(Jwk::from_encoding_key(&self.encoding, self.alg).unwrap())
                .unwrap();
        let object = jwk.as_object_mut().unwrap();
        object.retain(|_, v| !v.is_null());
        object.insert("kid".into(), json!(kid));
        for (k, v) in extra.as_object().unwrap() {
            object.insert(k.clone(), v.clone());
        }
        jwk
    }

    /// A self-signed certificate for the key, as `x5c` and `x5t` members.
    fn x5c(&self, subject: &str) -> Value {
        let der = openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            self.pem.to_str().unwrap(),
            "-subj",
            subject,
            "-days",
            "1",
            "-outform",
            "DER",
        ]);
        let cert = self.pem.with_extension("der");
        std::fs::write(&cert, &der).unwrap();
        let sha1 = openssl(&["dgst", "-sha1", "-binary", cert.to_str().unwrap()]);
        let sha256 = openssl(&["dgst", "-sha256", "-binary", cert.to_str().unwrap()]);
        json!({
            "x5c": [STANDARD.encode(&der)],
            "x5t": URL_SAFE_NO_PAD.encode(sha1),
            "x5t#S256": URL_SAFE_NO_PAD.encode(sha256),
        })
    }

    fn sign(&self, kid: &str) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(kid.to_owned());
        let claims = json!({"sub": "warden-canary", "iss": "https://idp.example.test/", "iat": 1_700_000_000});
        encode(&header, &claims, &self.encoding).unwrap()
    }
}

fn merge(a: Value, b: Value) -> Value {
    let mut a = a;
    for (k, v) in b.as_object().unwrap() {
        a[k] = v.clone();
    }
    a
}

fn check(config: Value, timeout: Duration) -> CheckResult {
    let mut plugin = JwksCheck::create(config, Host::detached()).expect("config is valid");
    plugin.check(&RunContext::with_timeout(timeout))
}

fn metric(result: &CheckResult, name: &str) -> Option<f64> {
    result
        .metrics
        .iter()
        .find(|m| m.name == name)
        .map(|m| m.value)
}

fn serve(server: &HttpServer, response: Response) -> Value {
    server.route("/jwks", response);
    json!({"url": server.url("/jwks")})
}

#[test]
fn google_like_set_passes_with_cache_max_age() {
    let dir = TempDir::new("jwks").unwrap();
    let (a, b) = (
        key(dir.path(), "a", Algorithm::RS256),
        key(dir.path(), "b", Algorithm::RS256),
    );
    let doc = json!({"keys": [
        a.jwk("1f2b6e8f0a3c", json!({"use": "sig", "alg": "RS256"})),
        b.jwk("9c4d2e7a1b05", json!({"use": "sig", "alg": "RS256"})),
    ]});
    let server = HttpServer::start().unwrap();
    let config = serve(
        &server,
        Response::new(200)
            .header("Content-Type", "application/json; charset=UTF-8")
            .header(
                "Cache-Control",
                "public, max-age=19663, must-revalidate, no-transform",
            )
            .body(doc.to_string()),
    );
    let result = check(config, Duration::from_secs(5));
    assert_eq!(result.status, Status::Ok, "{result:?}");
    assert_eq!(metric(&result, "keys"), Some(2.0));
    assert_eq!(metric(&result, "usable_keys"), Some(2.0));
    assert_eq!(metric(&result, "cache_max_age_seconds"), Some(19663.0));
    assert!(metric(&result, "fetch_seconds").is_some());
    assert!(
        result.message.contains("2 of 2 keys usable (RSA 2)"),
        "{}",
        result.message
    );
}

#[test]
fn auth0_and_okta_like_sets_with_certificates_pass() {
    let dir = TempDir::new("jwks").unwrap();
    let (a, b) = (
        key(dir.path(), "a", Algorithm::RS256),
        key(dir.path(), "b", Algorithm::RS256),
    );
    let auth0 = json!({"keys": [
        a.jwk("QzBCMkZCQjE3", merge(json!({"use": "sig", "alg": "RS256"}), a.x5c("/CN=tenant.example.test"))),
        b.jwk("NkJCQzIyQzRB", merge(json!({"use": "sig", "alg": "RS256"}), b.x5c("/CN=tenant.example.test"))),
    ]});
    let okta = json!({"keys": [a.jwk("okta-kid-0001", json!({"use": "sig", "alg": "RS256"}))]});
    let server = HttpServer::start().unwrap();
    for doc in [auth0, okta] {
        let config = serve(&server, Response::json(doc.to_string()));
        let result = check(config, Duration::from_secs(5));
        assert_eq!(result.status, Status::Ok, "{result:?}");
        assert_eq!(metric(&result, "usable_keys"), metric(&result, "keys"));
    }
}

#[test]
fn keycloak_like_set_does_not_count_its_encryption_key() {
    let dir = TempDir::new("jwks").unwrap();
    let (sig, enc) = (
        key(dir.path(), "s", Algorithm::RS256),
        key(dir.path(), "e", Algorithm::RS256),
    );
    let doc = json!({"keys": [
        enc.jwk("enc-kid", merge(json!({"use": "enc", "alg": "RSA-OAEP"}), enc.x5c("/CN=realm"))),
        sig.jwk("sig-kid", merge(json!({"use": "sig", "alg": "RS256"}), sig.x5c("/CN=realm"))),
    ]});
    let server = HttpServer::start().unwrap();
    let result = check(
        serve(&server, Response::json(doc.to_string())),
        Duration::from_secs(5),
    );
    assert_eq!(result.status, Status::Ok, "{result:?}");
    assert_eq!(metric(&result, "keys"), Some(2.0));
    assert_eq!(metric(&result, "usable_keys"), Some(1.0));
    assert!(
        result.message.contains("1 for encryption"),
        "{}",
        result.message
    );

    // With only the encryption key left, nothing can verify a token.
    let only_enc = json!({"keys": [enc.jwk("enc-kid", json!({"use": "enc", "alg": "RSA-OAEP"}))]});
    let result = check(
        serve(&server, Response::json(only_enc.to_string())),
        Duration::from_secs(5),
    );
    assert_eq!(result.status, Status::Critical);
    assert!(
        result.message.contains("no usable signing key"),
        "{}",
        result.message
    );
}

#[test]
fn mixed_set_with_an_unknown_key_type_warns_and_counts_usable_keys() {
    let dir = TempDir::new("jwks").unwrap();
    let doc = json!({"keys": [
        key(dir.path(), "r", Algorithm::RS256).jwk("rsa-1", json!({})),
        key(dir.path(), "p256", Algorithm::ES256).jwk("ec-256", json!({"use": "sig"})),
        key(dir.path(), "p384", Algorithm::ES384).jwk("ec-384", json!({})),
        key(dir.path(), "ed", Algorithm::EdDSA).jwk("ed-1", json!({})),
        {"kty": "AKP", "alg": "ML-DSA-65", "kid": "pq-1", "pub": "AAAA"},
    ]});
    let server = HttpServer::start().unwrap();
    let config = serve(
        &server,
        Response::new(200)
            .header("Content-Type", "application/jwk-set+json; charset=utf-8")
            .body(doc.to_string()),
    );
    let result = check(config, Duration::from_secs(5));
    assert_eq!(result.status, Status::Warning, "{result:?}");
    assert_eq!(metric(&result, "keys"), Some(5.0));
    assert_eq!(metric(&result, "usable_keys"), Some(4.0));
    assert!(
        result.message.contains("kid \"pq-1\""),
        "{}",
        result.message
    );
    assert!(
        result.message.contains("unknown key type \"AKP\""),
        "{}",
        result.message
    );
    assert!(
        result.message.contains("EC 2, OKP 1, RSA 1"),
        "{}",
        result.message
    );
}

#[test]
fn expected_kids_and_min_keys() {
    let dir = TempDir::new("jwks").unwrap();
    let doc = json!({"keys": [key(dir.path(), "a", Algorithm::ES256).jwk("current", json!({}))]});
    let server = HttpServer::start().unwrap();
    let mut config = serve(&server, Response::json(doc.to_string()));
    config["expected_kids"] = json!(["current"]);
    assert_eq!(
        check(config.clone(), Duration::from_secs(5)).status,
        Status::Ok
    );

    config["expected_kids"] = json!(["current", "next"]);
    let result = check(config.clone(), Duration::from_secs(5));
    assert_eq!(result.status, Status::Critical);
    assert!(
        result
            .message
            .contains("expected kids missing or unusable: next"),
        "{}",
        result.message
    );

    config["expected_kids"] = json!([]);
    config["min_keys"] = json!(2);
    let result = check(config, Duration::from_secs(5));
    assert_eq!(result.reason, Some(Reason::Threshold), "{result:?}");
}

#[test]
fn html_page_with_status_200_is_not_a_set() {
    let server = HttpServer::start().unwrap();
    let html = "<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Please sign in</body></html>";
    let config = serve(
        &server,
        Response::new(200)
            .header("Content-Type", "text/html; charset=utf-8")
            .body(html),
    );
    let result = check(config, Duration::from_secs(5));
    assert_eq!(result.status, Status::Critical);
    assert_eq!(result.reason, Some(Reason::Protocol));
    let m = &result.message;
    assert!(m.contains("not a JWK Set"), "{m}");
    assert!(m.contains("HTTP 200"), "{m}");
    assert!(m.contains("text/html; charset=utf-8"), "{m}");
    assert!(m.contains(r#""<!DOCTYPE html>\n<html><head>"#), "{m}");
}

#[test]
fn documents_that_are_not_sets_fail_precisely() {
    let server = HttpServer::start().unwrap();
    let cases = [
        (
            r#""eyJhbGciOi""#,
            "not a JWK Set: the document is a JSON string",
        ),
        (
            r#"{"keys":{}}"#,
            "not a JWK Set: \"keys\" is an object, not an array",
        ),
        (r#"{"keys":[]}"#, "no usable signing key: \"keys\" is empty"),
        (
            r#"{"issuer":"x"}"#,
            "not a JWK Set: the object has no \"keys\" member",
        ),
    ];
    for (body, expected) in cases {
        let result = check(serve(&server, Response::json(body)), Duration::from_secs(5));
        assert_eq!(result.status, Status::Critical, "{body}");
        assert!(
            result.message.contains(expected),
            "{body}: {}",
            result.message
        );
    }
}

#[test]
fn server_error_is_critical() {
    let server = HttpServer::start().unwrap();
    let config = serve(
        &server,
        Response::new(503)
            .header("Content-Type", "text/plain")
            .body("down"),
    );
    let result = check(config, Duration::from_secs(5));
    assert_eq!(result.status, Status::Critical);
    assert_eq!(result.reason, Some(Reason::Protocol));
    assert!(result.message.contains("HTTP 503"), "{}", result.message);
}

#[test]
fn body_over_the_limit_is_cut_off() {
    let server = HttpServer::start().unwrap();
    let big = format!(r#"{{"keys":[],"pad":"{}"}}"#, "x".repeat(100 * 1024));
    let mut config = serve(&server, Response::json(big.clone()));
    config["max_body_bytes"] = json!(4096);
    let result = check(config.clone(), Duration::from_secs(5));
    assert_eq!(result.reason, Some(Reason::Protocol), "{result:?}");
    assert!(
        result.message.contains("over the limit of 4096 bytes"),
        "{}",
        result.message
    );

    // Without Content-Length the limit applies while reading.
    server.route("/jwks", Response::json(big).without_length());
    let result = check(config, Duration::from_secs(5));
    assert_eq!(result.reason, Some(Reason::Protocol), "{result:?}");
    assert!(
        result.message.contains("exceeds the limit of 4096 bytes"),
        "{}",
        result.message
    );
}

#[test]
fn trickling_server_times_out_at_the_deadline() {
    let server = HttpServer::start().unwrap();
    let config = serve(
        &server,
        Response::json(r#"{"keys":[]}"#).trickle(Duration::from_secs(1)),
    );
    let result = check(config, Duration::from_millis(2500));
    assert_eq!(result.status, Status::Critical);
    assert_eq!(result.reason, Some(Reason::Timeout), "{result:?}");
    assert!(
        result.message.contains("reading the body"),
        "{}",
        result.message
    );
}

#[test]
fn redirects_are_bounded() {
    let dir = TempDir::new("jwks").unwrap();
    let doc = json!({"keys": [key(dir.path(), "a", Algorithm::ES256).jwk("k", json!({}))]});
    let server = HttpServer::start().unwrap();
    server.route("/final", Response::json(doc.to_string()));
    for hop in 1..=4 {
        let next = if hop == 4 {
            "/final".to_owned()
        } else {
            format!("/hop{}", hop + 1)
        };
        server.route(&format!("/hop{hop}"), Response::redirect(302, next));
    }
    // hop3 -> hop4 -> final: two redirects.
    let result = check(json!({"url": server.url("/hop3")}), Duration::from_secs(5));
    assert_eq!(result.status, Status::Ok, "{result:?}");
    // hop1 -> ... -> final: four redirects, one over the default of 3.
    let result = check(json!({"url": server.url("/hop1")}), Duration::from_secs(5));
    assert_eq!(result.reason, Some(Reason::Protocol), "{result:?}");
    assert!(
        result.message.contains("more than 3 redirects"),
        "{}",
        result.message
    );
    let result = check(
        json!({"url": server.url("/hop1"), "max_redirects": 4}),
        Duration::from_secs(5),
    );
    assert_eq!(result.status, Status::Ok, "{result:?}");
    let result = check(
        json!({"url": server.url("/hop4"), "max_redirects": 0}),
        Duration::from_secs(5),
    );
    assert!(result.message.contains("HTTP 302"), "{}", result.message);
}

#[test]
fn wrong_content_type_on_a_valid_set_warns() {
    let dir = TempDir::new("jwks").unwrap();
    let doc = json!({"keys": [key(dir.path(), "a", Algorithm::EdDSA).jwk("k", json!({}))]});
    let server = HttpServer::start().unwrap();
    let config = serve(
        &server,
        Response::new(200)
            .header("Content-Type", "text/plain")
            .body(doc.to_string()),
    );
    let result = check(config, Duration::from_secs(5));
    assert_eq!(result.status, Status::Warning, "{result:?}");
    assert!(
        result.message.contains("served as text/plain"),
        "{}",
        result.message
    );
}

#[test]
fn refused_and_dns_failures() {
    let url = format!("http://127.0.0.1:{}/jwks", free_port().unwrap());
    let result = check(json!({"url": url}), Duration::from_secs(5));
    assert_eq!(result.reason, Some(Reason::Refused), "{result:?}");
    let result = warden_test_support::offline::without_network(|| {
        check(
            json!({"url": "http://jwks.warden-check.invalid/"}),
            Duration::from_secs(10),
        )
    });
    assert_eq!(result.reason, Some(Reason::Dns), "{result:?}");
}

#[test]
fn canary_token_verifies_and_a_rotation_breaks_it() {
    let dir = TempDir::new("jwks").unwrap();
    let signer = key(dir.path(), "signer", Algorithm::ES256);
    let other = key(dir.path(), "other", Algorithm::RS256);
    let token_file = dir.path().join("canary.jwt");
    std::fs::write(&token_file, format!("{}\n", signer.sign("2024-key"))).unwrap();

    let server = HttpServer::start().unwrap();
    let published = json!({"keys": [
        other.jwk("2023-key", json!({"use": "sig"})),
        signer.jwk("2024-key", json!({"use": "sig"})),
    ]});
    let mut config = serve(&server, Response::json(published.to_string()));
    config["canary_token_file"] = json!(token_file.display().to_string());
    let result = check(config.clone(), Duration::from_secs(5));
    assert_eq!(result.status, Status::Ok, "{result:?}");
    assert!(
        result
            .message
            .contains("canary token verified by kid \"2024-key\""),
        "{}",
        result.message
    );
    assert_eq!(metric(&result, "canary_verified"), Some(1.0));

    // The issuer rotates to a new key and drops the one the token was signed with.
    let rotated = key(dir.path(), "rotated", Algorithm::ES256);
    let after = json!({"keys": [rotated.jwk("2025-key", json!({"use": "sig"}))]});
    server.route("/jwks", Response::json(after.to_string()));
    let result = check(config.clone(), Duration::from_secs(5));
    assert_eq!(result.status, Status::Critical, "{result:?}");
    assert_eq!(result.reason, Some(Reason::Auth));
    assert!(
        result.message.contains("verified by none of 1 usable keys"),
        "{}",
        result.message
    );
    assert_eq!(metric(&result, "canary_verified"), Some(0.0));

    // Same kid, different key material: still caught.
    let reused = json!({"keys": [rotated.jwk("2024-key", json!({"use": "sig"}))]});
    server.route("/jwks", Response::json(reused.to_string()));
    let result = check(config, Duration::from_secs(5));
    assert_eq!(result.status, Status::Critical, "{result:?}");
}
