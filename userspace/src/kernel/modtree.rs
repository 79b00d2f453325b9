// SPDX-License-Identifier: GPL-2.0
//! A kernel's module tree (`lib/modules/RELEASE`): its modules in
//! `modules.order`'s order, each with the modules it needs
//! (`modules.dep`) and those it asks to have loaded before it
//! (`modules.softdep`'s `pre:`, through `modules.alias`), and the ones
//! built into the kernel (`modules.builtin`), as `modprobe` reads them.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
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
    /// loads them (the first first): its own and its needs' soft
    /// dependencies (`pre:`) each before the module that asks for it.
    pub deps: Vec<String>,
    /// Those of `deps` that are there only as soft dependencies: `modprobe`
    /// loads them if it can and goes on if it cannot.
    pub soft: BTreeSet<String>,
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
        let softdep = read("modules.softdep").unwrap_or_default();
        let alias = read("modules.alias").unwrap_or_default();
        Ok(Self::parse(dir, &dep, &order, &builtin).with_softdeps(&softdep, &alias))
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
                    soft: BTreeSet::new(),
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

    /// The tree with each module's soft dependencies (the `pre:` names of
    /// `modules.softdep`'s text `softdep`, each a module's name or an
    /// alias of one or more in `modules.alias`'s text `alias`) in its
    /// `deps`, before the module that asks for them, each with what it
    /// needs itself; `post:` names, loaded after, are left out (a sweep
    /// judges the module before them). libcrc32c's `pre: crc32c` is why
    /// 129 of Debian 6.12's modules did not load without it.
    pub fn with_softdeps(mut self, softdep: &str, alias: &str) -> Self {
        let soft = Softdeps::new(softdep, alias, &self.modules);
        if soft.pre.is_empty() {
            return self;
        }
        let orders: Vec<LoadOrder> = self.modules.iter().map(|m| soft.order(m)).collect();
        for (m, order) in self.modules.iter_mut().zip(orders) {
            m.soft = order
                .list
                .iter()
                .filter(|(_, soft)| *soft)
                .map(|(p, _)| p.clone())
                .collect();
            m.deps = order.list.into_iter().map(|(p, _)| p).collect();
        }
        self
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

/// What `modules.softdep` and `modules.alias` say, for a tree's modules.
struct Softdeps<'a> {
    /// By module name: the names its `pre:` lists.
    pre: HashMap<String, Vec<&'a str>>,
    /// By alias: the names of the modules that have it.
    aliases: HashMap<&'a str, Vec<&'a str>>,
    /// By module name: the module.
    by_name: HashMap<&'a str, &'a TreeModule>,
}

/// How deep soft dependencies of soft dependencies are followed.
const SOFT_DEPTH: usize = 8;

impl<'a> Softdeps<'a> {
    fn new(softdep: &'a str, alias: &'a str, modules: &'a [TreeModule]) -> Self {
        let mut pre: HashMap<String, Vec<&str>> = HashMap::new();
        for line in softdep.lines() {
            let mut words = line.split_whitespace();
            let (Some("softdep"), Some(module)) = (words.next(), words.next()) else {
                continue;
            };
            // Names before any `pre:` or `post:` are not read by modprobe.
            let mut section = "";
            for w in words {
                match w {
                    "pre:" | "post:" => section = w,
                    _ if section == "pre:" => {
                        pre.entry(module.replace('-', "_")).or_default().push(w)
                    }
                    _ => {}
                }
            }
        }
        let mut aliases: HashMap<&str, Vec<&str>> = HashMap::new();
        for line in alias.lines() {
            if let ["alias", a, m] = line.split_whitespace().collect::<Vec<_>>()[..] {
                aliases.entry(a).or_default().push(m);
            }
        }
        let by_name = modules.iter().map(|m| (m.name.as_str(), m)).collect();
        Self {
            pre,
            aliases,
            by_name,
        }
    }

    /// The modules `name` stands for: the module of that name, else every
    /// module with that alias (as `modprobe NAME` loads them all).
    fn resolve(&self, name: &str) -> Vec<&'a TreeModule> {
        if let Some(m) = self.by_name.get(name.replace('-', "_").as_str()) {
            return vec![m];
        }
        self.aliases
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(|m| self.by_name.get(m.replace('-', "_").as_str()).copied())
            .collect()
    }

    /// Module `m`'s load order: each of its needs, and then itself, after
    /// the soft dependencies that one asks for.
    fn order(&self, m: &TreeModule) -> LoadOrder {
        let mut order = LoadOrder::default();
        for dep in &m.deps {
            self.before(dep, &mut order, 0);
            order.push(dep, false);
        }
        self.before(&m.path, &mut order, 0);
        order.list.retain(|(p, _)| *p != m.path);
        order
    }

    /// Adds the soft dependencies of the module at `path` to `order`, each
    /// after what it needs itself.
    fn before(&self, path: &str, order: &mut LoadOrder, depth: usize) {
        if depth == SOFT_DEPTH {
            return;
        }
        let Some(names) = self.pre.get(&module_name(path)) else {
            return;
        };
        for q in names.iter().flat_map(|n| self.resolve(n)) {
            if q.path == path || order.has(&q.path) {
                continue;
            }
            for d in &q.deps {
                self.before(d, order, depth + 1);
                order.push(d, true);
            }
            self.before(&q.path, order, depth + 1);
            order.push(&q.path, true);
        }
    }
}

/// Modules in the order they are loaded, each marked soft or not.
#[derive(Default)]
struct LoadOrder {
    list: Vec<(String, bool)>,
}

impl LoadOrder {
    fn has(&self, path: &str) -> bool {
        self.list.iter().any(|(p, _)| p == path)
    }

    /// Adds `path` unless it is there; a hard need listed as soft before
    /// becomes hard.
    fn push(&mut self, path: &str, soft: bool) {
        match self.list.iter_mut().find(|(p, _)| p == path) {
            Some(entry) => entry.1 &= soft,
            None => self.list.push((path.to_string(), soft)),
        }
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

    /// Debian 6.12's own lines (modules.dep, .softdep, .alias) for
    /// libcrc32c, which asks for `crc32c` before it, and nf_conntrack,
    /// which needs it; cifs's line has no `pre:` and asks for nothing.
    const CRC_DEP: &str = "\
kernel/lib/libcrc32c.ko.xz:
kernel/crypto/crc32c_generic.ko.xz:
kernel/arch/x86/crypto/crc32c-intel.ko.xz:
kernel/net/netfilter/nf_conntrack.ko.xz: kernel/net/netfilter/nf_defrag_ipv6.ko.xz kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko.xz kernel/lib/libcrc32c.ko.xz
kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko.xz:
kernel/net/netfilter/nf_defrag_ipv6.ko.xz:
kernel/fs/smb/client/cifs.ko.xz:
kernel/crypto/gcm.ko.xz:
kernel/a.ko.xz:
kernel/b.ko.xz:
";
    const SOFTDEP: &str = "\
# Soft dependencies extracted from modules themselves.
softdep cifs gcm
softdep libcrc32c pre: crc32c
softdep a pre: b post: gcm
softdep b pre: a
";
    const ALIAS: &str = "\
alias crypto-crc32c crc32c_intel
alias crc32c crc32c_intel
alias crypto-crc32c crc32c_generic
alias crc32c crc32c_generic
alias crypto-gcm gcm
";

    fn deps_of<'a>(t: &'a ModTree, name: &str) -> (&'a [String], Vec<&'a str>) {
        let m = t.modules.iter().find(|m| m.name == name).unwrap();
        (&m.deps, m.soft.iter().map(String::as_str).collect())
    }

    #[test]
    fn soft_dependencies_load_first_through_their_aliases_and_may_fail() {
        let t = ModTree::parse(Path::new("/m"), CRC_DEP, "", "").with_softdeps(SOFTDEP, ALIAS);
        let crc = [
            "kernel/arch/x86/crypto/crc32c-intel.ko.xz",
            "kernel/crypto/crc32c_generic.ko.xz",
        ];
        let (deps, soft) = deps_of(&t, "libcrc32c");
        assert_eq!(
            deps, crc,
            "every module with the alias, as modprobe loads them"
        );
        assert_eq!(soft, crc);
        let (deps, soft) = deps_of(&t, "nf_conntrack");
        assert_eq!(
            deps,
            [
                crc[0],
                crc[1],
                "kernel/lib/libcrc32c.ko.xz",
                "kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko.xz",
                "kernel/net/netfilter/nf_defrag_ipv6.ko.xz",
            ],
            "a need's soft dependencies come before that need"
        );
        assert_eq!(soft, crc, "libcrc32c itself is a hard need");
        assert!(deps_of(&t, "cifs").0.is_empty(), "no pre: asks for nothing");
        assert!(deps_of(&t, "crc32c_generic").0.is_empty());
        // Each asks for the other: each gets the other once, and not
        // itself; post: is not loaded before.
        assert_eq!(deps_of(&t, "a").0, ["kernel/b.ko.xz"]);
        assert_eq!(deps_of(&t, "b").0, ["kernel/a.ko.xz"]);
    }

    #[test]
    fn a_tree_without_soft_dependencies_is_as_modules_dep_says() {
        let plain = ModTree::parse(Path::new("/m"), CRC_DEP, "", "");
        let t = plain.clone().with_softdeps("", ALIAS);
        assert_eq!(t.modules, plain.modules);
        assert!(t.modules.iter().all(|m| m.soft.is_empty()));
    }
}
