//! Source lines of the real leaklab.ko (built by `make test`, found through
//! LEAKLAB_BUILD_DIR): every function of every sample resolves, through the
//! module's relocated DWARF, to a line of its own `samples/<pattern>.rs`,
//! wherever the module's sections were loaded.

use std::path::PathBuf;

use leaklab::testing::{demangle, Ko, ModuleLayout, Section, Symbolizer};
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
        // The function's first instructions belong to its `fn` line or the
        // first lines of its body.
        let line: usize = line.parse().unwrap();
        let source =
            std::fs::read_to_string(format!("{}/../{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let lines: Vec<&str> = source.lines().collect();
        let fname = name.rsplit("::").next().unwrap();
        assert!(
            lines[line.saturating_sub(4)..line]
                .iter()
                .any(|l| l.contains(&format!("fn {fname}("))),
            "{arch}: {name} resolved to {loc}, which is not at its definition"
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
