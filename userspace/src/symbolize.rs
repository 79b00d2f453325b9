//! Turning module frames back into function names, also after the module is
//! gone: a bare address is looked up in the recorded section addresses of the
//! module ([`ModuleLayout`]) and the symbol table of its `.ko`. Rust names are
//! demangled (v0 and legacy), kernel frames too.

use std::{fs, path::Path};

use anyhow::{Context, Result};
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};
use serde::Serialize;

use crate::{layout::ModuleLayout, report::Frame};

/// Demangles a Rust symbol, without the hash; other names come back as they are.
pub fn demangle(name: &str) -> String {
    match rustc_demangle::try_demangle(name) {
        Ok(d) => format!("{d:#}"),
        Err(_) => name.to_string(),
    }
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
}

#[derive(Debug, Clone)]
struct Sym {
    start: u64,
    size: u64,
    name: String,
}

#[derive(Debug, Clone)]
struct ModuleSyms {
    layout: ModuleLayout,
    syms: Vec<Sym>,
}

/// Resolves addresses inside modules that were loaded (and maybe unloaded).
#[derive(Debug, Clone, Default)]
pub struct Symbolizer {
    modules: Vec<ModuleSyms>,
}

impl Symbolizer {
    /// Adds the module whose layout was recorded in `layout`, with object file `ko`.
    pub fn add(&mut self, layout: &ModuleLayout, ko: &Path) -> Result<()> {
        let data = fs::read(ko).with_context(|| format!("reading {}", ko.display()))?;
        let file = object::File::parse(&*data)
            .with_context(|| format!("{} is not an ELF object", ko.display()))?;
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
            syms.push(Sym {
                start: base.address + s.address(),
                size: s.size(),
                name: demangle(name),
            });
        }
        self.add_symbols(layout.clone(), syms);
        Ok(())
    }

    fn add_symbols(&mut self, layout: ModuleLayout, mut syms: Vec<Sym>) {
        syms.sort_by_key(|s| s.start);
        self.modules.push(ModuleSyms { layout, syms });
    }

    /// Adds a module by its layout alone (no symbols: frames resolve to
    /// `section+offset`).
    #[cfg(test)]
    pub(crate) fn add_layout(&mut self, layout: ModuleLayout) {
        self.add_symbols(layout, Vec::new());
    }

    /// Resolves an address inside one of the added modules' sections: to the
    /// symbol that covers it, or to `section+offset` when none does.
    pub fn resolve(&self, addr: u64) -> Option<Resolved> {
        let (m, section) = self
            .modules
            .iter()
            .find_map(|m| Some((m, m.layout.section_of(addr)?)))?;
        let i = m.syms.partition_point(|s| s.start <= addr);
        let sym = m.syms[..i]
            .iter()
            .rev()
            .find(|s| s.size == 0 || addr < s.start + s.size)
            .filter(|s| addr - s.start < s.size.max(1 << 16));
        let (function, start) = match sym {
            Some(s) => (s.name.clone(), s.start),
            None => (section.name.clone(), section.address),
        };
        Some(Resolved {
            module: Some(m.layout.name.clone()),
            function,
            offset: Some(addr - start),
        })
    }

    /// The added module a frame lies in: by its `[module]` tag, or by its
    /// address.
    pub fn module_of(&self, f: &Frame) -> Option<&str> {
        let m = match &f.module {
            Some(tag) => self.modules.iter().find(|m| &m.layout.name == tag),
            None => {
                let addr = f.address?;
                self.modules
                    .iter()
                    .find(|m| m.layout.section_of(addr).is_some())
            }
        }?;
        Some(m.layout.name.as_str())
    }

    /// Resolves a parsed frame: by its symbol when the kernel printed one,
    /// else by its address.
    pub fn frame(&self, f: &Frame) -> Option<Resolved> {
        match &f.symbol {
            Some(sym) => Some(Resolved {
                module: f.module.clone(),
                function: demangle(sym),
                offset: f.offset,
            }),
            None => self.resolve(f.address?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demangles_v0_and_leaves_c_alone() {
        assert_eq!(
            demangle("_RNvMNtNtCs1EKtwoKEMO2_6kernel5alloc9allocatorNtB2_11ReallocFunc4call"),
            "<kernel::alloc::allocator::ReallocFunc>::call"
        );
        assert_eq!(demangle("kmemleak_alloc"), "kmemleak_alloc");
    }
}
