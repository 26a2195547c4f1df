//! Alarms around plugin calls: one `timerfd` per pool thread, armed when a
//! call starts and disarmed when it returns, all watched by one thread in
//! `epoll_wait`. Arming and disarming are two system calls that wake nobody;
//! the watcher wakes only when a call overruns its deadline. A tokio timer or
//! a condition variable with a timeout would wake a thread at every deadline,
//! or on every cancellation.
#![allow(unsafe_code, reason = "timerfd, eventfd and epoll through libc")]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// The epoll token of the stop eventfd; alarm tokens are pool thread ids.
const STOP: u64 = u64::MAX;

/// The watched set: an epoll instance and the eventfd that stops its watcher.
#[derive(Debug)]
pub(super) struct Alarms {
    epoll: OwnedFd,
    stop: OwnedFd,
}

/// One thread's alarm; closing it removes it from the watched set.
#[derive(Debug)]
pub(super) struct Alarm {
    timer: OwnedFd,
}

/// What a wait for alarms returned.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Rung {
    /// These alarms went off (their tokens).
    Alarms(Vec<u64>),
    /// [`Alarms::stop`] was called.
    Stopped,
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Takes ownership of a descriptor a system call just returned.
fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    let fd = check(fd)?;
    // SAFETY: `fd` was just returned open by the kernel and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Alarms {
    /// Creates the set with nothing armed.
    pub(super) fn new() -> io::Result<Alarms> {
        // SAFETY: plain system calls with constant flags; results are checked.
        let epoll = owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: as above.
        let stop = owned(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        let alarms = Alarms { epoll, stop };
        // Level-triggered: once stopped, every wait sees it.
        alarms.watch(alarms.stop.as_raw_fd(), STOP, libc::EPOLLIN)?;
        Ok(alarms)
    }

    fn watch(&self, fd: RawFd, token: u64, events: libc::c_int) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: events as u32,
            u64: token,
        };
        // SAFETY: both descriptors are open and `event` is a valid epoll_event.
        check(unsafe {
            libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event)
        })?;
        Ok(())
    }

    /// A new, disarmed alarm reported under `token`.
    pub(super) fn alarm(&self, token: u64) -> io::Result<Alarm> {
        debug_assert_ne!(token, STOP);
        // SAFETY: a plain system call with constant flags; the result is checked.
        let timer = owned(unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_CLOEXEC | libc::TFD_NONBLOCK,
            )
        })?;
        // Edge-triggered: an expiry is reported once, though the expired
        // timerfd stays readable while its thread is still stuck in the call.
        self.watch(timer.as_raw_fd(), token, libc::EPOLLIN | libc::EPOLLET)?;
        Ok(Alarm { timer })
    }

    /// Blocks until an alarm goes off or the set is stopped.
    pub(super) fn wait(&self) -> io::Result<Rung> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 16];
        loop {
            // SAFETY: `events` is writable for its length; the epoll fd is open.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as libc::c_int,
                    -1,
                )
            };
            let n = match check(n) {
                Ok(n) => n as usize,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let mut fired = Vec::with_capacity(n);
            for event in &events[..n] {
                match event.u64 {
                    STOP => return Ok(Rung::Stopped),
                    token => fired.push(token),
                }
            }
            if !fired.is_empty() {
                return Ok(Rung::Alarms(fired));
            }
        }
    }

    /// Makes every [`Alarms::wait`], now or later, return [`Rung::Stopped`].
    pub(super) fn stop(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an open eventfd. A full
        // counter (EAGAIN) still leaves the eventfd readable, which is all
        // the watcher needs.
        unsafe {
            libc::write(
                self.stop.as_raw_fd(),
                std::ptr::from_ref(&one).cast(),
                size_of::<u64>(),
            )
        };
    }
}

impl Alarm {
    /// Goes off `after` from now, replacing any earlier arming.
    pub(super) fn arm(&self, after: Duration) {
        // A zero it_value would disarm instead; the shortest arming is 1 ns.
        let after = after.max(Duration::from_nanos(1));
        self.set(libc::timespec {
            tv_sec: after.as_secs().try_into().unwrap_or(libc::time_t::MAX),
            // Below one billion: fits a c_long of any width.
            tv_nsec: after.subsec_nanos() as libc::c_long,
        });
    }

    /// Disarms the alarm. Setting a timerfd also clears an expiry not yet
    /// read, so one that went off just before is not reported afterwards.
    pub(super) fn disarm(&self) {
        self.set(libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        });
    }

    fn set(&self, value: libc::timespec) {
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: value,
        };
        // SAFETY: the timerfd is open and `spec` is a valid itimerspec; with a
        // valid fd and in-range values timerfd_settime cannot fail.
        let ret = unsafe {
            libc::timerfd_settime(self.timer.as_raw_fd(), 0, &spec, std::ptr::null_mut())
        };
        debug_assert_eq!(ret, 0, "timerfd_settime: {}", io::Error::last_os_error());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn an_armed_alarm_goes_off_with_its_token() {
        let alarms = Alarms::new().unwrap();
        let alarm = alarms.alarm(7).unwrap();
        let started = Instant::now();
        alarm.arm(Duration::from_millis(20));
        assert_eq!(alarms.wait().unwrap(), Rung::Alarms(vec![7]));
        assert!(started.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn a_disarmed_alarm_stays_silent_even_after_it_expired() {
        let alarms = Alarms::new().unwrap();
        let quiet = alarms.alarm(1).unwrap();
        let loud = alarms.alarm(2).unwrap();
        quiet.arm(Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(10));
        // Expired but not yet handled: disarming clears it.
        quiet.disarm();
        loud.arm(Duration::from_millis(30));
        assert_eq!(alarms.wait().unwrap(), Rung::Alarms(vec![2]));
    }

    #[test]
    fn stop_ends_a_wait_from_another_thread() {
        let alarms = std::sync::Arc::new(Alarms::new().unwrap());
        let _idle = alarms.alarm(3).unwrap();
        let waiter = {
            let alarms = std::sync::Arc::clone(&alarms);
            std::thread::spawn(move || alarms.wait().unwrap())
        };
        std::thread::sleep(Duration::from_millis(20));
        alarms.stop();
        assert_eq!(waiter.join().unwrap(), Rung::Stopped);
        // And every later wait too.
        assert_eq!(alarms.wait().unwrap(), Rung::Stopped);
    }
}
