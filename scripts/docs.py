#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The docs' sample outputs, produced by real runs.

A sample is a fenced block right after a marker line in README.md or a page
of Documentation/:

    <!-- sample: lesson error_path-c -->
    ```text
    ...what the command printed, masked...
    ```

Its id names the command that prints it (SAMPLES below). Timings, event and
scan counts, addresses and code offsets are masked, so that a sample stays
the same from run to run; file names and line numbers are not.

    scripts/docs.py list                 every sample: page, id, command
    scripts/docs.py update [ID...]       run each sample's command (all, or
                                         those given) and write its output
                                         into its page (`make docs`)
    scripts/docs.py compare ID FILE      exit 1, with a diff, when FILE (a
                                         command's output) masked is not the
                                         page's sample ID; the tests run the
                                         commands and call this
"""

import difflib
import glob
import os
import re
import subprocess
import sys

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


# By the id's first word: the command that prints the sample, and how it is
# said on the page.
SAMPLES = {
    "lesson": (lesson, "scripts/lesson.sh start {0} && scripts/lesson.sh prove {0}"),
}

# What changes from run to run, and what it reads as on a page.
MASKS = [
    (re.compile(r"\b0x[0-9a-f]{6,}\b"), "0x..."),
    (re.compile(r"\+0x[0-9a-f]+\b"), "+0x..."),
    (re.compile(r"\btrace: \d+ events\b"), "trace: N events"),
    (re.compile(r"\b\d+ scan\(s\)"), "N scan(s)"),
    (re.compile(r"\b\d+\.\d+ s\b"), "N s"),
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


def find(sample_id):
    found = [s for s in samples() if s[1] == sample_id]
    if not found:
        sys.exit(f"docs: no sample '{sample_id}' in README.md or Documentation/ (scripts/docs.py list)")
    return found


def run(sample_id):
    kind, _, arg = sample_id.partition(" ")
    if kind not in SAMPLES:
        sys.exit(f"docs: sample '{sample_id}': no command for '{kind}' (known: {', '.join(SAMPLES)})")
    return mask(SAMPLES[kind][0](arg))


def update(ids):
    outputs = {}
    for page, sample_id, _, _, _ in samples():
        if ids and sample_id not in ids:
            continue
        if sample_id not in outputs:
            print(f"docs: running {sample_id}", file=sys.stderr, flush=True)
            outputs[sample_id] = run(sample_id)
    for page in set(s[0] for s in samples()):
        with open(page) as f:
            lines = f.read().split("\n")
        # From the last sample up, so that earlier line numbers hold.
        for p, sample_id, start, end, _ in reversed(list(samples())):
            if p == page and sample_id in outputs:
                lines[start:end] = outputs[sample_id].rstrip("\n").split("\n")
        with open(page, "w") as f:
            f.write("\n".join(lines))


def compare(sample_id, path):
    with open(path) as f:
        got = mask(f.read())
    status = 0
    for page, _, start, _, body in find(sample_id):
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
            kind, _, arg = sample_id.partition(" ")
            said = SAMPLES[kind][1].format(arg) if kind in SAMPLES else "?"
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
