//! Describing how a plugin process ended, naming the signal that killed it.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// "plugin process killed by SIGSEGV", "plugin process exited with code 3".
pub(crate) fn describe(status: ExitStatus) -> String {
    if let Some(signal) = status.signal() {
        let core = if status.core_dumped() {
            " (core dumped)"
        } else {
            ""
        };
        return format!("plugin process killed by {}{core}", signal_name(signal));
    }
    match status.code() {
        Some(code) => format!("plugin process exited with code {code}"),
        None => format!("plugin process ended: {status}"),
    }
}

/// The conventional name of a signal number.
pub(crate) fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGSYS => "SIGSYS",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        other => return format!("signal {other}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_signals_and_exit_codes() {
        // Raw wait statuses: low 7 bits the signal, bit 7 core, else code << 8.
        assert_eq!(
            describe(ExitStatus::from_raw(libc::SIGSEGV)),
            "plugin process killed by SIGSEGV"
        );
        assert_eq!(
            describe(ExitStatus::from_raw(libc::SIGABRT | 0x80)),
            "plugin process killed by SIGABRT (core dumped)"
        );
        assert_eq!(
            describe(ExitStatus::from_raw(3 << 8)),
            "plugin process exited with code 3"
        );
        assert_eq!(signal_name(64), "signal 64");
    }
}
