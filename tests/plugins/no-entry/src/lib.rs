//! A shared library that is not a Warden plugin: it lacks the entry symbol.

/// Something exported, so the library is not empty.
#[allow(unsafe_code, reason = "an unmangled export is what this fixture is")]
#[unsafe(no_mangle)]
pub extern "C" fn not_a_warden_plugin() -> i32 {
    42
}
