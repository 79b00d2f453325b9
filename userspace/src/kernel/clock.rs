//! Kernel time as wall time: kmemleak of 6.12 stamps each object with the
//! jiffies of its allocation (no age, no date). The kernel does not show
//! its jiffies to userspace, but they count from `INITIAL_JIFFIES` at HZ
//! since boot as CLOCK_MONOTONIC does (neither counts a suspend): with HZ
//! from the kernel's configuration, a stamp becomes the wall-clock time it
//! was made, within a tick or two. And which
//! boot this is (`boot_id`), so that state kept across restarts is not
//! carried into the next boot.

use std::fs;

use nix::time::{clock_gettime, ClockId};

use super::procfs::kernel_config;

/// The boot's random id (`/proc/sys/kernel/random/boot_id`), empty if
/// unknown.
pub fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The jiffies a 64-bit kernel starts from: `INITIAL_JIFFIES`,
/// `(unsigned long)(unsigned int)(-300 * HZ)`, five minutes before the
/// 32-bit counter wraps (include/linux/jiffies.h).
pub fn initial_jiffies(hz: u64) -> u64 {
    u64::from((300 * hz as u32).wrapping_neg())
}

/// `CONFIG_HZ` of a kernel configuration.
pub fn hz_of_config(config: &str) -> Option<u64> {
    config
        .lines()
        .find_map(|l| l.strip_prefix("CONFIG_HZ=")?.trim().parse().ok())
        .filter(|hz| *hz > 0)
}

/// Turns jiffies into wall time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JiffyClock {
    /// Ticks a second.
    pub hz: u64,
}

impl JiffyClock {
    /// The running kernel's, when its HZ can be read (its configuration).
    pub fn open() -> Option<Self> {
        let hz = hz_of_config(&kernel_config()?.0)?;
        Some(Self { hz })
    }

    /// The kernel's jiffies now, as CLOCK_MONOTONIC tells.
    pub fn now(&self) -> Option<u64> {
        let t = clock_gettime(ClockId::CLOCK_MONOTONIC).ok()?;
        let ticks = u64::try_from(t.tv_sec()).ok()? * self.hz
            + u64::try_from(t.tv_nsec()).ok()? * self.hz / 1_000_000_000;
        Some(initial_jiffies(self.hz) + ticks)
    }

    /// The wall time (Unix seconds) of the stamp `then`, given that the
    /// jiffies were `now` at the wall time `wall_now`. A stamp a little
    /// after `now` (made after the reading) is `wall_now`; a 32-bit counter
    /// (a 32-bit kernel) that wrapped in between is unwrapped.
    pub fn wall_of(&self, then: u64, now: u64, wall_now: f64) -> f64 {
        let ticks = if now >= then {
            now - then
        } else if then <= u64::from(u32::MAX) && then - now > 1 << 31 {
            (now + (1 << 32)) - then
        } else {
            0
        };
        wall_now - ticks as f64 / self.hz as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jiffies_start_five_minutes_before_the_32_bit_wrap() {
        assert_eq!(initial_jiffies(250), 4_294_892_296);
        assert_eq!(initial_jiffies(1000), (1 << 32) - 300_000);
        // A leak the guest stamped 4294892800 two seconds after boot.
        let c = JiffyClock { hz: 250 };
        assert_eq!(4_294_892_800 - initial_jiffies(c.hz), 504);
        assert!(c.now().unwrap() > initial_jiffies(c.hz));
    }

    #[test]
    fn hz_from_a_config() {
        let c = "# CONFIG_HZ_100 is not set\nCONFIG_HZ_250=y\nCONFIG_HZ=250\n";
        assert_eq!(hz_of_config(c), Some(250));
        assert_eq!(hz_of_config("CONFIG_HZ_250=y\n"), None);
        assert_eq!(hz_of_config("CONFIG_HZ=0\n"), None);
    }

    #[test]
    fn a_stamp_becomes_the_wall_time_it_was_made() {
        let c = JiffyClock { hz: 250 };
        // From the guest: a leak stamped 4294892800, read 2 s later.
        assert_eq!(c.wall_of(4_294_892_800, 4_294_893_300, 1000.0), 998.0);
        // Made after the reading: no time travel into the future.
        assert_eq!(c.wall_of(4_294_893_301, 4_294_893_300, 1000.0), 1000.0);
        // A 32-bit counter that wrapped in between.
        assert_eq!(c.wall_of(u64::from(u32::MAX) - 249, 250, 1000.0), 998.0);
    }
}
