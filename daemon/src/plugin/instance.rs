//! One plugin instance per configured check: create, check, destroy over the
//! C ABI, with the host table that routes plugin log lines into tracing.

use std::ffi::c_void;
use std::mem::size_of;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use warden_plugin_api::CheckResult;
use warden_plugin_api::ffi::{
    WARDEN_ABI_MAJOR, WARDEN_ABI_MINOR, WARDEN_LOG_DEBUG, WARDEN_LOG_ERROR, WARDEN_LOG_INFO,
    WARDEN_LOG_WARN, WARDEN_OK, WardenBuf, WardenHost, WardenRunContext,
};

use super::library::Library;

/// Identity attached to a plugin's log lines.
#[derive(Debug)]
struct LogContext {
    check: String,
    plugin: String,
}

/// Why a call into a plugin failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The plugin returned its error code with this message.
    #[error("{0}")]
    Plugin(String),
    /// The plugin returned bytes that are not a valid result.
    #[error("invalid result from plugin: {0}")]
    BadResult(String),
}

/// A live plugin instance. Not `Sync`: the ABI forbids concurrent calls, and
/// `&mut self` on [`Instance::check`] enforces it.
#[derive(Debug)]
pub struct Instance {
    raw: *mut c_void,
    // Boxed so their addresses stay fixed while the plugin holds them.
    _host: Box<WardenHost>,
    _log_context: Box<LogContext>,
    // Last field: the library is unloaded only after the instance is gone.
    library: Arc<Library>,
}

// SAFETY: the ABI requires instances to be callable from any thread as long
// as calls never overlap, which `&mut self` guarantees.
unsafe impl Send for Instance {}

impl Instance {
    /// Creates an instance for `check` from its JSON config.
    pub fn create(
        library: Arc<Library>,
        check: &str,
        config: &serde_json::Value,
    ) -> Result<Instance, CallError> {
        let log_context = Box::new(LogContext {
            check: check.to_owned(),
            plugin: library.name.clone(),
        });
        let host = Box::new(WardenHost {
            size: size_of::<WardenHost>() as u32,
            abi_major: WARDEN_ABI_MAJOR,
            abi_minor: WARDEN_ABI_MINOR,
            ctx: std::ptr::from_ref::<LogContext>(&log_context)
                .cast_mut()
                .cast(),
            log: Some(host_log),
        });
        let config = serde_json::to_vec(config).expect("JSON values serialise");
        let mut raw: *mut c_void = std::ptr::null_mut();
        let mut error = WardenBuf::empty();
        // SAFETY: all pointers are valid for the call; `host` stays alive (boxed,
        // owned by the instance) until after `destroy`.
        let code = unsafe {
            (library.vtable.create)(config.as_ptr(), config.len(), &*host, &mut raw, &mut error)
        };
        let message = take_buf(&library, error);
        if code != WARDEN_OK || raw.is_null() {
            let message = message.unwrap_or_else(|| format!("create failed with code {code}"));
            return Err(CallError::Plugin(one_line(&message)));
        }
        Ok(Instance {
            raw,
            _host: host,
            _log_context: log_context,
            library,
        })
    }

    /// The plugin this instance belongs to.
    pub fn library(&self) -> &Arc<Library> {
        &self.library
    }

    /// Runs the check once. Blocks for as long as the plugin does; callers
    /// enforce the deadline around it.
    pub fn check(&mut self, timeout: Duration) -> Result<CheckResult, CallError> {
        let ctx = WardenRunContext {
            size: size_of::<WardenRunContext>() as u32,
            abi_major: WARDEN_ABI_MAJOR,
            abi_minor: WARDEN_ABI_MINOR,
            timeout_ms: timeout.as_millis().try_into().unwrap_or(u64::MAX),
            deadline_monotonic_ns: monotonic_ns().saturating_add(timeout.as_nanos() as u64),
        };
        let mut out = WardenBuf::empty();
        // SAFETY: `raw` came from this library's `create`, `&mut self` rules
        // out a concurrent call, and `ctx`/`out` outlive the call.
        let code = unsafe { (self.library.vtable.check)(self.raw, &ctx, &mut out) };
        let bytes = take_bytes(&self.library, out);
        if code != WARDEN_OK {
            let message = bytes.map(|b| String::from_utf8_lossy(&b).into_owned());
            return Err(CallError::Plugin(one_line(
                &message.unwrap_or_else(|| format!("check failed with code {code}")),
            )));
        }
        let bytes = bytes.ok_or_else(|| CallError::BadResult("empty result".to_owned()))?;
        serde_json::from_slice(&bytes).map_err(|e| CallError::BadResult(e.to_string()))
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(destroy) = self.library.vtable.destroy {
            // SAFETY: `raw` came from this library's `create` and is destroyed
            // exactly once, here; the host table is still alive.
            unsafe { destroy(self.raw) };
        }
    }
}

/// Copies a plugin-written buffer and hands it back to the plugin to free.
fn take_bytes(library: &Library, buf: WardenBuf) -> Option<Vec<u8>> {
    if buf.ptr.is_null() {
        return None;
    }
    // SAFETY: the plugin wrote `len` bytes at `ptr` and keeps them until
    // `free_buf`, which we call right after copying.
    let bytes = unsafe { std::slice::from_raw_parts(buf.ptr, buf.len) }.to_vec();
    // SAFETY: the buffer came from this library and is freed exactly once.
    unsafe { (library.vtable.free_buf)(buf) };
    Some(bytes)
}

fn take_buf(library: &Library, buf: WardenBuf) -> Option<String> {
    take_bytes(library, buf).map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Now on `CLOCK_MONOTONIC`, the clock plugins and systemd compare deadlines
/// and timestamps against.
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    (now.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(now.tv_nsec as u64)
}

/// The host's log callback, handed to every instance.
unsafe extern "C" fn host_log(ctx: *mut c_void, level: u32, msg: *const u8, len: usize) {
    // Nothing may unwind into the plugin's frames.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if ctx.is_null() || msg.is_null() {
            return;
        }
        // SAFETY: `ctx` is the `LogContext` this host put in the table, alive
        // while the instance is; `msg` points to `len` bytes per the ABI.
        let (cx, bytes) = unsafe {
            (
                &*ctx.cast::<LogContext>(),
                std::slice::from_raw_parts(msg, len),
            )
        };
        let text = String::from_utf8_lossy(bytes);
        // One line per call: an embedded newline must not forge log lines.
        let text = crate::status::one_line(&text);
        let (check, plugin) = (cx.check.as_str(), cx.plugin.as_str());
        match level {
            WARDEN_LOG_ERROR => {
                tracing::error!(target: "warden::plugin", check = %check, plugin = %plugin, "{text}")
            }
            WARDEN_LOG_WARN => {
                tracing::warn!(target: "warden::plugin", check = %check, plugin = %plugin, "{text}")
            }
            WARDEN_LOG_INFO => {
                tracing::info!(target: "warden::plugin", check = %check, plugin = %plugin, "{text}")
            }
            WARDEN_LOG_DEBUG => {
                tracing::debug!(target: "warden::plugin", check = %check, plugin = %plugin, "{text}")
            }
            _ => {
                tracing::trace!(target: "warden::plugin", check = %check, plugin = %plugin, "{text}")
            }
        }
    }));
}
