#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Completes and checks the rust-project.json that the kernel wrote for leaklab.

    scripts/rust-analyzer.py JSON CRATE ROOT

The kernel's scripts/generate_rust_analyzer.py (`make -C KDIR M=DIR
rust-analyzer`) writes a project that an editor only half understands, and
this completes it in place:

- The generator adds an external module's crate only when a Kbuild or Makefile
  beside its root file names it; leaklab's Kbuild is one level up from its
  root, module/leaklab.rs. This adds the crate CRATE with root ROOT (relative
  to the JSON's directory) as the generator adds in-tree module crates
  (depending on kernel, with the kernel's cfgs), plus `MODULE` as kbuild
  passes it to modules, and the whole directory as its source (the root
  reaches ../samples/ by a #[path]).
- 6.12's generator lists the sysroot crates (core, alloc, std, proc_macro)
  itself and also names the sysroot, so rust-analyzer loads them twice and
  finds no inherent method of a primitive type (`usize::checked_mul`,
  `<[T]>::iter`), in the kernel crate as in the module. This drops the listed
  ones and names `sysroot_src` instead: rust-analyzer then adds the sysroot
  crates as dependencies of every crate itself, once.

Then it checks what an editor needs to resolve the module's `kernel::` items:
the sysroot's core sources, the kernel crate and CRATE with their roots
present, CRATE depending on kernel, the kernel's proc macros built. Exits 1,
naming the problem, when a check fails.
"""

import json
import pathlib
import sys


def fail(msg):
    print(f"rust-analyzer: {msg}", file=sys.stderr)
    sys.exit(1)


def drop_sysroot_crates(project, sysroot_src):
    """Removes the crates whose roots lie in the sysroot, and every dependency
    on them; renumbers the others."""
    crates = project["crates"]
    keep = [
        i for i, c in enumerate(crates) if not pathlib.Path(c["root_module"]).is_relative_to(sysroot_src)
    ]
    renumber = {old: new for new, old in enumerate(keep)}
    project["crates"] = [crates[i] for i in keep]
    for c in project["crates"]:
        c["deps"] = [
            {"crate": renumber[d["crate"]], "name": d["name"]} for d in c["deps"] if d["crate"] in renumber
        ]


def main():
    if len(sys.argv) != 4:
        fail("usage: rust-analyzer.py JSON CRATE ROOT")
    path, name, root = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    try:
        project = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        fail(f"{path}: {e}")
    # Where the generator found core (RUST_LIB_SRC), else the sysroot's own.
    core = [c for c in project.get("crates", []) if c.get("display_name") == "core"]
    if core:
        project["sysroot_src"] = str(pathlib.Path(core[0]["root_module"]).parents[2])
    elif "sysroot" in project:
        project.setdefault("sysroot_src", f"{project['sysroot']}/lib/rustlib/src/rust/library")
    if "sysroot_src" not in project:
        fail(f"{path}: names no sysroot")
    sysroot_src = pathlib.Path(project["sysroot_src"])
    drop_sysroot_crates(project, sysroot_src)

    crates = project["crates"]
    index = {c.get("display_name"): i for i, c in enumerate(crates)}
    for needed in ("kernel", "macros"):
        if needed not in index:
            fail(f"{path}: no crate named {needed!r}")
    kernel = crates[index["kernel"]]
    if name not in index:
        crates.append(
            {
                "display_name": name,
                "root_module": str((path.parent / root).resolve()),
                "is_workspace_member": True,
                "is_proc_macro": False,
                "deps": [{"crate": index["kernel"], "name": "kernel"}],
                "cfg": kernel.get("cfg", []) + ["MODULE"],
                "edition": kernel.get("edition", "2021"),
                "env": dict(kernel.get("env", {})),
                "source": {"include_dirs": [str(path.parent.resolve())], "exclude_dirs": []},
            }
        )
    ours = crates[index.get(name, len(crates) - 1)]
    path.write_text(json.dumps(project, sort_keys=True, indent=4) + "\n")

    if not (sysroot_src / "core" / "src" / "lib.rs").is_file():
        fail(f"{path}: no core sources in {sysroot_src} (rustup component add rust-src)")
    want = (path.parent / root).resolve()
    if pathlib.Path(ours["root_module"]).resolve() != want:
        fail(f"{path}: crate {name} has root {ours['root_module']}, not {want}")
    for c in (kernel, ours):
        if not pathlib.Path(c["root_module"]).is_file():
            fail(f"{path}: crate {c['display_name']}: no file {c['root_module']}")
    dylib = crates[index["macros"]].get("proc_macro_dylib_path", "")
    if not pathlib.Path(dylib).is_file():
        fail(f"{path}: the kernel's proc macros are not built ({dylib or 'no path'})")
    if not any(crates[d["crate"]] is kernel for d in ours.get("deps", [])):
        fail(f"{path}: crate {name} does not depend on kernel")
    print(
        f"rust-analyzer: {path}: {len(crates)} crates and the sysroot's; kernel at "
        f"{kernel['root_module']}, {name} at {ours['root_module']}"
    )


if __name__ == "__main__":
    main()
