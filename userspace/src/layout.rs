//! Where a loaded module sits in kernel memory.
//!
//! After `rmmod`, kmemleak prints the frames that were inside the module as
//! bare addresses. To say which module they belonged to, the section
//! addresses are recorded from `/sys/module/<name>/sections/` while the module
//! is loaded and paired with the section sizes from its `.ko` file.

use std::{fs, path::Path};

use anyhow::{Context, Result};
use object::{Object, ObjectSection, SectionFlags};
use serde::{Deserialize, Serialize};

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
    /// Records the layout of the loaded module `name`, whose object file is `ko`.
    pub fn record(name: &str, ko: &Path) -> Result<Self> {
        let dir = Path::new("/sys/module").join(name).join("sections");
        let sizes = section_sizes(ko)?;
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

    /// Returns the section that holds `address`, if any.
    pub fn section_of(&self, address: u64) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| address >= s.address && address - s.address < s.size)
    }
}

/// Reads the sizes of the allocated sections of an object file.
pub fn section_sizes(ko: &Path) -> Result<Vec<(String, u64)>> {
    let data = fs::read(ko).with_context(|| format!("reading {}", ko.display()))?;
    let file = object::File::parse(&*data)
        .with_context(|| format!("{} is not an ELF object", ko.display()))?;
    Ok(file
        .sections()
        .filter(|s| matches!(s.flags(), SectionFlags::Elf { sh_flags } if sh_flags & u64::from(object::elf::SHF_ALLOC) != 0))
        .filter_map(|s| Some((s.name().ok()?.to_string(), s.size())))
        .collect())
}

/// Reads the `.modinfo` key `key` (e.g. `name`, `vermagic`) of a parsed
/// object file.
pub fn modinfo_of(file: &object::File<'_>, key: &str) -> Result<Option<String>> {
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
