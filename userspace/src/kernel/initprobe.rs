// SPDX-License-Identifier: GPL-2.0
//! Where a module's code was loaded, told by the kernel as its init
//! starts: a kprobe event on `do_init_module()`, whose argument is the
//! module's `struct module`, records the init function's address and the
//! module's memory regions.
//!
//! `/sys/module/<name>/sections/` shows the same only while the module is
//! there; a module whose init fails is freed before the load returns, so
//! a reader racing the load misses it now and then. The probe's record is
//! written before the init runs and read after, so it is there every time.
//!
//! The offsets into `struct module` come from the module's own object file:
//! the relocation that puts the init function into `__this_module` gives
//! `offsetof(struct module, init)`, and the memory regions follow it at the
//! next cache line (`mem[]` since 6.4, `core_layout` and `init_layout`
//! before). Both shapes are tried, and one counts only where every region
//! points back at the module (`mtn.mod`) and the init function lies in it.
//! Within a region, the sections lie in the order the kernel's
//! `layout_sections()` gives them, checked against the init and exit
//! functions' addresses.

use std::{fs, path::PathBuf};

use anyhow::{bail, Context, Result};
use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget, SectionFlags};

use super::{
    module::{Ko, ModuleLayout, Section},
    tracefs, undo,
};

/// The probed function: it runs the module's init (in 6.1 and 6.12 alike).
const PROBED: &str = "do_init_module";

/// Words of `struct module` read from the first memory region on: 7
/// regions of 9 words (6.4 on), or more than the 2 of 10 before.
const WORDS: usize = 63;

/// The cache line the regions are aligned to (`____cacheline_aligned` with
/// `CONFIG_MODULES_TREE_LOOKUP`, which tracing turns on): 64 bytes on
/// x86_64 and arm64.
const CACHE_LINE: u64 = 64;

/// Where the fields leaklab reads sit in `struct module`, as the module
/// was built.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Offsets {
    /// `init`, the init function.
    init: u64,
    /// `exit`, the exit function, when the module has one.
    exit: Option<u64>,
    /// `name`.
    name: u64,
}

/// A module's function: its section's index and its offset there.
#[derive(Debug, Clone, Copy)]
struct Function {
    section: object::SectionIndex,
    value: u64,
}

/// One executable section of a module's object file.
#[derive(Debug, Clone)]
struct TextSection {
    index: object::SectionIndex,
    name: String,
    size: u64,
    /// Where the kernel puts it in its region.
    offset: u64,
    /// Whether it is freed after init (`.init*`).
    init: bool,
}

/// What the object file says about the module's layout.
#[derive(Debug, Clone)]
struct Plan {
    offsets: Offsets,
    init_fn: Option<Function>,
    exit_fn: Option<Function>,
    text: Vec<TextSection>,
}

impl Plan {
    fn of(ko: &Ko) -> Result<Self> {
        let file = ko.object()?;
        let this = file
            .section_by_name(".gnu.linkonce.this_module")
            .context("no .gnu.linkonce.this_module section: not a kernel module")?;
        let mut offsets = Offsets {
            init: 0,
            exit: None,
            name: 0,
        };
        let mut have_init = false;
        for (at, reloc) in this.relocations() {
            let RelocationTarget::Symbol(i) = reloc.target() else {
                continue;
            };
            match file.symbol_by_index(i).and_then(|s| s.name()) {
                Ok("init_module") => {
                    offsets.init = at;
                    have_init = true;
                }
                Ok("cleanup_module") => offsets.exit = Some(at),
                _ => {}
            }
        }
        // A module without an init function has nothing to fail.
        anyhow::ensure!(have_init, "{} has no init function", ko.name());
        let data = this.data()?;
        let mut wanted = ko.name().as_bytes().to_vec();
        wanted.push(0);
        offsets.name = data
            .windows(wanted.len())
            .position(|w| w == wanted)
            .context("the module's name is not in __this_module")? as u64;
        let function = |name: &str| {
            file.symbols()
                .filter(|s| s.name() == Ok(name))
                .find_map(|s| {
                    Some(Function {
                        section: s.section_index()?,
                        value: s.address(),
                    })
                })
        };
        Ok(Self {
            offsets,
            init_fn: function("init_module"),
            exit_fn: function("cleanup_module"),
            text: text_sections(&file),
        })
    }
}

/// The executable sections in the order `layout_sections()` lays them:
/// core and init apart, each in section-header order, each aligned.
fn text_sections(file: &object::File<'_>) -> Vec<TextSection> {
    let exec = u64::from(object::elf::SHF_EXECINSTR | object::elf::SHF_ALLOC);
    let mut out: Vec<TextSection> = Vec::new();
    for init in [false, true] {
        let mut size = 0u64;
        for s in file.sections() {
            let SectionFlags::Elf { sh_flags } = s.flags() else {
                continue;
            };
            let Ok(name) = s.name() else { continue };
            // With CONFIG_MODULE_UNLOAD (leaklab needs it) `.exit*` is core.
            if sh_flags & exec != exec || name.starts_with(".init") != init {
                continue;
            }
            let align = s.align().max(1);
            let offset = size.div_ceil(align).saturating_mul(align);
            size = offset.saturating_add(s.size());
            out.push(TextSection {
                index: s.index(),
                name: name.to_string(),
                size: s.size(),
                offset,
                init,
            });
        }
    }
    out
}

/// One probe record: what `do_init_module()` was given.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    module: u64,
    init: u64,
    exit: Option<u64>,
    words: Vec<u64>,
    name: String,
}

/// A memory region: its base and the size of its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Region {
    base: u64,
    text: u64,
}

impl Region {
    fn holds(&self, address: u64) -> bool {
        address >= self.base && address - self.base < self.text
    }
}

impl Record {
    /// Parses the probe's line in the instance's `trace`: `... init:
    /// (do_init_module+0x0/0x1f0) mod=0x... init=0x... [exit=0x...]
    /// mem={0x...,...} name="mydrv"`.
    fn parse(line: &str) -> Option<Self> {
        let field = |key: &str| {
            let at = line.find(&format!(" {key}="))? + key.len() + 2;
            Some(&line[at..])
        };
        let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
        let word = |key: &str| hex(field(key)?.split_whitespace().next()?);
        let words = field("mem")?
            .strip_prefix('{')?
            .split('}')
            .next()?
            .split(',')
            .map(hex)
            .collect::<Option<Vec<u64>>>()?;
        let name = field("name")?.strip_prefix('"')?.split('"').next()?;
        Some(Self {
            module: word("mod")?,
            init: word("init")?,
            exit: word("exit"),
            words,
            name: name.to_string(),
        })
    }

    /// The core and init text regions, from `struct module`'s memory
    /// regions as 6.4 on has them (`mem[MOD_TEXT]`, `mem[MOD_INIT_TEXT]`:
    /// base, size, then `mtn.mod`, 9 words each) or as 6.1 has them
    /// (`core_layout`, `init_layout`: base, size and text size, then
    /// `mtn.mod`, 10 words each); `None` when neither fits.
    fn regions(&self) -> Option<(Region, Region)> {
        let w = |i: usize| self.words.get(i).copied();
        let low = |x: u64| x & 0xffff_ffff;
        let shapes = [
            // (stride, init region, the text size's word and shift, mtn.mod)
            (9usize, 4usize, 1usize, 0u32, 2usize),
            (10, 1, 1, 32, 3),
        ];
        shapes
            .iter()
            .find_map(|&(stride, init, size, shift, owner)| {
                let region = |r: usize| {
                    let base = w(stride * r)?;
                    let text = low(w(stride * r + size)? >> shift);
                    (w(stride * r + owner)? == self.module && base != 0 && text != 0)
                        .then_some(Region { base, text })
                };
                let (core, init) = (region(0)?, region(init)?);
                (init.holds(self.init) || core.holds(self.init)).then_some((core, init))
            })
    }
}

/// Kernel-side state of a probe, for the undo step: its instance, its
/// event and the mount it made.
#[derive(Debug, Clone)]
struct Armed {
    root: PathBuf,
    instance: PathBuf,
    event: String,
    mounted: Option<PathBuf>,
}

impl Armed {
    /// Takes it all away again.
    fn remove(&self) -> Result<()> {
        let enable = self
            .instance
            .join("events")
            .join(&self.event)
            .join("enable");
        let _ = fs::write(enable, "0");
        let instance = fs::remove_dir(&self.instance)
            .with_context(|| format!("removing {}", self.instance.display()));
        let event = tracefs::kprobe_events(&self.root, &format!("-:{}", self.event));
        if let Some(m) = &self.mounted {
            tracefs::unmount(m)?;
        }
        instance.and(event)
    }
}

/// The probe, armed for one module until dropped.
#[derive(Debug)]
pub struct InitProbe {
    plan: Plan,
    armed: Armed,
    _noted: undo::Noted,
}

impl InitProbe {
    /// Arms the probe for `ko`; an error says why the kernel cannot take it
    /// (no tracefs, no kprobe events, not root).
    pub fn arm(ko: &Ko) -> Result<Self> {
        let plan = Plan::of(ko)?;
        let (root, mounted) = tracefs::mount()?;
        let unmount = |e: anyhow::Error| {
            if let Some(m) = &mounted {
                let _ = tracefs::unmount(m);
            }
            e
        };
        if !root.join("kprobe_events").exists() {
            return Err(unmount(anyhow::anyhow!(
                "the kernel has no kprobe events (CONFIG_KPROBE_EVENTS)"
            )));
        }
        let pid = std::process::id();
        let event = format!("leaklab_{pid}/init");
        let o = &plan.offsets;
        let mem = (o.init + 8).div_ceil(CACHE_LINE) * CACHE_LINE;
        let exit = o
            .exit
            .map(|e| format!(" exit=+{e}($arg1):x64"))
            .unwrap_or_default();
        let definition = format!(
            "p:{event} {PROBED} mod=$arg1:x64 init=+{}($arg1):x64{exit} mem=+{mem}($arg1):x64[{WORDS}] name=+{}($arg1):string",
            o.init, o.name
        );
        // A stale one of an earlier run with the same pid goes first.
        let _ = tracefs::kprobe_events(&root, &format!("-:{event}"));
        tracefs::kprobe_events(&root, &definition).map_err(unmount)?;
        let instance = root.join("instances").join(format!("leaklab-init-{pid}"));
        let armed = Armed {
            root,
            instance,
            event,
            mounted,
        };
        let undo = armed.clone();
        let noted = undo::note(
            format!("removed the probe {} and its instance", armed.event),
            move || undo.remove(),
        );
        let enabled = fs::create_dir(&armed.instance)
            .with_context(|| format!("creating {}", armed.instance.display()))
            .and_then(|()| {
                let event = armed.instance.join("events").join(&armed.event);
                tracefs::write(&event.join("enable"), "1")
            });
        if let Err(e) = enabled {
            let _ = armed.remove();
            return Err(e);
        }
        Ok(Self {
            plan,
            armed,
            _noted: noted,
        })
    }

    /// Where `ko` was loaded in its last load since the previous call, by
    /// the probe's records (which it then clears); `Ok(None)` when its init
    /// did not run.
    pub fn take(&self, ko: &Ko) -> Result<Option<ModuleLayout>> {
        let trace = self.armed.instance.join("trace");
        let text =
            fs::read_to_string(&trace).with_context(|| format!("reading {}", trace.display()))?;
        // Truncating the file clears the instance's buffer.
        fs::write(&trace, "").with_context(|| format!("clearing {}", trace.display()))?;
        let Some(record) = text
            .lines()
            .rev()
            .filter_map(Record::parse)
            .find(|r| r.name == ko.name())
        else {
            return Ok(None);
        };
        self.layout(ko, &record).map(Some)
    }

    /// The executable sections' addresses in the load `record` saw.
    fn layout(&self, ko: &Ko, record: &Record) -> Result<ModuleLayout> {
        layout(&self.plan, ko.name(), record)
    }
}

impl Drop for InitProbe {
    fn drop(&mut self) {
        if let Err(e) = self.armed.remove() {
            eprintln!("leaklab: {e:#}");
        }
    }
}

/// The executable sections' addresses of module `name` in the load
/// `record` saw, by `plan`: each section at its region's base plus its
/// offset there. The init and exit functions' addresses check the
/// offsets: where one disagrees (an arch grew a section of its own at
/// load), its section is placed by the function alone and the others of
/// that region are left out.
fn layout(plan: &Plan, name: &str, record: &Record) -> Result<ModuleLayout> {
    let Some((core, init)) = record.regions() else {
        bail!(
            "{PROBED}'s struct module of {name} is not laid out as leaklab knows (6.1 to 6.12): its init text cannot be told"
        );
    };
    let region = |t: &TextSection| if t.init { init } else { core };
    let mut exact: Vec<(object::SectionIndex, u64)> = Vec::new();
    let mut untrusted = Vec::new();
    for (function, address) in [
        (plan.init_fn, Some(record.init)),
        (plan.exit_fn, record.exit),
    ] {
        let (Some(f), Some(address)) = (function, address) else {
            continue;
        };
        let Some(t) = plan.text.iter().find(|t| t.index == f.section) else {
            continue;
        };
        let base = address.wrapping_sub(f.value);
        if base != region(t).base + t.offset {
            exact.push((t.index, base));
            untrusted.push(t.init);
        }
    }
    let mut sections: Vec<Section> = plan
        .text
        .iter()
        .filter(|t| t.size != 0)
        .filter_map(|t| {
            let address = match exact.iter().find(|(i, _)| *i == t.index) {
                Some(&(_, base)) => base,
                None if untrusted.contains(&t.init) => return None,
                None => region(t).base + t.offset,
            };
            Some(Section {
                name: t.name.clone(),
                address,
                size: t.size,
            })
        })
        .collect();
    sections.sort_by_key(|s| s.address);
    Ok(ModuleLayout {
        name: name.to_string(),
        sections,
        loader: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words612(module: u64) -> String {
        // mem[0] text at 0xffffffffa0000000 (0x3000), mem[4] init text at
        // 0xffffffffa0010000 (0x1000); the others empty.
        let mut w = vec![0u64; WORDS];
        for (r, base, size) in [
            (0usize, 0xffff_ffff_a000_0000u64, 0x3000u64),
            (4, 0xffff_ffff_a001_0000, 0x1000),
        ] {
            w[9 * r] = base;
            w[9 * r + 1] = size;
            w[9 * r + 2] = module;
        }
        let w: Vec<String> = w.iter().map(|x| format!("{x:#x}")).collect();
        format!("{{{}}}", w.join(","))
    }

    const MODULE: u64 = 0xffff_ffff_a000_8040;

    fn line(words: &str) -> String {
        format!(
            "        leaklab-57      [000] .....    12.500000: init: (do_init_module+0x0/0x230) mod={MODULE:#x} init=0xffffffffa0010000 exit=0xffffffffa0000400 mem={words} name=\"leaky_driver\""
        )
    }

    #[test]
    fn a_record_reads_back_with_its_regions_as_6_12_lays_them() {
        let r = Record::parse(&line(&words612(MODULE))).expect("parses");
        assert_eq!(r.name, "leaky_driver");
        assert_eq!(r.module, MODULE);
        assert_eq!(r.exit, Some(0xffff_ffff_a000_0400));
        assert_eq!(r.words.len(), WORDS);
        let (core, init) = r.regions().expect("6.12's shape");
        assert_eq!(core.base, 0xffff_ffff_a000_0000);
        assert_eq!(core.text, 0x3000);
        assert_eq!(init.base, 0xffff_ffff_a001_0000);
    }

    #[test]
    fn regions_that_do_not_point_back_at_the_module_are_not_taken() {
        let r = Record::parse(&line(&words612(MODULE + 8))).expect("parses");
        assert_eq!(r.regions(), None);
    }

    #[test]
    fn a_6_1_record_has_its_text_size_in_the_high_half() {
        // core_layout: base, size | text_size << 32, ro sizes, mtn.mod.
        let mut w = vec![0u64; WORDS];
        w[0] = 0xffff_ffff_c000_0000;
        w[1] = 0x5000 | (0x2000 << 32);
        w[3] = MODULE;
        w[10] = 0xffff_ffff_c001_0000;
        w[11] = 0x1800 | (0x1000 << 32);
        w[13] = MODULE;
        let w: Vec<String> = w.iter().map(|x| format!("{x:#x}")).collect();
        let text = line(&format!("{{{}}}", w.join(",")))
            .replace("init=0xffffffffa0010000", "init=0xffffffffc0010010");
        let r = Record::parse(&text).unwrap();
        let (core, init) = r.regions().expect("6.1's shape");
        assert_eq!((core.base, core.text), (0xffff_ffff_c000_0000, 0x2000));
        assert_eq!((init.base, init.text), (0xffff_ffff_c001_0000, 0x1000));
    }

    #[test]
    fn other_lines_are_not_records() {
        assert_eq!(Record::parse("# tracer: nop"), None);
        assert_eq!(Record::parse(""), None);
    }
}
