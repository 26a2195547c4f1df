//! Validates a JWK Set key by key, as loose JSON rather than one typed
//! struct, so one odd key (an unknown `kty`, an encryption key, a curve the
//! verifier lacks) is reported on its own instead of failing the whole set.
//!
//! A key is *usable* when it can verify signatures: a known type with
//! well-formed public parameters, `use` absent or `sig`, `key_ops` absent or
//! containing `verify`, and an `alg` (optional) that fits the key.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};
use warden_plugin_api::{Reason, Status};

/// base64url as JWK uses it; padding is tolerated since some issuers add it.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One thing worth reporting about the set.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// How bad.
    pub status: Status,
    /// Why, for grouping.
    pub reason: Reason,
    /// For people.
    pub message: String,
}

impl Finding {
    fn warning(message: String) -> Self {
        Finding {
            status: Status::Warning,
            reason: Reason::Other,
            message,
        }
    }

    fn critical(message: String) -> Self {
        Finding {
            status: Status::Critical,
            reason: Reason::Other,
            message,
        }
    }
}

/// A key that can verify signatures.
#[derive(Debug, Clone)]
pub struct UsableKey {
    /// Position in `keys`, from 0.
    pub index: usize,
    /// The key's `kid`, if it has one.
    pub kid: Option<String>,
    /// `RSA`, `EC` or `OKP`.
    pub kty: String,
    /// The key's JSON, for building a verifier.
    pub json: Value,
}

impl UsableKey {
    /// `kid "abc"` or `key #3`, for messages.
    pub fn label(&self) -> String {
        match &self.kid {
            Some(kid) => format!("kid {kid:?}"),
            None => format!("key #{}", self.index),
        }
    }
}

/// What the set holds.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    /// Entries in `keys`, usable or not.
    pub total: usize,
    /// Keys that can verify signatures.
    pub usable: Vec<UsableKey>,
    /// Keys marked for encryption or key agreement; fine, but not counted.
    pub encryption: usize,
    /// Per-key problems.
    pub findings: Vec<Finding>,
}

impl KeySet {
    /// Usable keys per type, e.g. `RSA 2, EC 1`.
    pub fn by_type(&self) -> String {
        let mut counts = BTreeMap::new();
        for key in &self.usable {
            *counts.entry(key.kty.as_str()).or_insert(0) += 1;
        }
        counts
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why a document is not a JWK Set at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAKeySet(pub String);

/// Inspects a parsed document.
pub fn inspect(doc: &Value) -> Result<KeySet, NotAKeySet> {
    let object = doc.as_object().ok_or_else(|| {
        NotAKeySet(format!(
            "the document is {}, not an object with a \"keys\" array",
            kind(doc)
        ))
    })?;
    let keys = match object.get("keys") {
        None => return Err(NotAKeySet("the object has no \"keys\" member".to_owned())),
        Some(Value::Array(keys)) => keys,
        Some(other) => {
            return Err(NotAKeySet(format!(
                "\"keys\" is {}, not an array",
                kind(other)
            )));
        }
    };
    let mut set = KeySet {
        total: keys.len(),
        ..KeySet::default()
    };
    for (index, key) in keys.iter().enumerate() {
        match inspect_key(index, key) {
            Outcome::Usable(key) => set.usable.push(key),
            Outcome::Encryption => set.encryption += 1,
            Outcome::Skipped(finding) => set.findings.push(finding),
        }
    }
    let mut kids: BTreeMap<&str, Vec<&UsableKey>> = BTreeMap::new();
    for key in &set.usable {
        if let Some(kid) = &key.kid {
            kids.entry(kid).or_default().push(key);
        }
    }
    for (kid, keys) in kids.iter().filter(|(_, keys)| keys.len() > 1) {
        let same_type = keys.iter().all(|k| k.kty == keys[0].kty);
        if same_type {
            // Two keys of one type under one kid: a verifier picks one at random.
            set.findings.push(Finding::warning(format!(
                "kid {kid:?} is used by {} {} keys",
                keys.len(),
                keys[0].kty
            )));
        }
    }
    Ok(set)
}

enum Outcome {
    Usable(UsableKey),
    Encryption,
    Skipped(Finding),
}

fn inspect_key(index: usize, value: &Value) -> Outcome {
    let Some(key) = value.as_object() else {
        return Outcome::Skipped(Finding::warning(format!(
            "key #{index} is {}, not an object; skipped",
            kind(value)
        )));
    };
    let kid = match key.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(other) => {
            return Outcome::Skipped(Finding::warning(format!(
                "key #{index}: \"kid\" is {}, not a string; skipped",
                kind(other)
            )));
        }
    };
    let label = match &kid {
        Some(kid) => format!("key #{index} (kid {kid:?})"),
        None => format!("key #{index} (no kid)"),
    };
    let skip = |why: String| Outcome::Skipped(Finding::warning(format!("{label}: {why}; skipped")));

    let Some(kty) = key.get("kty").and_then(Value::as_str) else {
        return skip("no \"kty\"".to_owned());
    };
    // Private parts in a public set are a leak, whatever else the key is.
    let private: Vec<&str> = ["d", "p", "q", "dp", "dq", "qi", "k"]
        .into_iter()
        .filter(|m| key.contains_key(*m))
        .collect();
    if !private.is_empty() {
        return Outcome::Skipped(Finding::critical(format!(
            "{label}: publishes secret key material ({}); not used",
            private.join(", ")
        )));
    }
    match key.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(Value::String(u)) if u == "enc" => return Outcome::Encryption,
        Some(other) => return skip(format!("unknown \"use\" {other}")),
    }
    if let Some(ops) = key.get("key_ops") {
        let Some(ops) = ops.as_array() else {
            return skip("\"key_ops\" is not an array".into());
        };
        if !ops.iter().any(|op| op.as_str() == Some("verify")) {
            return Outcome::Encryption;
        }
    }
    let alg = match key.get("alg") {
        None => None,
        Some(Value::String(a)) => Some(a.as_str()),
        Some(other) => return skip(format!("\"alg\" is {}, not a string", kind(other))),
    };

    let checked = match kty {
        "RSA" => check_rsa(key, alg),
        "EC" => check_ec(key, alg),
        "OKP" => match key.get("crv").and_then(Value::as_str) {
            // X25519 and X448 are for key agreement, never signatures.
            Some("X25519" | "X448") => return Outcome::Encryption,
            _ => check_okp(key, alg),
        },
        "oct" => Err("a symmetric key has no place in a public set".to_owned()),
        other => Err(format!("unknown key type {other:?}")),
    };
    match checked {
        Ok(()) => Outcome::Usable(UsableKey {
            index,
            kid,
            kty: kty.to_owned(),
            json: value.clone(),
        }),
        Err(why) => skip(why),
    }
}

fn check_rsa(key: &Map<String, Value>, alg: Option<&str>) -> Result<(), String> {
    if let Some(alg) = alg
        && !matches!(
            alg,
            "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512"
        )
    {
        return Err(format!("\"alg\" {alg:?} does not fit an RSA key"));
    }
    let n = member_bytes(key, "n")?;
    let e = member_bytes(key, "e")?;
    let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
    if bits < 2048 {
        return Err(format!("RSA modulus of {bits} bits is below 2048"));
    }
    if e.is_empty() || e.iter().all(|b| *b == 0) {
        return Err("RSA exponent is zero".to_owned());
    }
    Ok(())
}

fn check_ec(key: &Map<String, Value>, alg: Option<&str>) -> Result<(), String> {
    let crv = key.get("crv").and_then(Value::as_str).ok_or("no \"crv\"")?;
    let (size, fits) = match crv {
        "P-256" => (32, "ES256"),
        "P-384" => (48, "ES384"),
        other => return Err(format!("curve {other:?} is not supported for verification")),
    };
    if let Some(alg) = alg
        && alg != fits
    {
        return Err(format!("\"alg\" {alg:?} does not fit curve {crv}"));
    }
    for member in ["x", "y"] {
        let len = member_bytes(key, member)?.len();
        if len != size {
            return Err(format!("\"{member}\" is {len} bytes, {crv} needs {size}"));
        }
    }
    Ok(())
}

fn check_okp(key: &Map<String, Value>, alg: Option<&str>) -> Result<(), String> {
    let crv = key.get("crv").and_then(Value::as_str).ok_or("no \"crv\"")?;
    if crv != "Ed25519" {
        return Err(format!("curve {crv:?} is not supported for verification"));
    }
    if let Some(alg) = alg
        && !matches!(alg, "EdDSA" | "Ed25519")
    {
        return Err(format!("\"alg\" {alg:?} does not fit an Ed25519 key"));
    }
    let len = member_bytes(key, "x")?.len();
    if len != 32 {
        return Err(format!("\"x\" is {len} bytes, Ed25519 needs 32"));
    }
    Ok(())
}

fn member_bytes(key: &Map<String, Value>, member: &str) -> Result<Vec<u8>, String> {
    let text = key
        .get(member)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no \"{member}\" string"))?;
    B64URL
        .decode(text)
        .map_err(|_| format!("\"{member}\" is not base64url"))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a JSON string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose;
    use serde_json::json;

    use super::*;

    fn b64(bytes: &[u8]) -> String {
        general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn document_shapes_that_are_not_sets() {
        let err = |doc: Value| inspect(&doc).unwrap_err().0;
        assert!(err(json!("keys")).contains("a JSON string"));
        assert!(err(json!({"keys": {}})).contains("\"keys\" is an object, not an array"));
        assert!(err(json!({"key": []})).contains("no \"keys\" member"));
        assert_eq!(inspect(&json!({"keys": []})).unwrap().total, 0);
    }

    #[test]
    fn keys_are_judged_one_by_one() {
        let n = b64(&[0xc5; 256]);
        let set = inspect(&json!({"keys": [
            {"kty": "RSA", "n": n, "e": "AQAB", "kid": "rsa"},
            {"kty": "RSA", "n": b64(&[0xc5; 128]), "e": "AQAB", "kid": "short"},
            {"kty": "EC", "crv": "P-256", "x": b64(&[1; 32]), "y": b64(&[2; 32]), "alg": "ES384"},
            {"kty": "RSA", "n": n, "e": "AQAB", "use": "enc"},
            {"kty": "oct", "k": "c2VjcmV0"},
            "not a key",
        ]}))
        .unwrap();
        assert_eq!(set.total, 6);
        assert_eq!(set.usable.len(), 1);
        assert_eq!(set.encryption, 1);
        let messages: Vec<&str> = set.findings.iter().map(|f| f.message.as_str()).collect();
        assert!(
            messages[0].contains("1024 bits is below 2048"),
            "{messages:?}"
        );
        assert!(
            messages[1].contains("\"ES384\" does not fit curve P-256"),
            "{messages:?}"
        );
        assert!(
            messages[2].contains("secret key material (k)"),
            "{messages:?}"
        );
        assert_eq!(set.findings[2].status, Status::Critical);
        assert!(
            messages[3].contains("key #5 is a JSON string"),
            "{messages:?}"
        );
    }
}
