//! Reads the host's figures through sysinfo. The `System` and `Disks` values
//! live as long as the check so each run refreshes only what it reports, and
//! so CPU usage is measured over the time since the previous run.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use sysinfo::{DiskRefreshKind, Disks, MINIMUM_CPU_UPDATE_INTERVAL, MemoryRefreshKind, System};
use warden_plugin_api::RunContext;

use crate::evaluate::{DiskSpace, Load, Memory, Snapshot, Swap};
use crate::mounts::{self, MountEntry, MountFilter};

/// Why the sampler could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {what} on this platform: {source}")]
pub struct SamplerError {
    what: &'static str,
    #[source]
    source: sysinfo::Error,
}

/// Long-lived sysinfo state.
#[derive(Debug)]
pub struct Sampler {
    system: System,
    disks: Disks,
    /// When the CPU counters were last read; `None` before the first run.
    last_cpu_read: Option<Instant>,
}

impl Sampler {
    /// Opens sysinfo without reading anything yet, so `create` stays cheap.
    pub fn new() -> Result<Self, SamplerError> {
        let system = System::new().map_err(|source| SamplerError {
            what: "system figures",
            source,
        })?;
        let disks = Disks::new().map_err(|source| SamplerError {
            what: "disks",
            source,
        })?;
        Ok(Sampler {
            system,
            disks,
            last_cpu_read: None,
        })
    }

    /// Reads everything; may wait up to [`MINIMUM_CPU_UPDATE_INTERVAL`] on
    /// the first run (never past half the time left) to get a real CPU figure.
    pub fn sample(&mut self, ctx: &RunContext, filter: &MountFilter) -> Snapshot {
        // The first CPU read only sets a baseline; taking it before the other
        // figures lets their reading overlap the wait for the second one.
        if self.last_cpu_read.is_none() {
            self.read_cpu();
        }
        self.system
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram().with_swap());
        let total = self.system.total_memory();
        let memory = (total > 0).then(|| Memory {
            total,
            available: self.system.available_memory(),
        });
        let swap = Swap {
            total: self.system.total_swap(),
            used: self.system.used_swap(),
        };
        let load = System::load_average()
            .ok()
            .map(|l| Load {
                one: l.one,
                five: l.five,
                fifteen: l.fifteen,
            })
            .filter(|l| l.one.is_finite() && l.five.is_finite() && l.fifteen.is_finite());
        let disks = self.disk_space(filter);
        let cpu_usage = self.cpu_usage(ctx);
        let cpus = self.system.cpus().len();
        Snapshot {
            cpu_usage,
            cpu_count: (cpus > 0).then_some(cpus),
            memory,
            swap,
            load,
            disks,
        }
    }

    fn read_cpu(&mut self) {
        self.system.refresh_cpu_usage();
        // Stamped after the read: sysinfo stamps its own before, so once this
        // stamp is old enough sysinfo's is too and it will not skip the read.
        self.last_cpu_read = Some(Instant::now());
    }

    /// Busy ratio since the previous read, or `None` when the interval would
    /// be shorter than sysinfo accepts and there is no time left to wait.
    fn cpu_usage(&mut self, ctx: &RunContext) -> Option<f64> {
        let since = self.last_cpu_read.map_or(Duration::ZERO, |at| at.elapsed());
        let wait = MINIMUM_CPU_UPDATE_INTERVAL.saturating_sub(since);
        if wait > ctx.remaining() / 2 {
            // Keep the old baseline: the next run measures from it.
            return None;
        }
        std::thread::sleep(wait);
        self.read_cpu();
        let usage = f64::from(self.system.global_cpu_usage()) / 100.0;
        usage.is_finite().then(|| usage.clamp(0.0, 1.0))
    }

    /// Space on the selected filesystems. Only those are `statvfs`ed, so an
    /// excluded mount costs nothing beyond its `/proc/mounts` line.
    fn disk_space(&mut self, filter: &MountFilter) -> Vec<DiskSpace> {
        self.disks
            .refresh_specifics(true, DiskRefreshKind::nothing());
        // Borrowed, not copied: sysinfo's names are UTF-8 on every host that matters.
        let names: Vec<(Cow<'_, str>, Cow<'_, str>)> = self
            .disks
            .iter()
            .map(|d| {
                (
                    d.file_system().to_string_lossy(),
                    d.name().to_string_lossy(),
                )
            })
            .collect();
        let entries: Vec<MountEntry<'_>> = self
            .disks
            .iter()
            .zip(&names)
            .map(|(disk, (fs_type, device_name))| MountEntry {
                mount_point: disk.mount_point(),
                fs_type,
                device_id: disk.id(),
                device_name,
            })
            .collect();
        let chosen = mounts::select(&entries, filter);

        let mut space = Vec::with_capacity(chosen.len());
        for index in chosen {
            let disk = &mut self.disks[index];
            disk.refresh_specifics(DiskRefreshKind::nothing().with_storage());
            // A filesystem that reports no size (or was never statvfs-able)
            // has no meaningful used ratio.
            if disk.total_space() == 0 {
                continue;
            }
            space.push(DiskSpace {
                mount: disk.mount_point().to_string_lossy().into_owned(),
                total: disk.total_space(),
                available: disk.available_space().min(disk.total_space()),
                reserved: reserved_bytes(disk.mount_point()).unwrap_or(0),
            });
        }
        space
    }
}

/// Free bytes that only root may use (`f_bfree - f_bavail`), which sysinfo
/// does not report; `None` when `statvfs` fails.
#[allow(
    unsafe_code,
    reason = "statvfs(2) has no safe wrapper in std or sysinfo"
)]
fn reserved_bytes(mount: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(mount.as_os_str().as_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `path` is NUL-terminated and `stats` is a writable statvfs.
    let rc = unsafe { libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs succeeded, so it filled the struct.
    let stats = unsafe { stats.assume_init() };
    let reserved_blocks = stats.f_bfree.saturating_sub(stats.f_bavail);
    Some(reserved_blocks.saturating_mul(stats.f_frsize))
}
