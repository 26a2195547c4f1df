//! The Rust SDK: implement [`Plugin`], then `export_plugin!` generates the
//! entry symbol and the `extern "C"` shims below, which own every unsafe step
//! and catch panics so none crosses the boundary.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::mem::{offset_of, size_of};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;
use std::time::{Duration, Instant};

use crate::ffi::{
    WARDEN_ERROR, WARDEN_LOG_DEBUG, WARDEN_LOG_ERROR, WARDEN_LOG_INFO, WARDEN_LOG_WARN, WARDEN_OK,
    WardenBuf, WardenHost, WardenLogFn, WardenRunContext,
};
use crate::result::CheckResult;

/// A check plugin. One value is created per configured check; the host never
/// calls one value from two threads at once, but successive calls may come
/// from different threads.
pub trait Plugin: Send + Sized + 'static {
    /// Builds an instance from the check's `[check.config]` table. Return a
    /// message naming the offending key when the config is invalid; it is
    /// shown to the operator by `warden check-config`.
    fn create(config: serde_json::Value, host: Host) -> Result<Self, String>;

    /// Runs the check once. Should return before [`RunContext::deadline`];
    /// the host reports `timeout` at the deadline either way.
    fn check(&mut self, ctx: &RunContext) -> CheckResult;
}

/// Facts about one run.
#[derive(Debug, Clone, Copy)]
pub struct RunContext {
    /// When the host will give up on this run.
    pub deadline: Instant,
    /// The ABI version the host speaks, as (major, minor).
    pub host_abi: (u16, u16),
}

impl RunContext {
    /// A context for tests and tools that run a plugin without a host.
    pub fn with_timeout(timeout: Duration) -> Self {
        RunContext {
            deadline: Instant::now() + timeout,
            host_abi: (crate::ffi::WARDEN_ABI_MAJOR, crate::ffi::WARDEN_ABI_MINOR),
        }
    }

    /// Time left before the deadline, zero once it has passed.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// The host's services to an instance: logging into the daemon's log.
#[derive(Debug, Clone, Copy)]
pub struct Host {
    raw: *const WardenHost,
}

// SAFETY: the ABI requires the host table and its log function to be valid and
// callable from any thread until the instance is destroyed.
unsafe impl Send for Host {}
// SAFETY: as above; the table is never written through this pointer.
unsafe impl Sync for Host {}

/// Log levels a plugin may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Something failed and needs attention.
    Error,
    /// Unexpected but handled.
    Warn,
    /// Lifecycle events.
    Info,
    /// Detail for troubleshooting.
    Debug,
}

impl Host {
    /// A host that discards log lines, for unit tests of a plugin.
    pub const fn detached() -> Self {
        Host {
            raw: std::ptr::null(),
        }
    }

    fn log_fn(&self) -> Option<(WardenLogFn, *mut c_void)> {
        if self.raw.is_null() {
            return None;
        }
        // SAFETY: non-null host pointers come from the host and stay valid
        // while the instance lives; `size` is read before any later field.
        let host = unsafe { &*self.raw };
        let needed = offset_of!(WardenHost, log) + size_of::<Option<WardenLogFn>>();
        if (host.size as usize) < needed {
            return None;
        }
        host.log.map(|log| (log, host.ctx))
    }

    /// Writes a line to the daemon's log at `level`.
    pub fn log(&self, level: Level, message: &str) {
        let Some((log, ctx)) = self.log_fn() else {
            return;
        };
        let level = match level {
            Level::Error => WARDEN_LOG_ERROR,
            Level::Warn => WARDEN_LOG_WARN,
            Level::Info => WARDEN_LOG_INFO,
            Level::Debug => WARDEN_LOG_DEBUG,
        };
        // SAFETY: `log` is the host's callback, valid for the instance's
        // lifetime; the message pointer and length describe a live &str.
        unsafe { log(ctx, level, message.as_ptr(), message.len()) }
    }

    /// Logs at info level.
    pub fn info(&self, message: &str) {
        self.log(Level::Info, message);
    }

    /// Logs at warn level.
    pub fn warn(&self, message: &str) {
        self.log(Level::Warn, message);
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

thread_local! {
    /// Set while a shim runs the plugin's code on this thread.
    static IN_CALL: Cell<bool> = const { Cell::new(false) };
    /// Where the last panic inside a call on this thread happened.
    static PANIC_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs the plugin's code, turning a panic into an error text that names
/// the panic's location. Inside a call the panic is not printed: std's
/// default hook would write it (and a backtrace) straight to stderr, past
/// the host's log and its redaction of secrets; the host logs the error
/// instead. Panics on the plugin's own threads still reach the earlier hook.
/// The hook is this library's own: a cdylib carries its own std.
fn guarded<T>(call: impl FnOnce() -> T) -> Result<T, String> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let earlier = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_CALL.get() {
                PANIC_AT.set(info.location().map(ToString::to_string));
            } else {
                earlier(info);
            }
        }));
    });
    IN_CALL.set(true);
    let outcome = catch_unwind(AssertUnwindSafe(call));
    IN_CALL.set(false);
    outcome.map_err(|payload| {
        let message = panic_message(payload.as_ref());
        match PANIC_AT.take() {
            Some(at) => format!("panicked: {message} (at {at})"),
            None => format!("panicked: {message}"),
        }
    })
}

fn into_buf(bytes: Vec<u8>) -> WardenBuf {
    let boxed = bytes.into_boxed_slice();
    let len = boxed.len();
    WardenBuf {
        ptr: Box::into_raw(boxed).cast::<u8>(),
        len,
    }
}

/// Writes `bytes` to `out` if the host gave one.
///
/// # Safety
/// `out` is null or valid for one write.
unsafe fn write_out(out: *mut WardenBuf, bytes: Vec<u8>) {
    if out.is_null() {
        return;
    }
    // SAFETY: the caller guarantees `out` is valid for a write.
    unsafe { out.write(into_buf(bytes)) }
}

/// `create` shim generated by `export_plugin!`.
///
/// # Safety
/// Called only by a Warden host, with the pointers the ABI describes.
pub unsafe extern "C" fn create<P: Plugin>(
    config: *const u8,
    config_len: usize,
    host: *const WardenHost,
    out_instance: *mut *mut c_void,
    out_error: *mut WardenBuf,
) -> i32 {
    let outcome = guarded(|| {
        let bytes: &[u8] = if config.is_null() {
            b"{}"
        } else {
            // SAFETY: the host passes `config_len` readable bytes at `config`.
            unsafe { std::slice::from_raw_parts(config, config_len) }
        };
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("config is not JSON: {e}"))?;
        P::create(value, Host { raw: host })
    });
    let message = match outcome {
        Ok(Ok(instance)) if !out_instance.is_null() => {
            let raw = Box::into_raw(Box::new(instance)).cast::<c_void>();
            // SAFETY: checked non-null; the host passes a writable slot.
            unsafe { out_instance.write(raw) };
            return WARDEN_OK;
        }
        Ok(Ok(_)) => "host passed no instance slot".to_owned(),
        Ok(Err(message)) => message,
        Err(panicked) => panicked,
    };
    // SAFETY: `out_error` is null or writable, per the ABI.
    unsafe { write_out(out_error, message.into_bytes()) };
    WARDEN_ERROR
}

/// `check` shim generated by `export_plugin!`.
///
/// # Safety
/// `instance` came from [`create::<P>`] and is not in use on another thread.
pub unsafe extern "C" fn check<P: Plugin>(
    instance: *mut c_void,
    ctx: *const WardenRunContext,
    out: *mut WardenBuf,
) -> i32 {
    let outcome = guarded(|| {
        // SAFETY: the host passes a live context; a null one means no deadline
        // information, so fall back to a generous default.
        let run = match unsafe { ctx.as_ref() } {
            Some(c) => RunContext {
                deadline: Instant::now() + Duration::from_millis(c.timeout_ms),
                host_abi: (c.abi_major, c.abi_minor),
            },
            None => RunContext::with_timeout(Duration::from_secs(10)),
        };
        // SAFETY: `instance` is a `Box<P>` from `create::<P>`, used by one
        // thread at a time per the ABI.
        let plugin = unsafe { &mut *instance.cast::<P>() };
        let result = plugin.check(&run);
        serde_json::to_vec(&result).map_err(|e| format!("result is not serialisable: {e}"))
    });
    let (code, bytes) = match outcome {
        Ok(Ok(json)) => (WARDEN_OK, json),
        Ok(Err(message)) => (WARDEN_ERROR, message.into_bytes()),
        Err(panicked) => (WARDEN_ERROR, panicked.into_bytes()),
    };
    // SAFETY: `out` is null or writable, per the ABI.
    unsafe { write_out(out, bytes) };
    code
}

/// `free_buf` shim generated by `export_plugin!`.
///
/// # Safety
/// `buf` was written by [`create`] or [`check`] of this library and is freed once.
pub unsafe extern "C" fn free_buf(buf: WardenBuf) {
    if buf.ptr.is_null() {
        return;
    }
    let slice = std::ptr::slice_from_raw_parts_mut(buf.ptr, buf.len);
    // SAFETY: the buffer is a boxed slice of exactly `len` bytes made by
    // `into_buf`, and ownership returns here exactly once.
    drop(unsafe { Box::from_raw(slice) });
}

/// `destroy` shim generated by `export_plugin!`.
///
/// # Safety
/// `instance` came from [`create::<P>`], is not in use, and is destroyed once.
pub unsafe extern "C" fn destroy<P: Plugin>(instance: *mut c_void) {
    if instance.is_null() {
        return;
    }
    // A panic in Drop must not unwind into the host; the value is gone either way.
    let _ = guarded(|| {
        // SAFETY: per the contract above, this is the unique owner of the box.
        drop(unsafe { Box::from_raw(instance.cast::<P>()) });
    });
}

/// Exports a [`Plugin`] implementation as a Warden plugin library.
///
/// ```ignore
/// warden_plugin_api::export_plugin!(MyCheck, name = "my-check");
/// ```
///
/// The version defaults to the crate's `CARGO_PKG_VERSION` and the
/// description to its `CARGO_PKG_DESCRIPTION`; pass `version = "1.2.3"` and
/// `description = "..."` to override them. The crate must be built as a
/// `cdylib`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty, name = $name:literal $(,)?) => {
        $crate::export_plugin!(
            $plugin,
            name = $name,
            version = env!("CARGO_PKG_VERSION"),
            description = env!("CARGO_PKG_DESCRIPTION"),
        );
    };
    ($plugin:ty, name = $name:literal, description = $description:expr $(,)?) => {
        $crate::export_plugin!(
            $plugin,
            name = $name,
            version = env!("CARGO_PKG_VERSION"),
            description = $description,
        );
    };
    ($plugin:ty, name = $name:literal, version = $version:expr $(,)?) => {
        $crate::export_plugin!(
            $plugin,
            name = $name,
            version = $version,
            description = env!("CARGO_PKG_DESCRIPTION"),
        );
    };
    ($plugin:ty, name = $name:literal, version = $version:expr, description = $description:expr $(,)?) => {
        /// The Warden plugin entry point.
        #[allow(unsafe_code, reason = "the entry symbol must be unmangled")]
        #[unsafe(no_mangle)]
        pub extern "C" fn warden_plugin_entry() -> *const $crate::ffi::WardenPluginDescriptor {
            static DESCRIPTOR: $crate::ffi::WardenPluginDescriptor =
                $crate::ffi::WardenPluginDescriptor {
                    header: $crate::ffi::WardenAbiHeader {
                        magic: $crate::ffi::WARDEN_ABI_MAGIC,
                        abi_major: $crate::ffi::WARDEN_ABI_MAJOR,
                        abi_minor: $crate::ffi::WARDEN_ABI_MINOR,
                        size: ::std::mem::size_of::<$crate::ffi::WardenPluginDescriptor>() as u32,
                        reserved: 0,
                    },
                    name: concat!($name, "\0").as_ptr().cast(),
                    version: $crate::__cstr!($version),
                    create: Some($crate::sdk::create::<$plugin>),
                    check: Some($crate::sdk::check::<$plugin>),
                    free_buf: Some($crate::sdk::free_buf),
                    destroy: Some($crate::sdk::destroy::<$plugin>),
                    description: $crate::__cstr!($description),
                };
            &DESCRIPTOR
        }
    };
}

/// Turns a `&'static str` constant expression into a NUL-terminated pointer
/// at compile time, for `export_plugin!`'s version.
#[doc(hidden)]
#[macro_export]
macro_rules! __cstr {
    ($s:expr) => {{
        const S: &str = $s;
        const LEN: usize = S.len() + 1;
        const BYTES: [u8; LEN] = $crate::sdk::nul_terminated::<LEN>(S);
        BYTES.as_ptr().cast()
    }};
}

/// Copies `s` into an array one byte longer, leaving a trailing NUL.
#[doc(hidden)]
pub const fn nul_terminated<const N: usize>(s: &str) -> [u8; N] {
    let bytes = s.as_bytes();
    assert!(bytes.len() + 1 == N, "length mismatch");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < bytes.len() {
        assert!(bytes[i] != 0, "plugin version contains a NUL byte");
        out[i] = bytes[i];
        i += 1;
    }
    out
}
