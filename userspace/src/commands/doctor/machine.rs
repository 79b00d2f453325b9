// SPDX-License-Identifier: GPL-2.0
//! What machine this is: the board's model and the CPU.

/// The board's name: the device tree's model, else DMI's.
pub(super) fn board() -> Option<String> {
    let dt = std::fs::read("/proc/device-tree/model").ok().map(|b| {
        String::from_utf8_lossy(&b)
            .trim_end_matches('\0')
            .trim()
            .to_string()
    });
    let dmi = || {
        let vendor = std::fs::read_to_string("/sys/class/dmi/id/sys_vendor").unwrap_or_default();
        let product = std::fs::read_to_string("/sys/class/dmi/id/product_name").ok()?;
        Some(
            format!("{} {}", vendor.trim(), product.trim())
                .trim()
                .to_string(),
        )
    };
    dt.filter(|s| !s.is_empty()).or_else(dmi)
}

/// The CPUs from `/proc/cpuinfo`: `model name` (x86), or the ARM part
/// numbers of each core, counted.
pub(super) fn cpu() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    cpu_summary(&text)
}

/// See [`cpu`]; `text` is `/proc/cpuinfo`.
pub fn cpu_summary(text: &str) -> Option<String> {
    let value = |l: &str, key: &str| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_string())
    };
    let mut kinds: Vec<(String, usize)> = Vec::new();
    for l in text.lines() {
        let name = value(l, "model name").or_else(|| {
            value(l, "CPU part").map(|p| arm_part(&p).map_or(format!("ARM part {p}"), String::from))
        });
        if let Some(name) = name {
            match kinds.iter_mut().find(|(n, _)| *n == name) {
                Some((_, count)) => *count += 1,
                None => kinds.push((name, 1)),
            }
        }
    }
    let parts: Vec<String> = kinds
        .iter()
        .map(|(name, count)| format!("{count}x {name}"))
        .collect();
    (!parts.is_empty()).then(|| parts.join(" + "))
}

/// The core an Arm Ltd `CPU part` number names.
pub(super) fn arm_part(part: &str) -> Option<&'static str> {
    Some(match part.to_ascii_lowercase().as_str() {
        "0xd03" => "Cortex-A53",
        "0xd05" => "Cortex-A55",
        "0xd07" => "Cortex-A57",
        "0xd08" => "Cortex-A72",
        "0xd0b" => "Cortex-A76",
        "0xd0c" => "Neoverse-N1",
        "0xd41" => "Cortex-A78",
        "0xd46" => "Cortex-A510",
        "0xd47" => "Cortex-A710",
        "0xd4f" => "Neoverse-V2",
        _ => return None,
    })
}
