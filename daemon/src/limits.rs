//! Process limits the daemon adjusts for itself at start.

/// Raises the soft limit on open files to the hard limit.
///
/// The HTTP server holds up to [`crate::http::MAX_CONNECTIONS`] sockets at
/// once, besides log files, plugin children's pipes and the state database;
/// the usual soft limit of 1024 would make `accept` fail with EMFILE well
/// before that cap. The hard limit is what the administrator (or systemd's
/// `LimitNOFILE=`) allows, so taking all of it asks for nothing new.
/// Returns the soft limit in force afterwards.
#[allow(
    unsafe_code,
    reason = "getrlimit and setrlimit have no safe wrapper in std"
)]
pub fn raise_open_files() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the valid, initialised struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur >= limit.rlim_max {
        return Ok(limit.rlim_cur);
    }
    let raised = libc::rlimit {
        rlim_cur: limit.rlim_max,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit only reads the valid, initialised struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(raised.rlim_cur)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let soft = super::raise_open_files().unwrap();
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap();
        let numbers: Vec<&str> = line["Max open files".len()..].split_whitespace().collect();
        assert_eq!(numbers[0], soft.to_string());
        assert_eq!(numbers[0], numbers[1]);
    }
}
