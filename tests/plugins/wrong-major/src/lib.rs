//! A plugin built against an ABI major version the daemon does not speak.

use std::ffi::c_char;

use warden_plugin_api::ffi::{WARDEN_ABI_MAGIC, WardenAbiHeader, WardenPluginDescriptor};

static DESCRIPTOR: WardenPluginDescriptor = WardenPluginDescriptor {
    header: WardenAbiHeader {
        magic: WARDEN_ABI_MAGIC,
        abi_major: 2,
        abi_minor: 0,
        size: size_of::<WardenPluginDescriptor>() as u32,
        reserved: 0,
    },
    name: c"wrong-major".as_ptr().cast::<c_char>(),
    version: c"9.0.0".as_ptr().cast::<c_char>(),
    create: None,
    check: None,
    free_buf: None,
    destroy: None,
    description: std::ptr::null(),
};

/// The entry point, returning a descriptor with ABI major 2.
#[allow(unsafe_code, reason = "the entry symbol must be unmangled")]
#[unsafe(no_mangle)]
pub extern "C" fn warden_plugin_entry() -> *const WardenPluginDescriptor {
    &DESCRIPTOR
}
