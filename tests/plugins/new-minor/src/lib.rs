//! A plugin built against a future ABI 1.9: its descriptor carries fields
//! this host has never heard of after the ones it knows. The host must load
//! it, use what it knows, and ignore the rest.
#![allow(
    unsafe_code,
    reason = "a hand-written descriptor is what this fixture tests"
)]

use std::ffi::{c_char, c_void};

use warden_plugin_api::ffi::{
    WARDEN_ABI_MAGIC, WardenAbiHeader, WardenCheckFn, WardenCreateFn, WardenDestroyFn,
    WardenFreeBufFn,
};
use warden_plugin_api::{CheckResult, Host, Plugin, RunContext, sdk};

/// The 1.1 descriptor with two fields a later minor version might append.
#[repr(C)]
#[derive(Debug)]
pub struct DescriptorV1_9 {
    header: WardenAbiHeader,
    name: *const c_char,
    version: *const c_char,
    create: Option<WardenCreateFn>,
    check: Option<WardenCheckFn>,
    free_buf: Option<WardenFreeBufFn>,
    destroy: Option<WardenDestroyFn>,
    description: *const c_char,
    future_hook: Option<extern "C" fn(*mut c_void) -> i32>,
    future_flags: u64,
}

// SAFETY: immutable static data.
unsafe impl Sync for DescriptorV1_9 {}

/// Reports the ABI version the host says it speaks.
#[derive(Debug)]
pub struct NewMinor;

impl Plugin for NewMinor {
    fn create(_config: serde_json::Value, _host: Host) -> Result<Self, String> {
        Ok(NewMinor)
    }

    fn check(&mut self, ctx: &RunContext) -> CheckResult {
        let (major, minor) = ctx.host_abi;
        CheckResult::ok(format!("ABI 1.9 plugin ran on host ABI {major}.{minor}"))
    }
}

extern "C" fn future_hook(_instance: *mut c_void) -> i32 {
    // A host that called this would be reading past the size it knows.
    std::process::abort()
}

static DESCRIPTOR: DescriptorV1_9 = DescriptorV1_9 {
    header: WardenAbiHeader {
        magic: WARDEN_ABI_MAGIC,
        abi_major: 1,
        abi_minor: 9,
        size: size_of::<DescriptorV1_9>() as u32,
        reserved: 0,
    },
    name: c"new-minor".as_ptr(),
    version: c"1.9.0".as_ptr(),
    create: Some(sdk::create::<NewMinor>),
    check: Some(sdk::check::<NewMinor>),
    free_buf: Some(sdk::free_buf),
    destroy: Some(sdk::destroy::<NewMinor>),
    description: c"from a future minor version".as_ptr(),
    future_hook: Some(future_hook),
    future_flags: u64::MAX,
};

/// The entry point.
#[allow(unsafe_code, reason = "the entry symbol must be unmangled")]
#[unsafe(no_mangle)]
pub extern "C" fn warden_plugin_entry() -> *const c_void {
    std::ptr::from_ref(&DESCRIPTOR).cast()
}
