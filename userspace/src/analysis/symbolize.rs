// SPDX-License-Identifier: GPL-2.0
//! Turning module frames back into function names and source lines, also
//! after the module is gone: a bare address is looked up in the recorded
//! section addresses of the module ([`ModuleLayout`]), the symbol table of its
//! `.ko`, and its DWARF line tables (relocated as the module was loaded). Rust
//! names are demangled (v0 and legacy), kernel frames too.

use std::{borrow::Cow, collections::HashMap, sync::Arc};

use anyhow::Result;
use object::{
    Object, ObjectSection, ObjectSymbol, RelocationKind, RelocationTarget, SectionIndex, SymbolKind,
};
use serde::Serialize;

use crate::{
    kernel::module::{Ko, ModuleLayout, Section},
    kmemleak::report::{Frame, Report},
};

/// Demangles a Rust symbol, without the hash; other names come back as they are.
pub fn demangle(name: &str) -> String {
    match rustc_demangle::try_demangle(name) {
        Ok(d) => format!("{d:#}"),
        Err(_) => name.to_string(),
    }
}

/// The names `module_init()` and `module_exit()` give the functions they
/// are passed (a C module's; in a Rust module they are functions of their
/// own, alone at their address).
fn is_alias(name: &str) -> bool {
    matches!(name, "init_module" | "cleanup_module")
}

/// A frame resolved to a function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved {
    /// The module, or `None` for the kernel image.
    pub module: Option<String>,
    /// The function, demangled.
    pub function: String,
    /// The offset into it, when known.
    pub offset: Option<u64>,
    /// The source line of the call, `file:line`, from the module's DWARF.
    pub location: Option<String>,
}

impl Resolved {
    /// `function+0xoff [module] at file:line`, as the human output prints it.
    pub fn display(&self) -> String {
        let mut s = format!("{}+{:#x}", self.function, self.offset.unwrap_or(0));
        if let Some(m) = &self.module {
            s += &format!(" [{m}]");
        }
        if let Some(l) = &self.location {
            s += &format!(" at {l}");
        }
        s
    }
}

#[derive(Debug, Clone)]
struct Sym {
    start: u64,
    size: u64,
    /// As in the symbol table (kmemleak prints this one).
    raw: String,
}

impl Sym {
    /// The name demangled (when looked up: most symbols never are).
    fn name(&self) -> String {
        demangle(&self.raw)
    }
}

/// A `.ko`'s DWARF, read with its relocations applied for the addresses its
/// sections were loaded at.
type Dwarf = addr2line::Context<Reader>;
type Reader = gimli::RelocateReader<gimli::EndianArcSlice<gimli::RunTimeEndian>, Relocs>;

/// The relocations of one debug section: offset in the section to the value
/// (symbol address plus addend) and whether the section's bytes add to it.
#[derive(Debug, Clone, Default)]
struct Relocs(Arc<HashMap<usize, (u64, bool)>>);

impl gimli::read::Relocate for Relocs {
    fn relocate_address(&self, offset: usize, value: u64) -> gimli::Result<u64> {
        Ok(match self.0.get(&offset) {
            Some(&(v, true)) => v.wrapping_add(value),
            Some(&(v, false)) => v,
            None => value,
        })
    }

    fn relocate_offset(&self, offset: usize, value: usize) -> gimli::Result<usize> {
        let v = self.relocate_address(offset, value as u64)?;
        usize::try_from(v).map_err(|_| gimli::Error::OffsetOutOfBounds)
    }
}

/// Reads the DWARF of `file`, relocating addresses into sections to where
/// `layout` says they were loaded.
fn load_dwarf(file: &object::File<'_>, layout: &ModuleLayout) -> Result<Dwarf> {
    let base = |index: Option<SectionIndex>| -> u64 {
        index
            .and_then(|i| file.section_by_index(i).ok())
            .and_then(|s| s.name().ok().map(str::to_string))
            .and_then(|n| layout.sections.iter().find(|x| x.name == n))
            .map_or(0, |x| x.address)
    };
    let endian = if file.is_little_endian() {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    };
    let load = |id: gimli::SectionId| -> Result<Reader> {
        let Some(section) = file.section_by_name(id.name()) else {
            let empty = gimli::EndianArcSlice::new(Arc::from(&[][..]), endian);
            return Ok(gimli::RelocateReader::new(empty, Relocs::default()));
        };
        let data: Cow<[u8]> = section.uncompressed_data()?;
        let mut relocs = HashMap::new();
        for (offset, r) in section.relocations() {
            if r.kind() != RelocationKind::Absolute {
                continue;
            }
            let target = match r.target() {
                RelocationTarget::Symbol(i) => {
                    let sym = file.symbol_by_index(i)?;
                    base(sym.section_index()).wrapping_add(sym.address())
                }
                RelocationTarget::Section(i) => base(Some(i)),
                _ => continue,
            };
            let value = target.wrapping_add(r.addend() as u64);
            relocs.insert(offset as usize, (value, r.has_implicit_addend()));
        }
        let reader = gimli::EndianArcSlice::new(Arc::from(&*data), endian);
        Ok(gimli::RelocateReader::new(reader, Relocs(Arc::new(relocs))))
    };
    let dwarf = gimli::Dwarf::load(load)?;
    Ok(addr2line::Context::from_dwarf(dwarf)?)
}

/// `file:line` of the code at `addr` in the function the symbol names: of
/// the inlined calls there (a C driver's `kmalloc()` is inlined from
/// `<linux/slab.h>`), the outermost, the line the driver author wrote.
fn location(dwarf: &Dwarf, addr: u64) -> Option<String> {
    let mut frames = dwarf.find_frames(addr).skip_all_loads().ok()?;
    let mut outermost = None;
    while let Ok(Some(frame)) = frames.next() {
        if let Some(loc) = frame.location {
            outermost = Some(loc);
        }
    }
    let loc = outermost.or_else(|| dwarf.find_location(addr).ok()?)?;
    Some(format!(
        "{}:{}",
        short_path(&lexically_normal(loc.file?)),
        loc.line?
    ))
}

/// `path` with each `dir/..` taken out (`module/../samples/x.rs` is
/// `samples/x.rs`: the crate reaches its samples that way).
fn lexically_normal(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            ".." if parts.last().is_some_and(|p| !p.is_empty() && *p != "..") => {
                parts.pop();
            }
            "." => {}
            _ => parts.push(part),
        }
    }
    parts.join("/")
}

/// A source path as the project names it: from `build/lessons/` (a
/// lesson's copy), `samples/`, `module/`, `rust/` or `examples/` on, else
/// as DWARF gives it.
fn short_path(path: &str) -> &str {
    [
        "/build/lessons/",
        "/samples/",
        "/module/",
        "/rust/",
        "/examples/",
    ]
    .iter()
    .find_map(|d| path.rfind(d).map(|i| &path[i + 1..]))
    .unwrap_or(path)
}

struct ModuleSyms {
    layout: ModuleLayout,
    /// The threads that loaded it at this place: the layout's own, and
    /// those of later loads that landed at the same addresses.
    loaders: Vec<u32>,
    syms: Vec<Sym>,
    dwarf: LazyDwarf,
}

/// A module's DWARF: needed only for source lines, when a verdict is
/// written, so read in a thread of the lowest priority (it runs while the
/// run waits: grace periods, the trace's settle) and taken when first
/// needed. `None`: the module has none (it still resolves to functions).
struct LazyDwarf {
    reading: std::sync::Mutex<Option<std::thread::JoinHandle<Option<Dwarf>>>>,
    read: std::sync::OnceLock<Option<Dwarf>>,
}

impl LazyDwarf {
    /// Starts reading the DWARF of `ko`, loaded as `layout` says.
    fn start(ko: &Ko, layout: &ModuleLayout) -> Self {
        let (bytes, layout) = (ko.bytes(), layout.clone());
        let reading = std::thread::Builder::new()
            .name("dwarf".into())
            .spawn(move || {
                crate::kernel::thread::lowest_priority();
                let file = object::File::parse(&*bytes).ok()?;
                load_dwarf(&file, &layout).ok()
            })
            .ok();
        Self {
            reading: std::sync::Mutex::new(reading),
            read: std::sync::OnceLock::new(),
        }
    }

    /// The DWARF, once read (waits for the thread the first time).
    fn get(&self) -> Option<&Dwarf> {
        self.read
            .get_or_init(|| {
                let thread = self
                    .reading
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                thread.and_then(|t| t.join().ok().flatten())
            })
            .as_ref()
    }
}

/// Resolves addresses inside modules that were loaded (and maybe unloaded).
#[derive(Default)]
pub struct Symbolizer {
    modules: Vec<ModuleSyms>,
}

impl Symbolizer {
    /// Adds the module whose layout was recorded in `layout`, with object
    /// file `ko`. A load that landed where an earlier load of the same
    /// module was adds only its loading thread: a run of a thousand loads
    /// keeps one copy of the module's symbols per place.
    pub fn add(&mut self, layout: &ModuleLayout, ko: &Ko) -> Result<()> {
        if self.known_place(layout) {
            return Ok(());
        }
        let file = ko.object()?;
        let mut syms = Vec::new();
        for s in file.symbols() {
            if s.kind() != SymbolKind::Text {
                continue;
            }
            let Some(index) = s.section_index() else {
                continue;
            };
            let Ok(section) = file.section_by_index(index) else {
                continue;
            };
            let Ok(section_name) = section.name() else {
                continue;
            };
            let Some(base) = layout.sections.iter().find(|x| x.name == section_name) else {
                continue;
            };
            let Ok(name) = s.name() else { continue };
            // A crafted file may place a symbol past the address space.
            let Some(start) = base.address.checked_add(s.address()) else {
                continue;
            };
            syms.push(Sym {
                start,
                size: s.size(),
                raw: name.to_string(),
            });
        }
        self.add_symbols(layout.clone(), syms, LazyDwarf::start(ko, layout));
        Ok(())
    }

    /// Whether an earlier load of `layout`'s module landed where it did;
    /// if so, its loading thread is added to that load's.
    fn known_place(&mut self, layout: &ModuleLayout) -> bool {
        let same = self
            .modules
            .iter_mut()
            .find(|m| m.layout.name == layout.name && m.layout.sections == layout.sections);
        match same {
            Some(m) => {
                m.loaders.extend(layout.loader);
                true
            }
            None => false,
        }
    }

    fn add_symbols(&mut self, layout: ModuleLayout, mut syms: Vec<Sym>, dwarf: LazyDwarf) {
        // Of the names at one address, the one looked up (the last) is the
        // function's own: `module_init(foo_init)` also names it
        // `init_module`, which says nothing.
        syms.sort_by_key(|s| (s.start, !is_alias(&s.raw)));
        self.modules.push(ModuleSyms {
            loaders: layout.loader.into_iter().collect(),
            layout,
            syms,
            dwarf,
        });
    }

    /// Resolves an address inside one of the added modules' sections: to the
    /// symbol that covers it, or to `section+offset` when none does.
    pub fn resolve(&self, addr: u64) -> Option<Resolved> {
        self.resolve_for(addr, None)
    }

    /// The added module whose sections hold `addr`. Where several do (init
    /// sections, freed after init, are reused by the next module loaded),
    /// the one loaded by `pid` (the allocating task kmemleak names) wins.
    fn holder(&self, addr: u64, pid: Option<u32>) -> Option<(&ModuleSyms, &Section)> {
        let mut all = self
            .modules
            .iter()
            .filter_map(|m| Some((m, m.layout.section_of(addr)?)));
        let first = all.next()?;
        Some(
            std::iter::once(first)
                .chain(all)
                .find(|(m, _)| pid.is_some_and(|p| m.loaders.contains(&p)))
                .unwrap_or(first),
        )
    }

    /// Whether `addr` lies in one of the added modules' sections.
    pub fn holds(&self, addr: u64) -> bool {
        self.holder(addr, None).is_some()
    }

    /// As [`Symbolizer::resolve`], for an object allocated by task `pid`.
    pub fn resolve_for(&self, addr: u64, pid: Option<u32>) -> Option<Resolved> {
        self.resolve_at(addr, pid, true)
    }

    /// As [`Symbolizer::resolve_for`]; the source line only with `line`
    /// (it costs a walk of the module's DWARF).
    fn resolve_at(&self, addr: u64, pid: Option<u32>, line: bool) -> Option<Resolved> {
        let (m, section) = self.holder(addr, pid)?;
        let i = m.syms.partition_point(|s| s.start <= addr);
        let sym = m.syms[..i]
            .iter()
            .rev()
            .find(|s| s.size == 0 || addr - s.start < s.size)
            .filter(|s| addr - s.start < s.size.max(1 << 16));
        let (function, start) = match sym {
            Some(s) => (s.name(), s.start),
            None => (section.name.clone(), section.address),
        };
        Some(Resolved {
            module: Some(m.layout.name.clone()),
            function,
            offset: Some(addr - start),
            location: line.then(|| m.line_of(addr)).flatten(),
        })
    }

    /// The added module a frame lies in: by its `[module]` tag, or by its
    /// address.
    pub fn module_of(&self, f: &Frame, pid: Option<u32>) -> Option<&str> {
        let m = match &f.module {
            Some(tag) => self.modules.iter().find(|m| &m.layout.name == tag),
            None => self.holder(f.address?, pid).map(|(m, _)| m),
        }?;
        Some(m.layout.name.as_str())
    }

    /// The added module a report's backtrace passes through, first frame first.
    pub fn owner_of(&self, r: &Report) -> Option<&str> {
        r.frames.iter().find_map(|f| self.module_of(f, r.pid))
    }

    /// Resolves a parsed frame of an object allocated by task `pid`: by its
    /// address when the kernel printed one, else by its symbol (with the
    /// source line when the symbol is in an added module).
    pub fn frame(&self, f: &Frame, pid: Option<u32>) -> Option<Resolved> {
        self.resolve_frame(f, pid, true)
    }

    /// As [`Symbolizer::frame`], without the source line: what attribution
    /// needs of every frame.
    pub fn frame_named(&self, f: &Frame, pid: Option<u32>) -> Option<Resolved> {
        self.resolve_frame(f, pid, false)
    }

    fn resolve_frame(&self, f: &Frame, pid: Option<u32>, line: bool) -> Option<Resolved> {
        if let Some(r) = f.address.and_then(|a| self.resolve_at(a, pid, line)) {
            return Some(r);
        }
        let sym = f.symbol.as_ref()?;
        let known = f.module.as_ref().and_then(|tag| {
            let m = self.modules.iter().find(|m| &m.layout.name == tag)?;
            let s = m.syms.iter().find(|s| &s.raw == sym)?;
            Some((m, s))
        });
        let location = known
            .filter(|_| line)
            .and_then(|(m, s)| m.line_of(s.start.checked_add(f.offset?)?));
        // The kernel may print an alias (`init_module`): the function's own
        // name is the last at its address.
        let function = known
            .and_then(|(m, s)| m.syms.iter().rev().find(|o| o.start == s.start))
            .map_or_else(|| demangle(sym), Sym::name);
        Some(Resolved {
            module: f.module.clone(),
            function,
            offset: f.offset,
            location,
        })
    }
}

impl ModuleSyms {
    /// The source line of the call that returns to `addr` (a stack frame's
    /// address is the instruction after the call: look one byte before it).
    fn line_of(&self, addr: u64) -> Option<String> {
        location(self.dwarf.get()?, addr.checked_sub(1)?)
    }
}

/// What the crate's tests need of a symbolizer: a module by its layout
/// alone.
#[cfg(test)]
pub(crate) mod testing {
    use super::{LazyDwarf, ModuleLayout, Symbolizer};

    /// Adds a module to `sym` by its layout alone (no symbols and no DWARF:
    /// frames resolve to `section+offset`).
    pub(crate) fn add_layout(sym: &mut Symbolizer, layout: ModuleLayout) {
        if sym.known_place(&layout) {
            return;
        }
        let none = LazyDwarf {
            reading: std::sync::Mutex::new(None),
            read: std::sync::OnceLock::from(None),
        };
        sym.add_symbols(layout, Vec::new(), none);
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn source_paths_are_named_from_the_project_s_directories() {
        assert_eq!(
            short_path("/work/main/build/lessons/error_path-c/leaky_driver.c"),
            "build/lessons/error_path-c/leaky_driver.c",
            "a lesson's copy, not the example it came from"
        );
        assert_eq!(
            short_path("/work/main/build/lessons/error_path-rust/samples/error_path.rs"),
            "build/lessons/error_path-rust/samples/error_path.rs"
        );
        assert_eq!(
            short_path("/src/leaklab/samples/error_path.rs"),
            "samples/error_path.rs"
        );
        assert_eq!(
            short_path("/home/me/examples/leaky_driver/leaky_driver.c"),
            "examples/leaky_driver/leaky_driver.c"
        );
        assert_eq!(short_path("/home/me/mydrv/main.c"), "/home/me/mydrv/main.c");
        assert_eq!(
            lexically_normal("/w/build/lessons/e-rust/module/../samples/e.rs"),
            "/w/build/lessons/e-rust/samples/e.rs"
        );
        assert_eq!(lexically_normal("../x/./y.c"), "../x/y.c");
    }

    use super::*;
    use crate::kmemleak::report;

    #[test]
    fn demangles_v0_and_leaves_c_alone() {
        assert_eq!(
            demangle("_RNvMNtNtCs1EKtwoKEMO2_6kernel5alloc9allocatorNtB2_11ReallocFunc4call"),
            "<kernel::alloc::allocator::ReallocFunc>::call"
        );
        assert_eq!(demangle("kmemleak_alloc"), "kmemleak_alloc");
    }

    #[test]
    fn reused_init_sections_are_told_apart_by_the_loading_thread() {
        // Two modules loaded one after the other, each from its own thread:
        // the second one's init text lands where the first one's was freed,
        // and a third load of the first lands there again.
        let mut symbols = Symbolizer::default();
        for (name, loader) in [
            ("kmemleak_test", 18),
            ("rust_minimal", 40),
            ("kmemleak_test", 77),
        ] {
            testing::add_layout(
                &mut symbols,
                ModuleLayout {
                    name: name.into(),
                    sections: vec![Section {
                        name: ".init.text".into(),
                        address: 0xffffffffa001c000,
                        size: 0x100,
                    }],
                    loader: Some(loader),
                },
            );
        }
        let report = |pid: u32| {
            let text = format!("unreferenced object 0xffff888003a8e000 (size 32):\n  comm \"exe\", pid {pid}, jiffies 4294892816\n  backtrace (crc 1):\n    __kmalloc_cache_noprof+0x104/0x114\n    0xffffffffa001c029\n    do_one_initcall+0x72/0x153\n");
            report::parse(&text).remove(0)
        };
        assert_eq!(symbols.owner_of(&report(18)), Some("kmemleak_test"));
        assert_eq!(symbols.owner_of(&report(40)), Some("rust_minimal"));
        assert_eq!(symbols.owner_of(&report(77)), Some("kmemleak_test"));
        // The third load shares the first one's symbols.
        assert_eq!(symbols.modules.len(), 2);
    }

    #[test]
    fn bare_addresses_and_tags_are_attributed() {
        let mut symbols = Symbolizer::default();
        testing::add_layout(
            &mut symbols,
            ModuleLayout {
                name: "kmemleak_test".into(),
                sections: vec![Section {
                    name: ".init.text".into(),
                    address: 0xffffffffa0000000,
                    size: 0x300,
                }],
                loader: Some(18),
            },
        );
        let text = "unreferenced object 0xffff888003a8e000 (size 32):\n  backtrace (crc 1):\n    __kmalloc_cache_noprof+0x1a2/0x2a0\n    0xffffffffa000023a\n";
        let r = &report::parse(text)[0];
        assert_eq!(symbols.owner_of(r), Some("kmemleak_test"));
        let outside = text.replace("0xffffffffa000023a", "0xffffffffa0000300");
        assert_eq!(symbols.owner_of(&report::parse(&outside)[0]), None);
        let tagged = text.replace(
            "0xffffffffa000023a",
            "kmemleak_test_init+0x2a/0x100 [kmemleak_test]",
        );
        assert_eq!(
            symbols.owner_of(&report::parse(&tagged)[0]),
            Some("kmemleak_test")
        );
    }
}
