//! End-to-end tests: the real `warden` binary, real plugin libraries, real
//! HTTP. One test binary (`cargo nextest run` runs each test in its own
//! process) so the suite links once.
#![allow(
    unsafe_code,
    reason = "the harness sends signals to the daemon it started"
)]
#![allow(unreachable_pub, reason = "test modules share helpers")]

mod alerting;
mod cache_down;
mod hardening;
mod harness;
mod isolation;
mod logging;
mod notify;
mod operations;
mod package;
mod platform;
mod reference;
mod secrets;
mod skeleton;
