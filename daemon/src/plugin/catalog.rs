//! Finding plugin libraries: which directories are searched, which files are
//! trusted, and which library answers to which plugin name.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::library::Library;

/// File name ending of plugin libraries on this platform.
const LIBRARY_SUFFIX: &str = std::env::consts::DLL_SUFFIX;

/// One library file found while scanning, loaded or refused.
#[derive(Debug, Clone)]
pub struct Found {
    /// The file.
    pub path: PathBuf,
    /// The library, or why it was refused (one line).
    pub outcome: Result<Arc<Library>, String>,
}

/// Every plugin library found, by name.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    /// Loaded plugins by name.
    pub plugins: BTreeMap<String, Arc<Library>>,
    /// Every file considered, in scan order.
    pub found: Vec<Found>,
    /// Plugin names provided by more than one file: (name, kept, refused).
    pub duplicates: Vec<(String, PathBuf, PathBuf)>,
}

impl Catalog {
    /// Scans `dirs` in order, loading every library file in them.
    pub fn scan(dirs: &[SearchDir]) -> Catalog {
        Catalog::rescan(dirs, &Catalog::default())
    }

    /// Scans again for a reload: a library whose file is unchanged since
    /// `previous` loaded it is reused as is (its instances live on); a
    /// changed file is loaded afresh from a private copy.
    pub fn rescan(dirs: &[SearchDir], previous: &Catalog) -> Catalog {
        let mut catalog = Catalog::default();
        let mut seen_dirs = Vec::new();
        for dir in dirs {
            let canonical = dir.path.canonicalize().unwrap_or_else(|_| dir.path.clone());
            if seen_dirs.contains(&canonical) {
                continue;
            }
            seen_dirs.push(canonical);
            catalog.scan_dir(dir, previous);
        }
        catalog
    }

    /// The plugin called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Library>> {
        self.plugins.get(name)
    }

    /// Why no plugin called `name` is available, for check errors.
    pub fn missing_reason(&self, name: &str) -> String {
        let known: Vec<&str> = self.plugins.keys().map(String::as_str).collect();
        if known.is_empty() {
            format!("plugin {name:?} not found: no plugins were loaded")
        } else {
            format!("plugin {name:?} not found (loaded: {})", known.join(", "))
        }
    }

    fn scan_dir(&mut self, search: &SearchDir, previous: &Catalog) {
        let dir = search.path.as_path();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) => {
                tracing::debug!(dir = %dir.display(), %error, "plugin directory not readable");
                return;
            }
        };
        let dir_refusal = unsafe_permissions(dir);
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && is_plugin_file(p, search.warden_only))
            .collect();
        paths.sort();
        for path in paths {
            let outcome = match dir_refusal
                .as_ref()
                .map(|why| format!("directory {why}"))
                .or_else(|| unsafe_permissions(&path))
            {
                Some(why) => Err(why),
                None => load(&path, previous),
            };
            let outcome = outcome.and_then(|library| match self.plugins.get(&library.name) {
                Some(first) => {
                    let kept = first.path.clone();
                    self.duplicates
                        .push((library.name.clone(), kept.clone(), path.clone()));
                    Err(format!(
                        "plugin name {:?} is already provided by {}",
                        library.name,
                        kept.display()
                    ))
                }
                None => {
                    self.plugins
                        .insert(library.name.clone(), Arc::clone(&library));
                    Ok(library)
                }
            });
            if let Err(reason) = &outcome {
                tracing::warn!(path = %path.display(), %reason, "plugin refused");
            }
            self.found.push(Found { path, outcome });
        }
    }
}

/// Whether `path` is named like a plugin library.
fn is_plugin_file(path: &Path, warden_only: bool) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.ends_with(LIBRARY_SUFFIX) && (!warden_only || name.starts_with("libwarden_"))
}

/// Loads `path`, reusing what `previous` loaded from it if the file is the same.
fn load(path: &Path, previous: &Catalog) -> Result<Arc<Library>, String> {
    let loaded_before = previous
        .found
        .iter()
        .find(|f| f.path == path)
        .and_then(|f| f.outcome.as_ref().ok());
    let fresh = match loaded_before {
        None => Library::open(path),
        Some(library) => match super::library::FileIdentity::of(path) {
            Ok(identity) if identity == library.identity => return Ok(Arc::clone(library)),
            _ => Library::open(path),
        },
    };
    fresh.map(Arc::new).map_err(|e| e.to_string())
}

/// Why `path` may not be trusted: writable by someone other than its owner
/// (root can write anything anyway).
fn unsafe_permissions(path: &Path) -> Option<String> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(error) => return Some(format!("cannot be inspected: {error}")),
    };
    let mode = meta.permissions().mode();
    (mode & 0o022 != 0).then(|| {
        format!(
            "is writable by group or others (mode {:o}); refusing to load from it",
            mode & 0o7777
        )
    })
}

/// A directory searched for plugins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchDir {
    /// The directory.
    pub path: PathBuf,
    /// Only `libwarden_*.so` files count: the executable's own directory
    /// (`/usr/bin` once installed) holds other libraries that must never be
    /// loaded (`ld.so`, for one).
    pub warden_only: bool,
}

/// The directories to search for `config`: the configured ones, then the
/// executable's own directory when allowed.
pub fn search_dirs(configured: &[PathBuf], beside_executable: bool) -> Vec<SearchDir> {
    let mut dirs: Vec<SearchDir> = configured
        .iter()
        .map(|path| SearchDir {
            path: path.clone(),
            warden_only: false,
        })
        .collect();
    if beside_executable
        && let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_owned))
    {
        dirs.push(SearchDir {
            path: dir,
            warden_only: true,
        });
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_warden_libraries_count_beside_the_executable() {
        let ld = Path::new("/usr/bin/ld.so");
        let plugin = Path::new("/usr/bin/libwarden_system.so");
        assert!(!is_plugin_file(ld, true));
        assert!(is_plugin_file(plugin, true));
        assert!(
            is_plugin_file(ld, false),
            "configured directories take any *.so"
        );
        assert!(!is_plugin_file(
            Path::new("/x/libwarden_system.so.bak"),
            false
        ));
    }
}
