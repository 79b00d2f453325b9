#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The docs' sample outputs, produced by real runs.

A sample is a fenced block right after a marker line in README.md or a page
of Documentation/:

    <!-- sample: lesson error_path-c -->
    <!-- sample: matrix x86_64 | show | lines ^pattern|^error_path -->
    ```text
    ...what the command printed, masked...
    ```

Its id names a source, the command whose output it comes from (SOURCES
below: its kind, then its argument), and after each `|` a view of that
output (VIEWS: the whole of `leaklab show` of a JSON document, some of its
lines, a report's frames). Timings, event and scan counts, addresses and
code offsets are masked, so that a sample stays the same from run to run;
file names and line numbers are not.

    scripts/docs.py list                 every sample: page, id, command
    scripts/docs.py update [SOURCE...]   run each source's command (all, or
                                         those given) once and write every
                                         sample of it into its page
                                         (`make docs`)
    scripts/docs.py compare SOURCE FILE  exit 1, with a diff, when a sample
                                         of SOURCE, made from FILE (that
                                         command's output now), is not its
                                         page's; the tests run the commands
                                         and call this

`show` runs $LEAKLAB (default build/leaklab) on the document.
"""

import difflib
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MARKER = re.compile(r"^<!-- sample: (.+?) -->$")


def lesson(name):
    """`scripts/lesson.sh prove` of a fresh copy of lesson `name`, as given:
    the report of its leak (stdout)."""
    subprocess.run(["rm", "-rf", os.path.join(ROOT, "build", "lessons", name)], check=True)
    subprocess.run(["bash", "scripts/lesson.sh", "start", name], cwd=ROOT, check=True,
                   stderr=subprocess.DEVNULL)
    p = subprocess.run(["bash", "scripts/lesson.sh", "prove", name], cwd=ROOT,
                       capture_output=True, text=True)
    if p.returncode != 1:
        sys.exit(f"docs: lesson {name} as given exited {p.returncode}, not 1:\n{p.stderr}")
    return p.stdout


_RUNS = set()


def make_run(arch):
    """`make run ARCH=arch`, once per update: its results are in
    build/results/matrix-ARCH.{json,log}."""
    if arch not in _RUNS:
        p = subprocess.run(["make", "--no-print-directory", "run", f"ARCH={arch}"], cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            sys.exit(f"docs: make run ARCH={arch} exited {p.returncode}:\n{p.stderr}")
        _RUNS.add(arch)
    return os.path.join(ROOT, "build", "results", f"matrix-{arch}")


def matrix(arch):
    """The JSON document `make run` wrote."""
    with open(make_run(arch) + ".json") as f:
        return f.read()


def matrix_log(arch):
    """The guest's console log of `make run`."""
    with open(make_run(arch) + ".log", errors="replace") as f:
        return f.read()


def try_(args):
    """What `scripts/try.sh ARGS` printed (stdout); any check status."""
    p = subprocess.run(["bash", "scripts/try.sh"] + args.split(), cwd=ROOT,
                       capture_output=True, text=True)
    if p.returncode not in (0, 1):
        sys.exit(f"docs: scripts/try.sh {args} exited {p.returncode}:\n{p.stderr}")
    return p.stdout


# By a source's kind: the command that prints it, and how it is said on
# the page.
SOURCES = {
    "lesson": (lesson, "scripts/lesson.sh start {0} && scripts/lesson.sh prove {0}"),
    "matrix": (matrix, "make run ARCH={0}: build/results/matrix-{0}.json"),
    "matrix-log": (matrix_log, "make run ARCH={0}: build/results/matrix-{0}.log"),
    "try": (try_, "scripts/try.sh {0}"),
}


def show(text, _):
    """`leaklab show` of the JSON document `text`."""
    tool = os.environ.get("LEAKLAB", os.path.join(ROOT, "build", "leaklab"))
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        f.write(text)
        f.flush()
        p = subprocess.run([tool, "show", f.name], capture_output=True, text=True)
    if p.returncode not in (0, 1):
        sys.exit(f"docs: {tool} show exited {p.returncode}: {p.stderr}")
    return p.stdout


def lines(text, regex):
    """The lines that match `regex`, each run of lines left out between
    two of them said as `...`."""
    keep = re.compile(regex)
    out, gap = [], False
    for line in text.splitlines():
        if keep.search(line):
            if gap and out:
                out.append("...")
            out.append(line)
            gap = False
        else:
            gap = True
    return "\n".join(out) + "\n"


def block(text, head):
    """The block that begins with the line `head`, to the blank line that
    ends it."""
    all_lines = text.splitlines()
    if head not in all_lines:
        sys.exit(f"docs: no line '{head}' in the output")
    start = all_lines.index(head)
    end = next((i for i in range(start, len(all_lines)) if not all_lines[i].strip()), len(all_lines))
    return "\n".join(all_lines[start:end]) + "\n"


def frames(text, arg):
    """`raw PATTERN` or `symbolized PATTERN`: the frames of the report a
    matrix document keeps as PATTERN leaky's example, as kmemleak printed
    them or as leaklab names them."""
    which, pattern = arg.split()
    doc = json.loads(text)
    for v in doc["cycles"][0]["verdicts"]:
        if v["pattern"] == pattern and v["variant"] == "leaky" and v.get("example"):
            return "".join(f"    {f}\n" for f in v["example"][which])
    sys.exit(f"docs: no example report of {pattern} leaky in the document")


VIEWS = {"show": show, "lines": lines, "block": block, "frames": frames}

# What changes from run to run, and what it reads as on a page.
MASKS = [
    (re.compile(r"\b0x[0-9a-f]{6,}\b"), "0x..."),
    (re.compile(r"\+0x[0-9a-f]+(/0x[0-9a-f]+)?\b"), "+0x..."),
    (re.compile(r"\btrace: \d+ events\b"), "trace: N events"),
    (re.compile(r"\b\d+ allocator-internal\b"), "N allocator-internal"),
    (re.compile(r"\b\d+ scan\(s\)"), "N scan(s)"),
    (re.compile(r"\bkmemleak: \d+ scans\b"), "kmemleak: N scans"),
    (re.compile(r"\b\d+\.\d+ s\b"), "N s"),
    (re.compile(r"^\[ *\d+\.\d+\] "), "[    N.N] "),
    (re.compile(r"\b(\d+\.\d+)\.\d+\+deb(\d+)\b"), r"\1.N+deb\2"),
    (re.compile(r"\b(leaklab_slab)_\d+_"), r"\1_N_"),
    (re.compile(r"\bPID: \d+"), "PID: N"),
]


def mask(text):
    """`text` with what varies between runs masked, lines' ends trimmed."""
    lines = []
    for line in text.splitlines():
        for pattern, said in MASKS:
            line = pattern.sub(said, line)
        lines.append(line.rstrip())
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"


def parse(sample_id):
    """A sample's source (kind, argument) and views ((name, argument)...)."""
    source, *views = [p.strip() for p in sample_id.split(" | ")]
    kind, _, arg = source.partition(" ")
    return source, kind, arg, [tuple((v.split(" ", 1) + [""])[:2]) for v in views]


def pages():
    """README.md and every page of Documentation/."""
    yield os.path.join(ROOT, "README.md")
    yield from sorted(glob.glob(os.path.join(ROOT, "Documentation", "**", "*.md"), recursive=True))


def samples():
    """Every sample: (page, id, first and last line of its block's body,
    the body)."""
    for page in pages():
        with open(page) as f:
            lines = f.read().split("\n")
        for i, line in enumerate(lines):
            m = MARKER.match(line)
            if not m:
                continue
            if i + 1 >= len(lines) or not lines[i + 1].startswith("```"):
                sys.exit(f"docs: {os.path.relpath(page, ROOT)}:{i + 1}: a sample marker must be followed by a fenced block")
            end = next((j for j in range(i + 2, len(lines)) if lines[j] == "```"), None)
            if end is None:
                sys.exit(f"docs: {os.path.relpath(page, ROOT)}:{i + 2}: the sample's block never ends")
            body = "\n".join(lines[i + 2:end]) + "\n"
            yield page, m.group(1), i + 2, end, body


def check(sample_id):
    """Exits with a message when `sample_id` names an unknown source or
    view."""
    _, kind, _, views = parse(sample_id)
    if kind not in SOURCES:
        sys.exit(f"docs: sample '{sample_id}': no command for '{kind}' (known: {', '.join(SOURCES)})")
    for name, _ in views:
        if name not in VIEWS:
            sys.exit(f"docs: sample '{sample_id}': no view '{name}' (known: {', '.join(VIEWS)})")


def render(sample_id, output):
    """Sample `sample_id` made from its source's `output`, masked."""
    check(sample_id)
    for name, arg in parse(sample_id)[3]:
        output = VIEWS[name](output, arg)
    return mask(output)


def update(sources):
    outputs = {}
    for _, sample_id, _, _, _ in samples():
        check(sample_id)
        source, kind, arg, _ = parse(sample_id)
        if (sources and source not in sources) or source in outputs:
            continue
        print(f"docs: running {source}", file=sys.stderr, flush=True)
        outputs[source] = SOURCES[kind][0](arg)
    found = list(samples())
    for page in sorted(set(s[0] for s in found)):
        with open(page) as f:
            lines = f.read().split("\n")
        # From the last sample up, so that earlier line numbers hold.
        for p, sample_id, start, end, _ in reversed(found):
            source = parse(sample_id)[0]
            if p == page and source in outputs:
                lines[start:end] = render(sample_id, outputs[source]).rstrip("\n").split("\n")
        with open(page, "w") as f:
            f.write("\n".join(lines))


def compare(source, path):
    with open(path, errors="replace") as f:
        output = f.read()
    found = [s for s in samples() if parse(s[1])[0] == source]
    if not found:
        sys.exit(f"docs: no sample of '{source}' in README.md or Documentation/ (scripts/docs.py list)")
    status = 0
    for page, sample_id, start, _, body in found:
        got = render(sample_id, output)
        if body != got:
            rel = os.path.relpath(page, ROOT)
            sys.stdout.writelines(difflib.unified_diff(
                body.splitlines(True), got.splitlines(True),
                f"{rel}:{start} (the page's sample '{sample_id}')", "what the tree prints now"))
            print(f"docs: {rel}'s sample '{sample_id}' differs from what the tree prints: run 'make docs'")
            status = 1
    return status


def main(args):
    if args[:1] == ["list"]:
        for page, sample_id, start, _, _ in samples():
            check(sample_id)
            _, kind, arg, _ = parse(sample_id)
            said = SOURCES[kind][1].format(arg) if kind in SOURCES else "?"
            print(f"{os.path.relpath(page, ROOT)}:{start}  {sample_id}  ({said})")
        return 0
    if args[:1] == ["update"]:
        update(set(args[1:]))
        return 0
    if args[:1] == ["compare"] and len(args) == 3:
        return compare(args[1], args[2])
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
