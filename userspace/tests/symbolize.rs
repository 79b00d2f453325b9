// SPDX-License-Identifier: GPL-2.0
//! Source lines of the real leaklab.ko (built by `make test`, found through
//! LEAKLAB_BUILD_DIR): every function of every sample resolves, through the
//! module's relocated DWARF, to a line of its own `samples/<pattern>.rs`,
//! wherever the module's sections were loaded.

use std::path::PathBuf;

use leaklab::testing::{demangle, with_lines, Ko, ModuleLayout, Section, Symbolizer};
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

fn check(arch: &str, base: u64) {
    let dir =
        std::env::var("LEAKLAB_BUILD_DIR").expect("LEAKLAB_BUILD_DIR: run through 'make test'");
    let ko = PathBuf::from(dir).join(arch).join("leaklab.ko");
    // Sections laid out one after another from `base`, page-aligned, as the
    // module loader would place them.
    let mut next = base;
    let object = Ko::open(&ko).unwrap();
    let sections = object
        .section_sizes()
        .iter()
        .map(|(name, size)| {
            let (name, size) = (name.clone(), *size);
            let s = Section {
                name,
                address: next,
                size,
            };
            next = (next + size + 0xfff) & !0xfff;
            s
        })
        .collect::<Vec<_>>();
    let layout = ModuleLayout {
        name: "leaklab".into(),
        sections,
        loader: None,
    };
    let mut sym = Symbolizer::default();
    sym.add(&layout, &object).unwrap();

    let data = std::fs::read(&ko).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let mut checked = 0;
    for s in file
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.size() > 8)
    {
        let name = demangle(s.name().unwrap());
        let Some(rest) = name.strip_prefix("leaklab::samples::") else {
            continue;
        };
        let pattern = rest.split("::").next().unwrap();
        let section = file.section_by_index(s.section_index().unwrap()).unwrap();
        let at = layout
            .sections
            .iter()
            .find(|x| x.name == section.name().unwrap())
            .unwrap();
        // A return address a few bytes into the function.
        let r = sym.resolve(at.address + s.address() + 5).unwrap();
        assert_eq!(r.function, name);
        let loc = r
            .location
            .unwrap_or_else(|| panic!("{arch}: {name}: no source line"));
        let (file, line) = loc.rsplit_once(':').unwrap();
        assert_eq!(file, format!("samples/{pattern}.rs"), "{arch}: {name}");
        // The function's first instructions belong to its own source: the
        // nearest `fn` line at or above the line is its definition (a call
        // inlined there reads at the line of the call, in the function).
        let line: usize = line.parse().unwrap();
        let source =
            std::fs::read_to_string(format!("{}/../{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let lines: Vec<&str> = source.lines().collect();
        let fname = name.rsplit("::").next().unwrap();
        let definition = lines[..line]
            .iter()
            .rev()
            .find(|l| l.trim_start().starts_with("fn ") || l.contains(" fn "));
        assert!(
            definition.is_some_and(|l| l.contains(&format!("fn {fname}("))),
            "{arch}: {name} resolved to {loc}, which is not in its body"
        );
        checked += 1;
    }
    // Every sample file has its leaky and its fixed function at least.
    let samples = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../samples"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name != "mod.rs" && name.to_string_lossy().ends_with(".rs")
        })
        .count();
    assert!(samples > 0, "no sample files");
    assert!(
        checked >= 2 * samples,
        "{arch}: only {checked} sample functions checked for {samples} samples"
    );
}

#[test]
#[ignore = "needs the built module: run through 'make test'"]
fn sample_functions_resolve_to_their_lines_x86_64() {
    check("x86_64", 0xffff_ffff_c000_0000);
}

#[test]
#[ignore = "needs the built module: run through 'make test'"]
fn sample_functions_resolve_to_their_lines_arm64() {
    check("arm64", 0xffff_8000_7a00_0000);
}

/// A crafted sections file (sections at the top of the address space) and a
/// crafted report (the largest sizes, addresses and offsets) give a result,
/// never a panic: `make test` runs this in a debug build, where an
/// overflowing addition would panic.
fn crafted(arch: &str) {
    let dir =
        std::env::var("LEAKLAB_BUILD_DIR").expect("LEAKLAB_BUILD_DIR: run through 'make test'");
    let ko = PathBuf::from(dir).join(arch).join("leaklab.ko");
    let object = Ko::open(&ko).unwrap();
    let tmp = std::env::temp_dir().join(format!("leaklab-crafted-{arch}-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let sections: Vec<serde_json::Value> = object
        .section_sizes()
        .iter()
        .map(|(name, size)| {
            serde_json::json!({"name": name, "address": u64::MAX - 0xff, "size": size.max(&0x1000)})
        })
        .collect();
    let layout = tmp.join("sections.json");
    std::fs::write(
        &layout,
        serde_json::json!({"name": "leaklab", "sections": sections, "loader": u32::MAX})
            .to_string(),
    )
    .unwrap();
    let report = format!(
        "unreferenced object 0xffffffffffffffff (size {max}):\n  comm \"x\", pid 4294967295, jiffies {max}\n  backtrace (crc ffffffff):\n    0xffffffffffffffff\n    0xffffffffffffff10\n    func+0xffffffffffffffff/0xffffffffffffffff [leaklab]\n    __kmalloc+0x0/0x0\nunreferenced object 0x0 (size {max}):\n  comm \"x\", pid 1, jiffies 0\n  backtrace (crc 1):\n    0xffffffffffffffff\n",
        max = u64::MAX
    );
    let input = tmp.join("crafted.log");
    std::fs::write(&input, report.repeat(3)).unwrap();
    for format in ["human", "json"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_leaklab"))
            .args(["parse", "--format", format, "--ko"])
            .arg(&ko)
            .arg("--sections")
            .arg(&layout)
            .arg(&input)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{arch} {format}: {stderr}");
        // Reports were read: exit 1, and the sizes saturate, not wrap.
        assert_eq!(out.status.code(), Some(1), "{arch} {format}: {stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        if format == "human" {
            assert!(stdout.starts_with("6 reports in "), "{stdout}");
            assert!(stdout.contains(&format!("{} bytes", u64::MAX)), "{stdout}");
        }
    }
    // The library too: a layout at the top of the address space.
    let layout: ModuleLayout =
        serde_json::from_str(&std::fs::read_to_string(&layout).unwrap()).unwrap();
    let mut sym = Symbolizer::default();
    sym.add(&layout, &object).unwrap();
    for addr in [u64::MAX, u64::MAX - 0xff, u64::MAX - 0x10, 0] {
        let _ = sym.resolve(addr);
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
#[ignore = "needs the built module: run through 'make test'"]
fn crafted_sections_and_reports_never_panic_x86_64() {
    crafted("x86_64");
}

#[test]
#[ignore = "needs the built module: run through 'make test'"]
fn crafted_sections_and_reports_never_panic_arm64() {
    crafted("arm64");
}

/// Binutils' own reading of `symbol+offset` in the relocatable debug file
/// `ko`: the symbol's section and value from `objdump -t`, the call's line
/// (one byte before the return address) from `addr2line -j SECTION`.
fn addr2line(ko: &std::path::Path, symbol: &str, offset: u64) -> String {
    let run = |cmd: &mut std::process::Command| {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let table = run(std::process::Command::new("objdump").arg("-t").arg(ko));
    // `0000000000000000 l     F .init.text\t00000000000000f3 init_nfs_fs`
    let line = table
        .lines()
        .find(|l| l.ends_with(&format!(" {symbol}")) && l.contains(" F "))
        .unwrap_or_else(|| panic!("no {symbol} in {}", ko.display()));
    let value = u64::from_str_radix(line.split_whitespace().next().unwrap(), 16).unwrap();
    let section = line.split_whitespace().nth(3).unwrap();
    let at = format!("{:#x}", value + offset - 1);
    let out = run(std::process::Command::new("addr2line")
        .arg("-e")
        .arg(ko)
        .args(["-j", section, &at]));
    out.trim().to_string()
}

/// Debian's modules are stripped; their lines ship in the -dbg package
/// (`make debian-dbg DEBIAN=6.12`). A leak a sweep of Debian's 6.12 found
/// in `nfs` (its frames as the guest named them) gets its source lines from
/// there: the module's frames, at the lines binutils' addr2line gives;
/// the kernel's frames as they were.
#[test]
#[ignore = "needs Debian's -dbg tree: run through 'make test'"]
fn debian_module_frames_get_their_lines_from_the_dbg_package() {
    let dir =
        std::env::var("LEAKLAB_BUILD_DIR").expect("LEAKLAB_BUILD_DIR: run through 'make test'");
    let ko = PathBuf::from(dir).join("debian-6.12-x86_64/debug/kernel/fs/nfs/nfs.ko");
    let debug = Ko::open_debug(&ko, "nfs").expect("make debian-dbg DEBIAN=6.12");
    let frames: Vec<String> = [
        "__kmalloc_noprof+0x22c",
        "register_pernet_subsys+0x28",
        "init_nfs_fs+0x35 [nfs]",
        "do_one_initcall+0x5b",
    ]
    .map(String::from)
    .to_vec();
    let lines = with_lines(&frames, &debug).unwrap();
    let expected = addr2line(&ko, "init_nfs_fs", 0x35);
    let (file, _) = expected.rsplit_once(':').unwrap();
    assert!(file.ends_with("fs/nfs/inode.c"), "{expected}");
    // Debian's DWARF names its build tree's paths
    // (`debian/build/build_amd64_none_amd64/fs/nfs/inode.c`).
    let at = lines[2].rsplit_once(" at ").map(|(_, at)| at);
    assert_eq!(at, Some(expected.as_str()), "{lines:?}");
    assert_eq!(
        lines[2].split(" at ").next(),
        Some("init_nfs_fs+0x35 [nfs]")
    );
    assert_eq!(
        [&lines[..2], &lines[3..]].concat(),
        [&frames[..2], &frames[3..]].concat()
    );
}
