//! The plugin host: finding libraries, validating their ABI, and calling
//! their instances. This module holds the daemon's unsafe code; every block
//! says which ABI guarantee makes it sound.
#![allow(unsafe_code, reason = "calling plugin libraries over the C ABI")]

mod catalog;
mod elf;
mod instance;
mod library;

pub use catalog::{Catalog, Found, SearchDir, search_dirs};
pub use instance::{CallError, Instance, monotonic_ns};
pub use library::{Library, LoadError};
