//! Warden's plugin interface.
//!
//! - [`ffi`]: the C ABI, the one contract between the daemon and a plugin
//!   library in any language; `include/warden_plugin.h` mirrors it.
//! - [`result`]: the JSON a check returns.
//! - [`sdk`]: the Rust side for plugin authors: implement [`Plugin`] and call
//!   [`export_plugin!`].
//!
//! This crate holds unsafe code, confined to [`sdk`]'s `extern "C"` shims that
//! turn raw pointers into Rust values; plugin crates built on it need none.
#![allow(
    unsafe_code,
    reason = "the FFI shims are the one place raw pointers are read"
)]
#![deny(missing_docs)]

pub mod ffi;
pub mod fields;
pub mod result;
pub mod sdk;

pub use fields::Fields;
pub use result::{CheckResult, Metric, Reason, Status};
pub use sdk::{Host, Level, Plugin, RunContext};
