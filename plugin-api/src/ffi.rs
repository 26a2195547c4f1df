//! The C ABI between the daemon and a plugin library: `#[repr(C)]` types and
//! version constants, mirrored one-to-one by `include/warden_plugin.h`.
//!
//! Compatibility rules, which hold for every 1.x release:
//! - [`WardenAbiHeader`] never changes shape; the host reads it before
//!   anything else and refuses another `abi_major`.
//! - Every struct that may grow carries its own `size`; fields are only ever
//!   appended, and a reader ignores what lies past the size it knows and
//!   treats what the other side's size does not reach as absent.
//! - Every function pointer is nullable.
//! - Only C types cross: pointers with lengths, UTF-8 JSON, integers. Memory
//!   is freed by the side that allocated it.

use std::ffi::{c_char, c_void};

/// `"WRDN"` read as a little-endian `u32`; tells a Warden descriptor apart
/// from whatever else a stray symbol might point at.
pub const WARDEN_ABI_MAGIC: u32 = u32::from_le_bytes(*b"WRDN");
/// Bumped only for a change that old hosts or plugins cannot read.
pub const WARDEN_ABI_MAJOR: u16 = 1;
/// Bumped when fields are appended. 1.1 appended
/// [`WardenPluginDescriptor::description`].
pub const WARDEN_ABI_MINOR: u16 = 1;
/// The symbol every plugin library exports, of type [`WardenPluginEntry`].
pub const WARDEN_PLUGIN_ENTRY_SYMBOL: &str = "warden_plugin_entry";

/// Return code of a plugin call that succeeded.
pub const WARDEN_OK: i32 = 0;
/// Return code of a plugin call that failed; the output buffer, if set, holds
/// a UTF-8 message.
pub const WARDEN_ERROR: i32 = 1;

/// Log levels for [`WardenHost::log`], numbered like syslog's ordering of
/// tracing's levels: lower is more severe.
pub const WARDEN_LOG_ERROR: u32 = 1;
/// Warning level.
pub const WARDEN_LOG_WARN: u32 = 2;
/// Info level.
pub const WARDEN_LOG_INFO: u32 = 3;
/// Debug level.
pub const WARDEN_LOG_DEBUG: u32 = 4;
/// Trace level.
pub const WARDEN_LOG_TRACE: u32 = 5;

/// The fixed prefix of every descriptor. Its shape never changes.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WardenAbiHeader {
    /// Always [`WARDEN_ABI_MAGIC`].
    pub magic: u32,
    /// The ABI major version the plugin was built against.
    pub abi_major: u16,
    /// The ABI minor version the plugin was built against.
    pub abi_minor: u16,
    /// `sizeof` the whole descriptor as the plugin knows it.
    pub size: u32,
    /// Zero; reserved so the header stays 16 bytes.
    pub reserved: u32,
}

/// A byte buffer allocated by the plugin and released with its
/// [`WardenPluginDescriptor::free_buf`].
#[repr(C)]
#[derive(Debug)]
pub struct WardenBuf {
    /// Start of the bytes, or null for an empty buffer.
    pub ptr: *mut u8,
    /// Number of bytes.
    pub len: usize,
}

impl WardenBuf {
    /// An empty buffer, as the host passes it in.
    pub const fn empty() -> Self {
        WardenBuf {
            ptr: std::ptr::null_mut(),
            len: 0,
        }
    }
}

/// Log callback: `ctx` is [`WardenHost::ctx`], `msg` is UTF-8 of `len` bytes.
pub type WardenLogFn =
    unsafe extern "C" fn(ctx: *mut c_void, level: u32, msg: *const u8, len: usize);

/// What the host offers a plugin instance. Handed to `create`; valid until
/// `destroy` returns, so an instance may keep the pointer.
#[repr(C)]
#[derive(Debug)]
pub struct WardenHost {
    /// `sizeof` this struct as the host knows it.
    pub size: u32,
    /// The ABI major version the host speaks.
    pub abi_major: u16,
    /// The ABI minor version the host speaks.
    pub abi_minor: u16,
    /// Opaque host context, passed back to every callback.
    pub ctx: *mut c_void,
    /// Writes one log line into the daemon's log, tagged with the check and
    /// plugin. Callable from any thread while the instance lives.
    pub log: Option<WardenLogFn>,
}

/// Per-run facts, handed to every `check` call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WardenRunContext {
    /// `sizeof` this struct as the host knows it.
    pub size: u32,
    /// The ABI major version the host speaks.
    pub abi_major: u16,
    /// The ABI minor version the host speaks.
    pub abi_minor: u16,
    /// Time left for this run when the call started, in milliseconds.
    pub timeout_ms: u64,
    /// The run's deadline on `CLOCK_MONOTONIC`, in nanoseconds.
    pub deadline_monotonic_ns: u64,
}

/// Creates an instance from UTF-8 JSON config. On success writes the instance
/// to `out_instance` and returns [`WARDEN_OK`]; on failure may write a message
/// to `out_error` and returns [`WARDEN_ERROR`].
pub type WardenCreateFn = unsafe extern "C" fn(
    config: *const u8,
    config_len: usize,
    host: *const WardenHost,
    out_instance: *mut *mut c_void,
    out_error: *mut WardenBuf,
) -> i32;

/// Runs one check. Writes the result JSON (or an error message, with
/// [`WARDEN_ERROR`]) to `out`.
pub type WardenCheckFn = unsafe extern "C" fn(
    instance: *mut c_void,
    ctx: *const WardenRunContext,
    out: *mut WardenBuf,
) -> i32;

/// Frees a buffer this plugin wrote.
pub type WardenFreeBufFn = unsafe extern "C" fn(buf: WardenBuf);

/// Destroys an instance made by this plugin's `create`.
pub type WardenDestroyFn = unsafe extern "C" fn(instance: *mut c_void);

/// What a plugin's entry symbol returns. Static, immutable, valid while the
/// library is loaded.
#[repr(C)]
#[derive(Debug)]
pub struct WardenPluginDescriptor {
    /// Checked before any other field is read.
    pub header: WardenAbiHeader,
    /// NUL-terminated UTF-8 plugin name, the `plugin` key of a check.
    pub name: *const c_char,
    /// NUL-terminated UTF-8 plugin version.
    pub version: *const c_char,
    /// See [`WardenCreateFn`].
    pub create: Option<WardenCreateFn>,
    /// See [`WardenCheckFn`].
    pub check: Option<WardenCheckFn>,
    /// See [`WardenFreeBufFn`].
    pub free_buf: Option<WardenFreeBufFn>,
    /// See [`WardenDestroyFn`].
    pub destroy: Option<WardenDestroyFn>,
    /// Since 1.1: NUL-terminated UTF-8 one-line description, or null.
    pub description: *const c_char,
}

// SAFETY: a descriptor is immutable static data (string literals and function
// pointers) once the library is loaded, so sharing it across threads is sound.
unsafe impl Sync for WardenPluginDescriptor {}

/// The type of the entry symbol.
pub type WardenPluginEntry = unsafe extern "C" fn() -> *const WardenPluginDescriptor;
