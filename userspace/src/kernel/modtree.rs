// SPDX-License-Identifier: GPL-2.0
//! A kernel's module tree (`lib/modules/RELEASE`): its modules in
//! `modules.order`'s order, each with the modules it needs
//! (`modules.dep`), and the ones built into the kernel
//! (`modules.builtin`), as `modprobe` reads them.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

/// One module of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeModule {
    /// Its name, as the kernel calls it (`snd_pcm` for `snd-pcm.ko`).
    pub name: String,
    /// Its file, relative to the tree (`kernel/sound/core/snd-pcm.ko`).
    pub path: String,
    /// The modules it needs, relative to the tree, in the order `modprobe`
    /// loads them (the first first).
    pub deps: Vec<String>,
}

/// A module tree read from its directory.
#[derive(Debug, Clone)]
pub struct ModTree {
    /// The directory (`/lib/modules/6.12.118+deb12-amd64`).
    pub dir: PathBuf,
    /// Every module `modules.dep` lists, in `modules.order`'s order (the
    /// ones it lacks after, by path).
    pub modules: Vec<TreeModule>,
    /// The names of the modules built into the kernel.
    pub builtin: Vec<String>,
}

/// The name the kernel gives the module in file `path`: the file name
/// without `.ko` (and a compression suffix), `-` read as `_`.
pub fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = [".ko.xz", ".ko.zst", ".ko.gz", ".ko"]
        .iter()
        .find_map(|s| file.strip_suffix(s))
        .unwrap_or(file);
    stem.replace('-', "_")
}

impl ModTree {
    /// Reads the tree in `dir` (its `modules.dep`, and `modules.order` and
    /// `modules.builtin` where there are some).
    pub fn read(dir: &Path) -> Result<Self> {
        let read = |file: &str| fs::read_to_string(dir.join(file));
        let dep = read("modules.dep").with_context(|| {
            format!(
                "reading {}: not a module tree (run depmod -b for one unpacked by hand)",
                dir.join("modules.dep").display()
            )
        })?;
        let order = read("modules.order").unwrap_or_default();
        let builtin = read("modules.builtin").unwrap_or_default();
        Ok(Self::parse(dir, &dep, &order, &builtin))
    }

    /// The tree from the texts of its `modules.dep`, `modules.order` and
    /// `modules.builtin`.
    pub fn parse(dir: &Path, dep: &str, order: &str, builtin: &str) -> Self {
        let mut listed: BTreeMap<String, TreeModule> = BTreeMap::new();
        for line in dep.lines() {
            let Some((path, deps)) = line.split_once(':') else {
                continue;
            };
            let path = path.trim();
            // depmod lists a module's needs with the one loaded last first.
            let mut deps: Vec<String> = deps.split_whitespace().map(str::to_string).collect();
            deps.reverse();
            listed.insert(
                path.to_string(),
                TreeModule {
                    name: module_name(path),
                    path: path.to_string(),
                    deps,
                },
            );
        }
        let mut modules = Vec::new();
        for path in order.lines().map(str::trim) {
            // The order names a module as built (`.ko`); the tree may hold
            // it compressed.
            let found = [
                path.to_string(),
                format!("{path}.xz"),
                format!("{path}.zst"),
            ]
            .into_iter()
            .find_map(|p| listed.remove(&p));
            modules.extend(found);
        }
        modules.extend(listed.into_values());
        let builtin = builtin
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(module_name)
            .collect();
        Self {
            dir: dir.to_path_buf(),
            modules,
            builtin,
        }
    }

    /// The modules whose name or path matches one of the shell patterns
    /// `patterns` (`snd_*`, `kernel/crypto/*`; all of them when there is
    /// none), in the tree's order.
    pub fn select(&self, patterns: &[String]) -> Result<Vec<&TreeModule>> {
        let globs = patterns
            .iter()
            .map(|p| {
                glob::Pattern::new(p).with_context(|| {
                    format!("{p:?} is not a pattern: use *, ? and [...] as a shell does")
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(self
            .modules
            .iter()
            .filter(|m| {
                globs.is_empty()
                    || globs
                        .iter()
                        .any(|g| g.matches(&m.name) || g.matches(&m.path))
            })
            .collect())
    }

    /// Whether the module `name` is built into the kernel.
    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.iter().any(|b| b == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/sound/core/snd-pcm.ko.xz: kernel/sound/core/snd-timer.ko.xz kernel/sound/core/snd.ko.xz kernel/sound/soundcore.ko.xz
kernel/sound/core/snd.ko.xz: kernel/sound/soundcore.ko.xz
kernel/sound/soundcore.ko.xz:
kernel/sound/core/snd-timer.ko.xz: kernel/sound/core/snd.ko.xz kernel/sound/soundcore.ko.xz
kernel/crypto/md4.ko.xz:
";
    const ORDER: &str = "\
kernel/crypto/md4.ko
kernel/sound/soundcore.ko
kernel/sound/core/snd.ko
kernel/sound/core/snd-pcm.ko
";

    fn tree() -> ModTree {
        ModTree::parse(Path::new("/m"), DEP, ORDER, "kernel/fs/ext4/ext4.ko\n")
    }

    #[test]
    fn names_follow_the_kernels() {
        assert_eq!(module_name("kernel/sound/core/snd-pcm.ko.xz"), "snd_pcm");
        assert_eq!(module_name("kernel/crypto/md4.ko"), "md4");
        assert_eq!(module_name("x.ko.zst"), "x");
    }

    #[test]
    fn modules_come_in_order_with_their_needs_first_to_load_first() {
        let t = tree();
        let names: Vec<&str> = t.modules.iter().map(|m| m.name.as_str()).collect();
        // snd_timer is not in the order: it comes after, by path.
        assert_eq!(names, ["md4", "soundcore", "snd", "snd_pcm", "snd_timer"]);
        let pcm = t.modules.iter().find(|m| m.name == "snd_pcm").unwrap();
        assert_eq!(
            pcm.deps,
            [
                "kernel/sound/soundcore.ko.xz",
                "kernel/sound/core/snd.ko.xz",
                "kernel/sound/core/snd-timer.ko.xz"
            ]
        );
        assert!(t.is_builtin("ext4"));
        assert!(!t.is_builtin("md4"));
    }

    #[test]
    fn patterns_match_names_or_paths() {
        let t = tree();
        let names = |p: &[&str]| -> Vec<String> {
            let p: Vec<String> = p.iter().map(|s| s.to_string()).collect();
            t.select(&p)
                .unwrap()
                .iter()
                .map(|m| m.name.clone())
                .collect()
        };
        assert_eq!(names(&["snd_*"]), ["snd_pcm", "snd_timer"]);
        assert_eq!(names(&["kernel/crypto/*"]), ["md4"]);
        assert_eq!(names(&[]).len(), 5);
        assert!(names(&["nothing"]).is_empty());
        assert!(t.select(&["[".to_string()]).is_err());
    }
}
