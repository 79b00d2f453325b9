// SPDX-License-Identifier: GPL-2.0
//! A module's object file, and where the loaded module sits in kernel
//! memory.
//!
//! After `rmmod`, kmemleak prints the frames that were inside the module as
//! bare addresses. To say which module they belonged to, the section
//! addresses are recorded from `/sys/module/<name>/sections/` while the module
//! is loaded and paired with the section sizes from its `.ko` file.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use object::{Object, ObjectSection, SectionFlags};
use serde::{Deserialize, Serialize};

/// A kernel module's object file, read from disk once: the load check, the
/// section layout and the symbolizer all take it from here.
pub struct Ko {
    path: PathBuf,
    data: std::sync::Arc<[u8]>,
    name: String,
    vermagic: Option<String>,
    architecture: object::Architecture,
    /// The allocated sections and their sizes.
    sections: Vec<(String, u64)>,
}

impl std::fmt::Debug for Ko {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ko")
            .field("path", &self.path)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Ko {
    /// Reads and parses the module file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        Self::read(path, None)
    }

    /// Reads a module's separate debug file (`objcopy --only-keep-debug`,
    /// as Debian's `-dbg` packages ship them): its sections keep their
    /// sizes but no bytes, so its `.modinfo` names nothing; `name` is the
    /// module's.
    pub fn open_debug(path: &Path, name: &str) -> Result<Self> {
        Self::read(path, Some(name))
    }

    fn read(path: &Path, name: Option<&str>) -> Result<Self> {
        let data = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let file = object::File::parse(&*data)
            .with_context(|| format!("{} is not an ELF object", path.display()))?;
        let name = match name {
            Some(n) => n.to_string(),
            None => modinfo_of(&file, "name")?.with_context(|| {
                format!(
                    "{} has no module name in .modinfo: not a kernel module",
                    path.display()
                )
            })?,
        };
        let vermagic = modinfo_of(&file, "vermagic")?;
        let architecture = file.architecture();
        let sections = file
            .sections()
            .filter(|s| matches!(s.flags(), SectionFlags::Elf { sh_flags } if sh_flags & u64::from(object::elf::SHF_ALLOC) != 0))
            .filter_map(|s| Some((s.name().ok()?.to_string(), s.size())))
            .collect();
        drop(file);
        Ok(Self {
            path: path.to_path_buf(),
            data: data.into(),
            name,
            vermagic,
            architecture,
            sections,
        })
    }

    /// Where it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The module's name (`.modinfo`'s `name`), as in `/sys/module`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its `.modinfo` vermagic, when it has one.
    pub fn vermagic(&self) -> Option<&str> {
        self.vermagic.as_deref()
    }

    /// The architecture it was built for.
    pub fn architecture(&self) -> object::Architecture {
        self.architecture
    }

    /// The allocated sections' names and sizes.
    pub fn section_sizes(&self) -> &[(String, u64)] {
        &self.sections
    }

    /// The file's bytes, shared (for a thread that reads them later).
    pub fn bytes(&self) -> std::sync::Arc<[u8]> {
        self.data.clone()
    }

    /// The object file's contents, for the symbolizer.
    pub fn object(&self) -> Result<object::File<'_>> {
        object::File::parse(&*self.data)
            .with_context(|| format!("{} is not an ELF object", self.path.display()))
    }
}

/// One allocated section of a loaded module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    /// Section name, e.g. `.text` or `.init.text`.
    pub name: String,
    /// Load address in the kernel.
    pub address: u64,
    /// Size in bytes, from the `.ko`.
    pub size: u64,
}

/// The recorded layout of one loaded module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleLayout {
    /// The module's name.
    pub name: String,
    /// Its allocated sections.
    pub sections: Vec<Section>,
    /// The thread that loaded it, when known: kmemleak's `pid` of an object
    /// its init allocated. Init sections are freed after init and reused by
    /// the next module, so this tells whose init a frame there was.
    #[serde(default)]
    pub loader: Option<u32>,
}

impl ModuleLayout {
    /// Records the layout of the loaded module `ko`.
    pub fn record(ko: &Ko) -> Result<Self> {
        let name = ko.name();
        let dir = Path::new("/sys/module").join(name).join("sections");
        let sizes = &ko.sections;
        let mut sections = Vec::new();
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            let sname = entry.file_name().to_string_lossy().into_owned();
            let Some(&size) = sizes.iter().find(|(n, _)| *n == sname).map(|(_, s)| s) else {
                continue;
            };
            let text = fs::read_to_string(entry.path())?;
            let address = u64::from_str_radix(text.trim().trim_start_matches("0x"), 16)
                .with_context(|| format!("section address {:?} of {name}", text.trim()))?;
            if address != 0 && size != 0 {
                sections.push(Section {
                    name: sname,
                    address,
                    size,
                });
            }
        }
        anyhow::ensure!(
            !sections.is_empty(),
            "no section addresses for module {name} in {} (not root, or kptr_restrict hides them)",
            dir.display()
        );
        sections.sort_by_key(|s| s.address);
        Ok(Self {
            name: name.to_string(),
            sections,
            loader: None,
        })
    }

    /// `ko` as if loaded, for reading its own file: each allocated section
    /// at a base of its own, 4 GiB apart, so that its symbols and DWARF
    /// resolve by section and offset with no kernel involved.
    pub fn placed(ko: &Ko) -> Self {
        const BASE: u64 = 0xffff_8000_0000_0000;
        let sections = ko
            .section_sizes()
            .iter()
            .zip(0u64..)
            .filter(|((_, size), _)| *size != 0)
            .map(|((name, size), i)| Section {
                name: name.clone(),
                address: BASE + (i << 32),
                size: *size,
            })
            .collect();
        Self {
            name: ko.name().to_string(),
            sections,
            loader: None,
        }
    }

    /// Returns the section that holds `address`, if any.
    pub fn section_of(&self, address: u64) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| address >= s.address && address - s.address < s.size)
    }
}

/// Reads the `.modinfo` key `key` (e.g. `name`, `vermagic`) of a parsed
/// object file.
fn modinfo_of(file: &object::File<'_>, key: &str) -> Result<Option<String>> {
    let Some(section) = file.section_by_name(".modinfo") else {
        return Ok(None);
    };
    let bytes = section.data()?;
    let prefix = format!("{key}=");
    Ok(bytes
        .split(|&b| b == 0)
        .filter_map(|entry| std::str::from_utf8(entry).ok())
        .find_map(|entry| entry.strip_prefix(prefix.as_str()).map(str::to_string)))
}
