//! Test support shared by plugin tests and the end-to-end suite: private
//! servers started from the installed binaries on free loopback ports, so a
//! test can stop, pause or reconfigure them without touching anything else.
pub mod http;
pub mod offline;
pub mod postgres;
pub mod receiver;
pub mod redis;
