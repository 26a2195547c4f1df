//! Running a piece of a test with no network but an unconfigured loopback,
//! so a test of name-resolution failures never sends a query to the
//! machine's resolver (or anywhere else).

/// Runs `f` on a fresh thread inside a new, empty network namespace: the
/// resolver in `/etc/resolv.conf` is unreachable, so every lookup of a name
/// not in `/etc/hosts` fails at once without a packet leaving the host.
/// Threads that `f` starts (a runtime's blocking pool, for example) inherit
/// the namespace.
///
/// Needs `CAP_SYS_ADMIN` (the test suite runs as root); panics otherwise,
/// since the fallback would be real DNS traffic.
pub fn without_network<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: unshare(2) with CLONE_NEWNET changes only the calling
        // thread's network namespace; no memory is involved.
        #[allow(unsafe_code, reason = "unshare(2) has no safe wrapper in std")]
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "cannot create a private network namespace ({}); DNS failure tests need root",
            std::io::Error::last_os_error()
        );
        f()
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
