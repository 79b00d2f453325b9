// SPDX-License-Identifier: GPL-2.0
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

/// The scheduler's debug file: it prints `ktime` (CLOCK_MONOTONIC, in
/// ms) and `jiffies` read at one moment (`CONFIG_SCHED_DEBUG`).
const SCHED_DEBUG: &str = "/sys/kernel/debug/sched/debug";

/// The jiffies that `ktime_ms` milliseconds of CLOCK_MONOTONIC make, had
/// jiffies started with the clock.
fn jiffies_at(hz: u64, ktime_ms: f64) -> u64 {
    initial_jiffies(hz) + (ktime_ms * hz as f64 / 1000.0) as u64
}

/// How far the kernel's jiffies are from [`jiffies_at`], from the
/// scheduler's debug file: jiffies start counting a little after
/// CLOCK_MONOTONIC (0.177 s seen on x86_64 under TCG, less than a tick on
/// arm64).
fn offset_of_sched_debug(text: &str, hz: u64) -> Option<i64> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim())
        })
    };
    let ktime_ms: f64 = field("ktime")?.parse().ok()?;
    let jiffies: u64 = field("jiffies")?.parse().ok()?;
    Some(i64::try_from(jiffies).ok()? - i64::try_from(jiffies_at(hz, ktime_ms)).ok()?)
}

/// Turns jiffies into wall time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JiffyClock {
    /// Ticks a second.
    pub hz: u64,
    /// The kernel's jiffies less the CLOCK_MONOTONIC estimate, when the
    /// scheduler's debug file told it (else 0, a fifth of a second off at
    /// most as seen here).
    pub offset: Option<i64>,
}

impl JiffyClock {
    /// The running kernel's, when its HZ can be read (its configuration).
    pub fn open() -> Option<Self> {
        let hz = hz_of_config(&kernel_config()?.0)?;
        let offset = fs::read_to_string(SCHED_DEBUG)
            .ok()
            .and_then(|t| offset_of_sched_debug(&t, hz));
        Some(Self { hz, offset })
    }

    /// The kernel's jiffies now, as CLOCK_MONOTONIC tells.
    pub fn now(&self) -> Option<u64> {
        let t = clock_gettime(ClockId::CLOCK_MONOTONIC).ok()?;
        let ms = t.tv_sec() as f64 * 1000.0 + t.tv_nsec() as f64 / 1e6;
        jiffies_at(self.hz, ms).checked_add_signed(self.offset.unwrap_or(0))
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
        let c = JiffyClock {
            hz: 250,
            offset: None,
        };
        assert_eq!(4_294_892_800 - initial_jiffies(c.hz), 504);
        assert!(c.now().unwrap() > initial_jiffies(c.hz));
    }

    #[test]
    fn the_offset_comes_from_the_scheduler_s_debug_file() {
        // As the x86_64 guest printed it, 1.19 s after boot.
        let text = "Sched Debug Version: v0.11, 6.12.118 #1\nktime                                   : 1169.045457\nsched_clk                               : 1196.807583\njiffies                                 : 4294892544\n";
        // 1.169 s at 250 Hz is 292 ticks; jiffies had counted 248.
        assert_eq!(offset_of_sched_debug(text, 250), Some(-44));
        assert_eq!(offset_of_sched_debug("ktime : 1.0\n", 250), None);
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
        let c = JiffyClock {
            hz: 250,
            offset: None,
        };
        // From the guest: a leak stamped 4294892800, read 2 s later.
        assert_eq!(c.wall_of(4_294_892_800, 4_294_893_300, 1000.0), 998.0);
        // Made after the reading: no time travel into the future.
        assert_eq!(c.wall_of(4_294_893_301, 4_294_893_300, 1000.0), 1000.0);
        // A 32-bit counter that wrapped in between.
        assert_eq!(c.wall_of(u64::from(u32::MAX) - 249, 250, 1000.0), 998.0);
    }
}
