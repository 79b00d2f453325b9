#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Completes and checks the rust-project.json that the kernel wrote for leaklab.

    scripts/rust-analyzer.py JSON CRATE ROOT

The kernel's scripts/generate_rust_analyzer.py (`make -C KDIR M=DIR
rust-analyzer`) adds an external module's crate only when a Kbuild or Makefile
beside its root file names it; leaklab's Kbuild is one level up from its root,
module/leaklab.rs. This adds the crate CRATE with root ROOT (relative to the
JSON's directory) as the generator adds in-tree module crates (deps core and
kernel, the kernel's cfgs), plus `MODULE` as kbuild passes it to modules. Then
it checks what an editor needs to resolve the module's `kernel::` items: the
sysroot's core and the kernel crate with their roots present, the kernel's
proc macros built, and CRATE depending on kernel. Exits 1, naming the problem,
when a check fails.
"""

import json
import pathlib
import sys


def fail(msg):
    print(f"rust-analyzer: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    if len(sys.argv) != 4:
        fail("usage: rust-analyzer.py JSON CRATE ROOT")
    path, name, root = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    try:
        project = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        fail(f"{path}: {e}")
    crates = project.get("crates", [])
    index = {c.get("display_name"): i for i, c in enumerate(crates)}
    for needed in ("core", "kernel", "macros"):
        if needed not in index:
            fail(f"{path}: no crate named {needed!r}")
    kernel = crates[index["kernel"]]

    if name in index:
        ours = crates[index[name]]
    else:
        ours = {
            "display_name": name,
            "root_module": str((path.parent / root).resolve()),
            "is_workspace_member": True,
            "is_proc_macro": False,
            "deps": [{"crate": index[d], "name": d} for d in ("core", "kernel")],
            "cfg": kernel.get("cfg", []) + ["MODULE"],
            "edition": kernel.get("edition", "2021"),
            "env": dict(kernel.get("env", {})),
        }
        crates.append(ours)
        path.write_text(json.dumps(project, sort_keys=True, indent=4) + "\n")

    want = (path.parent / root).resolve()
    if pathlib.Path(ours["root_module"]).resolve() != want:
        fail(f"{path}: crate {name} has root {ours['root_module']}, not {want}")
    for c in (crates[index["core"]], kernel, ours):
        if not pathlib.Path(c["root_module"]).is_file():
            fail(f"{path}: crate {c['display_name']}: no file {c['root_module']}")
    dylib = crates[index["macros"]].get("proc_macro_dylib_path", "")
    if not pathlib.Path(dylib).is_file():
        fail(f"{path}: the kernel's proc macros are not built ({dylib or 'no path'})")
    if not any(crates[d["crate"]] is kernel for d in ours.get("deps", [])):
        fail(f"{path}: crate {name} does not depend on kernel")
    print(
        f"rust-analyzer: {path}: {len(crates)} crates; kernel at {kernel['root_module']}, "
        f"{name} at {ours['root_module']}"
    )


if __name__ == "__main__":
    main()
