// SPDX-License-Identifier: GPL-2.0
//! The tool's layers, checked on its sources: each top-level module uses
//! only the layers below it, `vm` uses none, and no two modules of the
//! tool import each other, directly or round a circle: no two layers, no
//! two modules of a directory, no module and its parent.
//!
//! ```text
//! cli -> commands -> pipeline -> report -> analysis -> kmemleak -> kernel
//!                                      -> trace -> kmemleak, kernel
//!                                      -> ko, output
//!                 -> vm
//! analysis -> ko
//! ```

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// What each layer may use.
const ALLOWED: &[(&str, &[&str])] = &[
    (
        "cli",
        &["commands", "pipeline", "output", "ko", "vm", "kernel"],
    ),
    (
        "commands",
        &[
            "pipeline", "report", "analysis", "kmemleak", "trace", "ko", "kernel", "output", "vm",
        ],
    ),
    (
        "report",
        &["analysis", "kmemleak", "trace", "ko", "kernel", "output"],
    ),
    (
        "pipeline",
        &[
            "report", "analysis", "kmemleak", "trace", "ko", "kernel", "output",
        ],
    ),
    ("analysis", &["kmemleak", "kernel", "ko"]),
    ("kmemleak", &["kernel"]),
    ("trace", &["kmemleak", "kernel"]),
    ("kernel", &[]),
    ("ko", &[]),
    ("output", &[]),
    ("vm", &[]),
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a source file: `commands/cycle/steps.rs` ->
/// `["commands", "cycle", "steps"]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    parts
}

/// Every path a file names with `crate::`, groups (`crate::{a, b::{c, d}}`)
/// expanded, each cut to its first two segments (`a`, `b::c`, `b::d`).
fn crate_paths(text: &str) -> BTreeSet<Vec<String>> {
    paths_in(text, "crate::", &[], 2)
}

/// A file's code without its inline test module.
fn without_tests(text: &str) -> &str {
    text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text)
}

/// The paths a file of module `module` names, through `crate::` or, outside
/// its inline test module, `super::`.
fn file_paths(text: &str, module: &[String]) -> BTreeSet<Vec<String>> {
    let mut out = crate_paths(text);
    let parent = &module[..module.len().saturating_sub(1)];
    out.extend(paths_in(without_tests(text), "super::", parent, 2));
    out
}

/// The whole paths the code of module `module` (its inline tests left out)
/// names: through `crate::`, `super::`, `super::super::`, `self::`, or a child module it
/// declares (`mod round;` then `round::Watch`).
fn deep_paths(text: &str, module: &[String]) -> BTreeSet<Vec<String>> {
    let body = without_tests(text);
    let parent = &module[..module.len().saturating_sub(1)];
    let mut out = paths_in(body, "crate::", &[], usize::MAX);
    out.extend(paths_in(body, "super::", parent, usize::MAX));
    let grandparent = &module[..module.len().saturating_sub(2)];
    out.extend(paths_in(body, "super::super::", grandparent, usize::MAX));
    out.extend(paths_in(body, "self::", module, usize::MAX));
    for line in body.lines() {
        let decl = line.trim_start();
        let decl = decl.strip_prefix("pub ").unwrap_or(decl);
        let decl = decl.strip_prefix("pub(crate) ").unwrap_or(decl);
        let decl = decl.strip_prefix("pub(super) ").unwrap_or(decl);
        let Some(child) = decl.strip_prefix("mod ").and_then(|d| d.strip_suffix(';')) else {
            continue;
        };
        let mut under = module.to_vec();
        under.push(child.to_string());
        out.extend(paths_in(body, &format!("{child}::"), &under, usize::MAX));
    }
    out
}

/// The paths after each `root` in `text` (comments left out), under
/// `prefix`, at most `max` segments long.
fn paths_in(text: &str, root: &str, prefix: &[String], max: usize) -> BTreeSet<Vec<String>> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find(root) {
        // Not the tail of a longer name (`my_crate::`, `a::root::`).
        let whole = code.len() - rest.len() + i == 0
            || !rest[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':');
        rest = &rest[i + root.len()..];
        if whole {
            expand(prefix, rest, max, &mut out);
        }
    }
    out.retain(|p| !p.is_empty());
    out
}

/// Adds the paths of the use tree at the start of `tree` under `prefix`,
/// at most `max` segments long.
fn expand(prefix: &[String], tree: &str, max: usize, out: &mut BTreeSet<Vec<String>>) {
    let tree = tree.trim_start();
    if let Some(group) = tree.strip_prefix('{') {
        let (mut depth, mut start) = (0, 0);
        for (j, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    expand(prefix, &group[start..j], max, out);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(prefix, &group[start..j], max, out);
                    start = j + 1;
                }
                _ => {}
            }
        }
        return;
    }
    // What a trailing comma leaves in a group.
    if tree.is_empty() || tree.starts_with('}') {
        return;
    }
    let name: String = tree
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    // Modules are lower case; a type, a constant or `self` ends the path.
    if name.is_empty() || !name.starts_with(|c: char| c.is_lowercase()) || name == "self" {
        out.insert(prefix.to_vec());
        return;
    }
    let mut path = prefix.to_vec();
    path.push(name.clone());
    match tree[name.len()..].strip_prefix("::") {
        Some(more) if path.len() < max => expand(&path, more, max, out),
        _ => {
            out.insert(path);
        }
    }
}

#[test]
fn each_layer_uses_only_the_layers_below_it() {
    let src = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"));
    let mut files = Vec::new();
    sources(src, &mut files);
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    for f in &files {
        let module = module_of(src, f);
        let Some(layer) = module.first().filter(|l| allowed.contains_key(l.as_str())) else {
            continue;
        };
        for path in file_paths(&fs::read_to_string(f).unwrap(), &module) {
            let used = &path[0];
            if used != layer && !allowed[layer.as_str()].contains(&used.as_str()) {
                wrong.push(format!("{} uses crate::{}", f.display(), path.join("::")));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
    // Every layer is there: a renamed directory must be named here too.
    for (layer, _) in ALLOWED {
        assert!(
            src.join(layer).is_dir() || src.join(format!("{layer}.rs")).is_file(),
            "no layer {layer} in {}",
            src.display()
        );
    }
}

#[test]
fn no_module_imports_round_a_circle() {
    let src = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"));
    let mut files = Vec::new();
    sources(src, &mut files);
    // Every module (a file), and the modules each one's code names: a path
    // is the longest module it starts with.
    let modules: BTreeMap<Vec<String>, &PathBuf> = files
        .iter()
        .map(|f| (module_of(src, f), f))
        .filter(|(m, _)| !m.is_empty() && m[0] != "lib" && m[0] != "main")
        .filter(|(m, _)| m.last().is_some_and(|l| l != "tests"))
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, f) in &modules {
        let from = module.join("::");
        for path in deep_paths(&fs::read_to_string(f).unwrap(), module) {
            let Some(to) = (1..=path.len())
                .rev()
                .map(|n| &path[..n])
                .find(|p| modules.contains_key(*p))
            else {
                continue;
            };
            let to = to.join("::");
            if to != from {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(1) => {
                let at = stack.iter().position(|s| s == n).unwrap();
                let mut circle = stack[at..].to_vec();
                circle.push(n.to_string());
                return Some(circle);
            }
            Some(_) => return None,
            None => {}
        }
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if let Some(circle) = visit(n, &edges, &mut state, &mut Vec::new()) {
            panic!("import circle: {}", circle.join(" -> "));
        }
    }
    assert!(
        edges.len() > 40,
        "the check found too few modules: {edges:?}"
    );
}

#[test]
fn the_checker_sees_a_parent_and_its_child_import_each_other() {
    let module = |m: &str| m.split("::").map(String::from).collect::<Vec<_>>();
    let parent = deep_paths(
        "mod round;\nmod view;\nuse round::Watch;\nfn f() { view::show(); }\n#[cfg(test)]\nmod tests { use crate::ko::X; }",
        &module("commands::watch"),
    );
    let names: Vec<String> = parent.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        names,
        ["commands::watch::round", "commands::watch::view::show"]
    );
    let child = deep_paths(
        "use super::{\n    log::EventLog,\n    Options,\n};\nuse crate::kernel::kmsg::KmsgWatch;",
        &module("commands::watch::round"),
    );
    let names: Vec<String> = child.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        names,
        ["commands::watch", "commands::watch::log", "kernel::kmsg"]
    );
}

#[test]
fn the_checker_sees_grouped_and_nested_imports() {
    let paths = crate_paths(
        "use crate::{\n    analysis::{attribute::attribute, findings},\n    kernel::kmod, // crate::vm\n};\nlet x = crate::ko::MAX_RUNS;",
    );
    let names: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        names,
        [
            "analysis::attribute",
            "analysis::findings",
            "kernel::kmod",
            "ko"
        ]
    );
}

/// The commands a file of command `command` (`commands/<command>...`)
/// names besides its own: `commands/mod.rs`'s shared items are not a
/// command.
fn other_commands(text: &str, module: &[String], commands: &BTreeSet<String>) -> Vec<String> {
    deep_paths(text, module)
        .into_iter()
        .filter(|p| p.len() >= 2 && p[0] == "commands" && p[1] != module[1])
        .map(|p| p[1].clone())
        .filter(|c| commands.contains(c))
        .collect()
}

#[test]
fn no_command_imports_another() {
    let src = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"));
    let mut files = Vec::new();
    sources(&src.join("commands"), &mut files);
    let commands: BTreeSet<String> = files
        .iter()
        .map(|f| module_of(src, f))
        .filter(|m| m.len() >= 2)
        .map(|m| m[1].clone())
        .collect();
    let mut wrong = Vec::new();
    for f in &files {
        let module = module_of(src, f);
        if module.len() < 2 {
            continue;
        }
        for other in other_commands(&fs::read_to_string(f).unwrap(), &module, &commands) {
            wrong.push(format!("{} uses command {other}", f.display()));
        }
    }
    assert!(
        wrong.is_empty(),
        "commands importing commands (share it from a layer below):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_command_checker_sees_a_command_importing_another() {
    let commands: BTreeSet<String> = ["check", "show", "watch"].map(String::from).into();
    let module = ["commands", "show"].map(String::from);
    let text =
        "use super::{check::Check, watch::view::WatchDir};\nuse crate::commands::ModuleArg;\n";
    assert_eq!(other_commands(text, &module, &commands), ["check", "watch"]);
    let nested = ["commands", "show", "render"].map(String::from);
    assert_eq!(
        other_commands("use super::super::check::Check;\n", &nested, &commands),
        ["check"]
    );
}
