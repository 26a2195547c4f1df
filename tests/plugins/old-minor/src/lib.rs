//! A plugin built against ABI 1.0: its descriptor ends before the 1.1
//! `description` field, as an old plugin's would. The host must load it and
//! treat the missing field as absent.
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

/// The descriptor exactly as ABI 1.0 defined it.
#[repr(C)]
#[derive(Debug)]
pub struct DescriptorV1_0 {
    header: WardenAbiHeader,
    name: *const c_char,
    version: *const c_char,
    create: Option<WardenCreateFn>,
    check: Option<WardenCheckFn>,
    free_buf: Option<WardenFreeBufFn>,
    destroy: Option<WardenDestroyFn>,
}

// SAFETY: immutable static data.
unsafe impl Sync for DescriptorV1_0 {}

/// Reports the ABI version the host says it speaks.
#[derive(Debug)]
pub struct OldMinor;

impl Plugin for OldMinor {
    fn create(_config: serde_json::Value, _host: Host) -> Result<Self, String> {
        Ok(OldMinor)
    }

    fn check(&mut self, ctx: &RunContext) -> CheckResult {
        let (major, minor) = ctx.host_abi;
        CheckResult::ok(format!("ABI 1.0 plugin ran on host ABI {major}.{minor}"))
    }
}

static DESCRIPTOR: DescriptorV1_0 = DescriptorV1_0 {
    header: WardenAbiHeader {
        magic: WARDEN_ABI_MAGIC,
        abi_major: 1,
        abi_minor: 0,
        size: size_of::<DescriptorV1_0>() as u32,
        reserved: 0,
    },
    name: c"old-minor".as_ptr(),
    version: c"1.0.0".as_ptr(),
    create: Some(sdk::create::<OldMinor>),
    check: Some(sdk::check::<OldMinor>),
    free_buf: Some(sdk::free_buf),
    destroy: Some(sdk::destroy::<OldMinor>),
};

/// The entry point.
#[allow(unsafe_code, reason = "the entry symbol must be unmangled")]
#[unsafe(no_mangle)]
pub extern "C" fn warden_plugin_entry() -> *const c_void {
    std::ptr::from_ref(&DESCRIPTOR).cast()
}
