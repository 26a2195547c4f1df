//! The canary token: a sample JWT that must verify against the fetched set,
//! so a key rotation that would break token validation is caught before
//! clients see it. Only the signature is checked; expiry, not-before and
//! audience are not, so a long-lived sample keeps working.

use std::path::Path;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};

use crate::keyset::UsableKey;

/// Reads the token file; the message names the key and file, never the token.
pub(crate) fn read_token(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("`canary_token_file` {}: cannot read: {e}", path.display()))?;
    let token = text.trim().to_owned();
    if token.split('.').count() != 3 {
        return Err(format!(
            "`canary_token_file` {}: not a compact JWT (three dot-separated parts)",
            path.display()
        ));
    }
    Ok(token)
}

/// Which key verified the token, or why none did.
pub(crate) fn verify(token: &str, keys: &[UsableKey]) -> Result<String, String> {
    let header = decode_header(token).map_err(|e| format!("canary token header: {e}"))?;
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();

    // Try the key the token names first, then every other usable key, so a
    // token whose kid was reused for a new key is still reported precisely.
    let mut ordered: Vec<&UsableKey> = keys.iter().collect();
    ordered.sort_by_key(|k| k.kid.is_none() || k.kid != header.kid);
    for key in ordered {
        let Ok(jwk) = serde_json::from_value::<Jwk>(key.json.clone()) else {
            continue;
        };
        let Ok(decoding) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        if decode::<serde_json::Value>(token, &decoding, &validation).is_ok() {
            return Ok(key.label());
        }
    }
    let named = match &header.kid {
        Some(kid) => format!("kid {kid:?}, "),
        None => String::new(),
    };
    Err(format!(
        "canary token ({named}{:?}) verified by none of {} usable keys: a key rotation would break token validation",
        header.alg,
        keys.len()
    ))
}
