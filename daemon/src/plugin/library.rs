//! Opening one plugin library and validating its descriptor.
//!
//! The order of reads is the ABI's promise: the fixed header first (magic,
//! major version, size), and nothing past the size the plugin declared. A
//! plugin built for an older minor version has a shorter descriptor, whose
//! missing function pointers read as absent; a newer one has a longer
//! descriptor, whose extra fields are ignored.

use std::ffi::CStr;
use std::mem::{offset_of, size_of};
use std::path::{Path, PathBuf};

use warden_plugin_api::ffi::{
    WARDEN_ABI_MAGIC, WARDEN_ABI_MAJOR, WARDEN_PLUGIN_ENTRY_SYMBOL, WardenAbiHeader, WardenCheckFn,
    WardenCreateFn, WardenDestroyFn, WardenFreeBufFn, WardenPluginDescriptor, WardenPluginEntry,
};

/// Why a library was refused. The message is one line and names no path; the
/// caller adds it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// `dlopen` failed: not a shared library, wrong architecture, missing
    /// dependency.
    #[error("not a loadable library: {0}")]
    NotLoadable(String),
    /// No entry symbol.
    #[error("not a Warden plugin: no `{WARDEN_PLUGIN_ENTRY_SYMBOL}` symbol")]
    NoEntry,
    /// The entry returned null or a header without the magic number.
    #[error("not a Warden plugin: {0}")]
    BadDescriptor(&'static str),
    /// Built against another ABI major version.
    #[error(
        "plugin ABI {plugin_major}.{plugin_minor} is incompatible with this warden's ABI {host_major}.x"
    )]
    AbiMajor {
        /// The plugin's major version.
        plugin_major: u16,
        /// The plugin's minor version.
        plugin_minor: u16,
        /// The host's major version.
        host_major: u16,
    },
    /// A required function or string is missing.
    #[error("descriptor lacks {0}")]
    Missing(&'static str),
    /// Name or version is not UTF-8 or the name is empty.
    #[error("descriptor has an invalid {0}")]
    Invalid(&'static str),
}

/// The function table of a loaded plugin, copied out of its descriptor.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VTable {
    pub(crate) create: WardenCreateFn,
    pub(crate) check: WardenCheckFn,
    pub(crate) free_buf: WardenFreeBufFn,
    pub(crate) destroy: Option<WardenDestroyFn>,
}

/// A loaded, validated plugin library. Instances hold an `Arc` of it, so the
/// code they run is never unmapped while they live.
#[derive(Debug)]
pub struct Library {
    /// Plugin name from the descriptor.
    pub name: String,
    /// Plugin version from the descriptor.
    pub version: String,
    /// One-line description (ABI 1.1 and later), possibly empty.
    pub description: String,
    /// ABI version the plugin was built against, (major, minor).
    pub abi: (u16, u16),
    /// Where it was loaded from.
    pub path: PathBuf,
    /// The file as it was when loaded, to tell a changed file on reload.
    pub identity: FileIdentity,
    pub(crate) vtable: VTable,
    // Dropped last: unloading the code is only sound once nothing can call it.
    _library: libloading::Library,
    // Keeps the private copy of a reloaded file (and so its name) alive.
    _copy: Option<std::fs::File>,
}

/// What tells one version of a file from another without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    device: u64,
    inode: u64,
    size: u64,
    modified_ns: i128,
}

impl FileIdentity {
    /// The identity of the file at `path` now.
    pub fn of(path: &Path) -> std::io::Result<FileIdentity> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path)?;
        Ok(FileIdentity {
            device: meta.dev(),
            inode: meta.ino(),
            size: meta.size(),
            modified_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        })
    }
}

impl Library {
    /// Opens `path` and validates it as a Warden plugin.
    ///
    /// The library is loaded from a private in-memory copy, never from the
    /// file itself: a plugin file overwritten in place while mapped would
    /// change the daemon's running code under it (and crash it), and the
    /// dynamic loader would hand back the old code for a path it has seen.
    /// The copy is checked to be a complete ELF shared object first, since
    /// mapping a truncated file faults (SIGBUS) inside `dlopen`.
    pub fn open(path: &Path) -> Result<Library, LoadError> {
        let not_loadable = |e: std::io::Error| LoadError::NotLoadable(e.to_string());
        let identity = FileIdentity::of(path).map_err(not_loadable)?;
        let bytes = std::fs::read(path).map_err(not_loadable)?;
        super::elf::check(&bytes).map_err(LoadError::NotLoadable)?;
        let copy = anonymous_copy(&bytes).map_err(not_loadable)?;
        let fd_path = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&copy)
        ));
        Library::load(&fd_path, path, identity, Some(copy))
    }

    fn load(
        load_path: &Path,
        path: &Path,
        identity: FileIdentity,
        copy: Option<std::fs::File>,
    ) -> Result<Library, LoadError> {
        // SAFETY: loading a library runs its initialisers. Plugins come only
        // from directories the operator configured, and the registry refuses
        // files others could have written; that trust is the contract.
        let library = unsafe { libloading::Library::new(load_path) }
            .map_err(|e| LoadError::NotLoadable(one_line(&error_chain(&e))))?;

        // SAFETY: the symbol's type is fixed by the ABI; a library that
        // exports the name with another type breaks that contract.
        let entry: WardenPluginEntry = unsafe {
            *library
                .get::<WardenPluginEntry>(WARDEN_PLUGIN_ENTRY_SYMBOL.as_bytes())
                .map_err(|_| LoadError::NoEntry)?
        };

        // SAFETY: the entry function takes no arguments and returns a pointer
        // to static data, per the ABI.
        let raw = unsafe { entry() };
        if raw.is_null() {
            return Err(LoadError::BadDescriptor("entry returned null"));
        }
        // SAFETY: every descriptor starts with the fixed header, whose shape
        // never changes; reading it is valid for any ABI version.
        let header: WardenAbiHeader = unsafe { raw.cast::<WardenAbiHeader>().read_unaligned() };
        if header.magic != WARDEN_ABI_MAGIC {
            return Err(LoadError::BadDescriptor(
                "wrong magic number in descriptor header",
            ));
        }
        if header.abi_major != WARDEN_ABI_MAJOR {
            return Err(LoadError::AbiMajor {
                plugin_major: header.abi_major,
                plugin_minor: header.abi_minor,
                host_major: WARDEN_ABI_MAJOR,
            });
        }
        let declared = header.size as usize;
        if declared < size_of::<WardenAbiHeader>() {
            return Err(LoadError::BadDescriptor(
                "descriptor size smaller than its header",
            ));
        }

        // Copy only the bytes the plugin declared into a zeroed descriptor:
        // fields past its size read as null (absent), extra fields of a newer
        // minor are never touched.
        let known = size_of::<WardenPluginDescriptor>();
        let mut zeroed = std::mem::MaybeUninit::<WardenPluginDescriptor>::zeroed();
        // SAFETY: the plugin guarantees `declared` readable bytes at `raw`; we
        // copy at most `known` of them into a buffer of exactly `known` bytes.
        // All-zero bytes are a valid descriptor (null pointers, `None`s).
        let descriptor = unsafe {
            std::ptr::copy_nonoverlapping(
                raw.cast::<u8>(),
                zeroed.as_mut_ptr().cast::<u8>(),
                declared.min(known),
            );
            zeroed.assume_init()
        };

        let present = |offset: usize, size: usize| offset + size <= declared;
        let name = read_str(
            descriptor.name,
            present(offset_of!(WardenPluginDescriptor, name), 8),
        )
        .ok_or(LoadError::Missing("a name"))?
        .map_err(|()| LoadError::Invalid("name"))?;
        if name.is_empty() || name.chars().any(|c| c.is_control() || c == '/') {
            return Err(LoadError::Invalid("name"));
        }
        let version = read_str(
            descriptor.version,
            present(offset_of!(WardenPluginDescriptor, version), 8),
        )
        .ok_or(LoadError::Missing("a version"))?
        .map_err(|()| LoadError::Invalid("version"))?;
        let description = read_str(
            descriptor.description,
            present(offset_of!(WardenPluginDescriptor, description), 8),
        )
        .and_then(Result::ok)
        .unwrap_or_default();
        let vtable = VTable {
            create: descriptor
                .create
                .ok_or(LoadError::Missing("a create function"))?,
            check: descriptor
                .check
                .ok_or(LoadError::Missing("a check function"))?,
            free_buf: descriptor
                .free_buf
                .ok_or(LoadError::Missing("a free_buf function"))?,
            destroy: descriptor.destroy,
        };

        Ok(Library {
            name,
            version,
            description,
            abi: (header.abi_major, header.abi_minor),
            path: path.to_owned(),
            vtable,
            identity,
            _library: library,
            _copy: copy,
        })
    }
}

/// An anonymous, sealed-off in-memory file holding `bytes`.
fn anonymous_copy(bytes: &[u8]) -> std::io::Result<std::fs::File> {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    // SAFETY: memfd_create takes a NUL-terminated name and flags; it returns
    // a new descriptor we own, or -1.
    let fd = unsafe { libc::memfd_create(c"warden-plugin".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor owned by nothing else.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    file.write_all(bytes)?;
    Ok(file)
}

/// Reads a NUL-terminated string from a descriptor field; `None` if absent.
fn read_str(ptr: *const std::ffi::c_char, present: bool) -> Option<Result<String, ()>> {
    if !present || ptr.is_null() {
        return None;
    }
    // SAFETY: a present, non-null name or version points to a NUL-terminated
    // static string in the loaded library, per the ABI.
    let text = unsafe { CStr::from_ptr(ptr) };
    Some(text.to_str().map(str::to_owned).map_err(|_| ()))
}

/// An error and its sources, joined: libloading puts dlerror's text in the
/// source.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
