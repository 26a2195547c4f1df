//! Values that may be kept out of the config file: any string may instead be
//! `{ env = "NAME" }`, `{ file = "/path" }` or `{ credential = "name" }` (a
//! file in systemd's `$CREDENTIALS_DIRECTORY`, from `LoadCredential=`).
//!
//! Secrets are resolved once at load time, so a missing file is a config
//! error rather than a surprise at 3 a.m.; their values are remembered so
//! they can be redacted wherever they might surface.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Deserializer};

/// A resolved secret string; never printed by `Debug`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// The secret's value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = toml::Value::deserialize(deserializer)?;
        match resolve(&value) {
            Ok(Some(text)) => Ok(Secret(text)),
            Ok(None) => match value {
                toml::Value::String(s) => Ok(Secret(s)),
                other => Err(serde::de::Error::custom(format!(
                    "expected a string or {{ env = \"NAME\" }} / {{ file = \"PATH\" }} / \
                     {{ credential = \"NAME\" }}, found {}",
                    other.type_str()
                ))),
            },
            Err(message) => Err(serde::de::Error::custom(message)),
        }
    }
}

/// If `value` is a one-key secret reference table, reads it.
///
/// Returns `Ok(None)` for anything that is not a reference, so callers can
/// walk arbitrary tables.
pub(super) fn resolve(value: &toml::Value) -> Result<Option<String>, String> {
    let Some(table) = value.as_table() else {
        return Ok(None);
    };
    if table.len() != 1 {
        return Ok(None);
    }
    let (kind, arg) = table.iter().next().expect("one entry");
    let Some(arg) = arg.as_str() else {
        return Ok(None);
    };
    match kind.as_str() {
        "env" => std::env::var(arg)
            .map(Some)
            .map_err(|_| format!("environment variable {arg} is not set")),
        "file" => read_secret_file(Path::new(arg)).map(Some),
        "credential" => {
            let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
                format!("credential {arg:?} requested but $CREDENTIALS_DIRECTORY is not set")
            })?;
            if arg.contains('/') {
                return Err(format!("credential name {arg:?} must not contain '/'"));
            }
            read_secret_file(&Path::new(&dir).join(arg)).map(Some)
        }
        _ => Ok(None),
    }
}

/// Largest secret file read: tokens and passwords are short, and a path
/// to `/dev/zero` must not exhaust memory.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Reads a secret file; one trailing newline is not part of the secret. Only
/// regular files are read: a FIFO or a device would block or never end.
fn read_secret_file(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let fail = |e: std::io::Error| format!("cannot read secret file {}: {e}", path.display());
    let meta = std::fs::metadata(path).map_err(fail)?;
    if !meta.is_file() {
        return Err(format!(
            "secret file {} is not a regular file",
            path.display()
        ));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_SECRET_BYTES + 1).read_to_end(&mut bytes))
        .map_err(fail)?;
    if bytes.len() as u64 > MAX_SECRET_BYTES {
        return Err(format!(
            "secret file {} is larger than 64 KiB",
            path.display()
        ));
    }
    let mut text = String::from_utf8(bytes)
        .map_err(|_| format!("secret file {} is not UTF-8", path.display()))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// Replaces every secret reference inside `value` with its resolved string,
/// recording each resolved value in `found`. Errors name the dotted key path.
pub(super) fn resolve_tree(
    value: &mut toml::Value,
    path: &str,
    found: &mut Vec<String>,
    errors: &mut Vec<String>,
) {
    match resolve(value) {
        Ok(Some(text)) => {
            found.push(text.clone());
            *value = toml::Value::String(text);
            return;
        }
        Ok(None) => {}
        Err(message) => {
            errors.push(format!("{path}: {message}"));
            return;
        }
    }
    match value {
        toml::Value::Table(table) => {
            for (key, child) in table.iter_mut() {
                resolve_tree(child, &format!("{path}.{key}"), found, errors);
            }
        }
        toml::Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                resolve_tree(child, &format!("{path}[{i}]"), found, errors);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_secrets_lose_one_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("warden-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "s3cr3t\n\n").unwrap();
        let value: toml::Value = toml::from_str(&format!(
            "v = {{ file = {:?} }}",
            path.display().to_string()
        ))
        .unwrap();
        assert_eq!(resolve(&value["v"]).unwrap().as_deref(), Some("s3cr3t\n"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn resolves_nested_references_and_names_failures() {
        let mut value: toml::Value = toml::from_str(
            r#"
            plain = "x"
            nested = { inner = { env = "WARDEN_TEST_SURELY_UNSET_VARIABLE" } }
            list = [{ env = "PATH" }]
            "#,
        )
        .unwrap();
        let (mut found, mut errors) = (Vec::new(), Vec::new());
        resolve_tree(&mut value, "config", &mut found, &mut errors);
        assert_eq!(
            errors,
            [
                "config.nested.inner: environment variable WARDEN_TEST_SURELY_UNSET_VARIABLE is not set"
            ]
        );
        assert_eq!(found, [std::env::var("PATH").unwrap()]);
        assert!(value["list"][0].is_str());
        assert_eq!(value["plain"].as_str(), Some("x"));
    }

    #[test]
    fn only_small_regular_files_are_read() {
        assert!(
            read_secret_file(Path::new("/dev/zero"))
                .unwrap_err()
                .contains("not a regular file")
        );
        assert!(
            read_secret_file(Path::new("/"))
                .unwrap_err()
                .contains("not a regular file")
        );
        let dir = std::env::temp_dir().join(format!("warden-secret-big-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big");
        std::fs::write(&big, vec![b'x'; 70 * 1024]).unwrap();
        assert!(
            read_secret_file(&big)
                .unwrap_err()
                .contains("larger than 64 KiB")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn debug_never_shows_the_value() {
        assert_eq!(
            format!("{:?}", Secret("hunter2".into())),
            "Secret([redacted])"
        );
    }
}
