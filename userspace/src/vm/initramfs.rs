//! Writing the guest's initramfs: a newc cpio archive with `leaklab` as
//! `/init`, the modules under `/lib/modules`, and the empty directories and
//! `/dev/console` that PID 1 needs before it mounts anything.

use std::{
    fs::{self, File},
    io::{BufWriter, Cursor, Write},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use cpio::newc::{trailer, Builder};

/// Where the modules are in the guest.
pub const MODULE_DIR: &str = "/lib/modules";

/// What goes into an initramfs.
#[derive(Debug, Clone)]
pub struct Contents {
    /// The static binary that becomes `/init`.
    pub init: PathBuf,
    /// Files placed under [`MODULE_DIR`] by their file name.
    pub modules: Vec<PathBuf>,
}

/// Writes the initramfs for `contents` to `out`.
pub fn write(contents: &Contents, out: &Path) -> Result<()> {
    let file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = BufWriter::new(file);
    let mut ino = 1;
    let mut entry = |w: &mut BufWriter<File>,
                     name: &str,
                     mode: u32,
                     data: &[u8],
                     rdev: Option<(u32, u32)>|
     -> Result<()> {
        let mut b = Builder::new(name).ino(ino).mode(mode).nlink(1);
        if let Some((major, minor)) = rdev {
            b = b.rdev_major(major).rdev_minor(minor);
        }
        ino += 1;
        let len = u32::try_from(data.len()).context("file too large for cpio")?;
        let mut fw = b.write(&mut *w, len);
        std::io::copy(&mut Cursor::new(data), &mut fw)?;
        fw.finish()?;
        Ok(())
    };
    for dir in ["dev", "proc", "sys", "tmp", "lib", "lib/modules"] {
        entry(&mut w, dir, 0o040755, &[], None)?;
    }
    entry(&mut w, "dev/console", 0o020600, &[], Some((5, 1)))?;
    let init =
        fs::read(&contents.init).with_context(|| format!("reading {}", contents.init.display()))?;
    entry(&mut w, "init", 0o100755, &init, None)?;
    for m in &contents.modules {
        let data = fs::read(m).with_context(|| format!("reading {}", m.display()))?;
        let name = m
            .file_name()
            .with_context(|| format!("{} has no file name", m.display()))?
            .to_string_lossy();
        entry(
            &mut w,
            &format!("lib/modules/{name}"),
            0o100644,
            &data,
            None,
        )?;
    }
    trailer(&mut w)?;
    w.flush()?;
    Ok(())
}

/// The `.ko` files in `dir`, sorted by name.
pub fn modules_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ko"))
        .collect();
    v.sort();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpio::NewcReader;

    #[test]
    fn archive_holds_init_modules_and_console() {
        let dir = std::env::temp_dir().join(format!("leaklab-initramfs-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let init = dir.join("leaklab");
        let ko = dir.join("leaklab.ko");
        fs::write(&init, b"\x7fELF-init").unwrap();
        fs::write(&ko, b"module bytes").unwrap();
        let out = dir.join("initramfs.cpio");
        write(
            &Contents {
                init,
                modules: vec![ko],
            },
            &out,
        )
        .unwrap();

        let mut r = fs::File::open(&out).unwrap();
        let mut seen = Vec::new();
        loop {
            let entry = NewcReader::new(r).unwrap();
            if entry.entry().is_trailer() {
                break;
            }
            let (name, mode, rdev) = (
                entry.entry().name().to_string(),
                entry.entry().mode(),
                (entry.entry().rdev_major(), entry.entry().rdev_minor()),
            );
            let mut data = Vec::new();
            let mut entry = entry;
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            seen.push((name, mode, rdev, data));
            r = entry.finish().unwrap();
        }
        let find = |n: &str| {
            seen.iter()
                .find(|e| e.0 == n)
                .unwrap_or_else(|| panic!("{n} missing"))
        };
        assert_eq!(find("init").1, 0o100755);
        assert_eq!(find("init").3, b"\x7fELF-init");
        assert_eq!(find("lib/modules/leaklab.ko").3, b"module bytes");
        assert_eq!(find("dev/console").2, (5, 1));
        assert_eq!(find("dev/console").1 & 0o170000, 0o020000);
        fs::remove_dir_all(&dir).unwrap();
    }
}
