//! Which mounted filesystems count as disks: the fs-type and mount-point
//! filters, and the dedupe that counts a device mounted several times
//! (bind mounts) once. Pure functions over plain entries, so they are tested
//! without touching the host.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Filesystem types excluded unless the config says otherwise: kernel pseudo
/// filesystems, memory-backed ones, container layers and read-only images,
/// none of which can fill up in a way an operator should act on.
pub const DEFAULT_EXCLUDED_FS_TYPES: &[&str] = &[
    // Memory-backed.
    "tmpfs",
    "devtmpfs",
    "ramfs",
    "rootfs",
    // Kernel pseudo filesystems.
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "devpts",
    "mqueue",
    "debugfs",
    "tracefs",
    "securityfs",
    "selinuxfs",
    "pstore",
    "bpf",
    "autofs",
    "fusectl",
    "configfs",
    "hugetlbfs",
    "nsfs",
    "rpc_pipefs",
    "binfmt_misc",
    "efivarfs",
    "fuse.lxcfs",
    "fuse.gvfsd-fuse",
    "fuse.portal",
    // Container layers.
    "overlay",
    "aufs",
    // Read-only images and optical media.
    "squashfs",
    "erofs",
    "cramfs",
    "romfs",
    "iso9660",
    "udf",
    "fuse.snapfuse",
    // BSD and macOS pseudo filesystems.
    "devfs",
    "fdescfs",
    "procfs",
    "linprocfs",
    "linsysfs",
    "nullfs",
];

/// What the selection needs to know about one mounted filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountEntry<'a> {
    /// Where it is mounted, e.g. `/home`.
    pub mount_point: &'a Path,
    /// Its type as the OS names it, e.g. `ext4`.
    pub fs_type: &'a str,
    /// The device number (`st_dev`) of the mount point, shared by bind mounts.
    pub device_id: Option<u64>,
    /// The mount source, e.g. `/dev/sda1` or `tmpfs`.
    pub device_name: &'a str,
}

/// The configured exclusions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountFilter {
    /// Lowercased fs types to skip.
    fs_types: BTreeSet<String>,
    /// Mount points skipped when equal.
    exact: Vec<PathBuf>,
    /// Mount points skipped when at or below one of these (whole path components).
    prefixes: Vec<PathBuf>,
}

impl MountFilter {
    /// A filter skipping the given fs types (any case) and mount points.
    pub fn new<'a>(
        fs_types: impl IntoIterator<Item = &'a str>,
        exact: Vec<String>,
        prefixes: Vec<String>,
    ) -> Self {
        MountFilter {
            fs_types: fs_types.into_iter().map(str::to_lowercase).collect(),
            exact: exact.into_iter().map(PathBuf::from).collect(),
            prefixes: prefixes.into_iter().map(PathBuf::from).collect(),
        }
    }

    /// Whether a filesystem of this type is skipped; case-insensitive because
    /// macOS and Windows report `APFS`, `NTFS`.
    pub fn excludes_fs_type(&self, fs_type: &str) -> bool {
        self.fs_types.contains(&fs_type.to_lowercase())
    }

    /// Whether this mount point is skipped. Prefixes match whole components,
    /// so `/mnt` skips `/mnt` and `/mnt/usb` but not `/mnt2`.
    pub fn excludes_mount(&self, mount_point: &Path) -> bool {
        self.exact.iter().any(|path| path == mount_point)
            || self
                .prefixes
                .iter()
                .any(|prefix| mount_point.starts_with(prefix))
    }

    /// Whether the entry passes both filters.
    pub fn admits(&self, entry: &MountEntry<'_>) -> bool {
        !self.excludes_fs_type(entry.fs_type) && !self.excludes_mount(entry.mount_point)
    }
}

/// What identifies "the same filesystem" across mount points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum DeviceKey<'a> {
    /// The device number: exact, bind mounts share it.
    Id(u64),
    /// A device path such as `/dev/sda1`, when the number is unknown.
    Path(&'a str),
    /// Nothing to go by (e.g. a source named `tmpfs`): never merged.
    Alone(usize),
}

fn device_key<'a>(index: usize, entry: &MountEntry<'a>) -> DeviceKey<'a> {
    match entry.device_id {
        Some(id) => DeviceKey::Id(id),
        // Sources like `tmpfs` or `none` name no device, so equal names say nothing.
        None if entry.device_name.starts_with('/') => DeviceKey::Path(entry.device_name),
        None => DeviceKey::Alone(index),
    }
}

/// Orders mount points so the shortest wins, then the alphabetically first,
/// so the choice is stable between runs whatever the mount table order.
fn preference(path: &Path) -> (usize, &Path) {
    (path.as_os_str().len(), path)
}

/// Indices of the entries to report: admitted by `filter`, one per device
/// (the shortest mount path), sorted by mount point.
pub fn select(entries: &[MountEntry<'_>], filter: &MountFilter) -> Vec<usize> {
    let mut best: HashMap<DeviceKey<'_>, usize> = HashMap::new();
    for (index, entry) in entries.iter().enumerate() {
        if !filter.admits(entry) {
            continue;
        }
        best.entry(device_key(index, entry))
            .and_modify(|kept| {
                if preference(entry.mount_point) < preference(entries[*kept].mount_point) {
                    *kept = index;
                }
            })
            .or_insert(index);
    }
    let mut chosen: Vec<usize> = best.into_values().collect();
    chosen.sort_by(|&a, &b| entries[a].mount_point.cmp(entries[b].mount_point));
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(mount: &'a str, fs: &'a str, id: Option<u64>, device: &'a str) -> MountEntry<'a> {
        MountEntry {
            mount_point: Path::new(mount),
            fs_type: fs,
            device_id: id,
            device_name: device,
        }
    }

    fn default_filter() -> MountFilter {
        MountFilter::new(
            DEFAULT_EXCLUDED_FS_TYPES.iter().copied(),
            Vec::new(),
            Vec::new(),
        )
    }

    fn mounts_of(entries: &[MountEntry<'_>], filter: &MountFilter) -> Vec<String> {
        select(entries, filter)
            .into_iter()
            .map(|i| entries[i].mount_point.display().to_string())
            .collect()
    }

    #[test]
    fn pseudo_and_image_filesystems_are_excluded_by_default() {
        let entries = [
            entry("/", "ext4", Some(1), "/dev/vda"),
            entry("/dev/shm", "tmpfs", Some(2), "tmpfs"),
            entry("/dev", "devtmpfs", Some(3), "devtmpfs"),
            entry("/sys/fs/cgroup/memory", "cgroup", Some(4), "cgroup"),
            entry("/snap/core/1", "squashfs", Some(5), "/dev/loop0"),
            entry(
                "/var/lib/docker/overlay2/x/merged",
                "overlay",
                Some(6),
                "overlay",
            ),
            entry("/media/cdrom", "ISO9660", Some(7), "/dev/sr0"),
            entry("/boot/efi", "vfat", Some(8), "/dev/vda1"),
        ];
        assert_eq!(mounts_of(&entries, &default_filter()), ["/", "/boot/efi"]);
    }

    #[test]
    fn bind_mounts_of_one_device_keep_the_shortest_path() {
        let entries = [
            entry("/srv/data/www", "ext4", Some(10), "/dev/sdb1"),
            entry("/srv/data", "ext4", Some(10), "/dev/sdb1"),
            entry("/var/www/html", "ext4", Some(10), "/dev/sdb1"),
            entry("/", "xfs", Some(1), "/dev/sda1"),
        ];
        assert_eq!(mounts_of(&entries, &default_filter()), ["/", "/srv/data"]);
    }

    #[test]
    fn equal_length_duplicates_pick_the_same_one_whatever_the_order() {
        let forward = [
            entry("/b", "ext4", Some(3), "/dev/sdc"),
            entry("/a", "ext4", Some(3), "/dev/sdc"),
        ];
        let backward = [forward[1], forward[0]];
        assert_eq!(mounts_of(&forward, &default_filter()), ["/a"]);
        assert_eq!(mounts_of(&backward, &default_filter()), ["/a"]);
    }

    #[test]
    fn without_device_number_a_device_path_still_dedupes_but_a_bare_source_does_not() {
        let filter = MountFilter::new(["proc"], Vec::new(), Vec::new());
        let entries = [
            entry("/data", "ext4", None, "/dev/sdb1"),
            entry("/data/bind", "ext4", None, "/dev/sdb1"),
            entry("/run/a", "tmpfs", None, "tmpfs"),
            entry("/run/b", "tmpfs", None, "tmpfs"),
        ];
        assert_eq!(mounts_of(&entries, &filter), ["/data", "/run/a", "/run/b"]);
    }

    #[test]
    fn excluded_mount_drops_only_that_path_and_its_bind_sibling_takes_over() {
        let filter = MountFilter::new(["tmpfs"], vec!["/srv/data/".to_owned()], Vec::new());
        let entries = [
            entry("/srv/data", "ext4", Some(10), "/dev/sdb1"),
            entry("/var/www", "ext4", Some(10), "/dev/sdb1"),
            entry("/srv/data/sub", "ext4", Some(11), "/dev/sdc1"),
        ];
        assert_eq!(mounts_of(&entries, &filter), ["/srv/data/sub", "/var/www"]);
    }

    #[test]
    fn prefixes_match_whole_components() {
        let filter = MountFilter::new(["tmpfs"], Vec::new(), vec!["/mnt".to_owned()]);
        let entries = [
            entry("/mnt", "ext4", Some(1), "/dev/sdb1"),
            entry("/mnt/usb", "vfat", Some(2), "/dev/sdc1"),
            entry("/mnt2", "ext4", Some(3), "/dev/sdd1"),
        ];
        assert_eq!(mounts_of(&entries, &filter), ["/mnt2"]);
    }

    #[test]
    fn fs_types_compare_case_insensitively() {
        let filter = MountFilter::new(["NTFS"], Vec::new(), Vec::new());
        assert!(filter.excludes_fs_type("ntfs"));
        assert!(default_filter().excludes_fs_type("TMPFS"));
        assert!(!default_filter().excludes_fs_type("ext4"));
    }
}
