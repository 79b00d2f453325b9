#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""LAVA's own dispatcher and validator, from the tree scripts/lava.sh unpacks.

    lava-run.py ROOT run JOB OUTDIR    render the device dictionary for JOB
                                       (a QEMU job), run LAVA's lava-run on it,
                                       LAVA's log in OUTDIR/lava.log
    lava-run.py ROOT signals LOG       the test cases in a console log as LAVA's
                                       test shell reads them (its signal
                                       pattern, handle_testcase, SignalMatch
                                       and test sets), one JSON line each
    lava-run.py ROOT log LOG           a lava-run log's entries read with
                                       PyYAML, as LAVA reads its logs, one
                                       JSON line each (for the tests)
    lava-run.py ROOT validate FILE...  a job (lava-common's job schema, and
                                       lava-run --validate for QEMU jobs) or a
                                       test definition (lava-common's schema)

Runs under Debian's /usr/bin/python3, as root (lava-run wants it). Nothing
outside ROOT and OUTDIR is written: the dispatcher's download directory, a
constant that defaults to /var/lib/lava/dispatcher/tmp, is moved into OUTDIR
before LAVA is imported. LAVA imports the libguestfs bindings at start; they
build test-shell overlays for disk images, which a ramdisk job with monitors
never needs, so a module that fails if used stands in for them.
"""

import os
import subprocess
import sys
import types

USAGE = "usage: lava-run.py ROOT run JOB OUTDIR | log LOG | signals LOG | validate FILE..."


def die(msg):
    print(f"lava-run: {msg}", file=sys.stderr)
    sys.exit(2)


def setup(root, download_dir):
    site = os.path.join(root, "usr/lib/python3/dist-packages")
    if not os.path.isdir(site):
        die(f"{root} is not a LAVA tree from scripts/lava.sh (no {site})")
    sys.path.insert(0, site)

    def unavailable(*_args, **_kwargs):
        raise RuntimeError("libguestfs is not available: this job needs a disk-image overlay")

    sys.modules["guestfs"] = types.SimpleNamespace(GuestFS=unavailable)
    import lava_common.constants as constants

    constants.DISPATCHER_DOWNLOAD_DIR = download_dir


def device_dictionary(root, job):
    """The device dictionary for a QEMU job: the qemu device type, without
    KVM and with user networking (no bridge on a build machine), rendered
    with the job's context as LAVA's server renders it."""
    import jinja2

    templates = os.path.join(root, "usr/share/lava-server/device-types")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        autoescape=False,
        trim_blocks=True,
    )
    source = "{% extends 'qemu.jinja2' %}\n{% set no_kvm = True %}\n{% set netdevice = 'user' %}\n"
    return env.from_string(source).render(**job.get("context", {}))


def load(path):
    import yaml

    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        die(f"{path}: {e}")


def lava_run(root, job_path, outdir, validate_only):
    """Runs LAVA's lava-run in a child process; returns its exit status."""
    job = load(job_path)
    os.makedirs(outdir, exist_ok=True)
    device = os.path.join(outdir, "device.yaml")
    with open(device, "w") as f:
        f.write(device_dictionary(root, job))
    args = [
        sys.executable, os.path.abspath(__file__), root, "lava-run",
        os.path.join(outdir, "downloads"),
        "--job-id", "1", "--output-dir", os.path.join(outdir, "output"),
        "--device", device,
    ]
    if validate_only:
        args.append("--validate")
    args.append(job_path)
    if validate_only:
        return subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    with open(os.path.join(outdir, "lava.log"), "w") as log:
        return subprocess.run(args, stdout=log, stderr=log)


def validate(root, paths):
    setup(root, "/nonexistent")
    from lava_common.schemas import validate as validate_job
    from lava_common.schemas.test.testdef import validate as validate_testdef
    import voluptuous

    bad = 0
    for path in paths:
        data = load(path)
        try:
            if isinstance(data, dict) and "metadata" in data and "run" in data:
                validate_testdef(data)
                what = "test definition (lava-common's schema)"
            else:
                validate_job(data, strict=True)
                what = "job (lava-common's schema)"
                if data.get("device_type") == "qemu":
                    import tempfile

                    with tempfile.TemporaryDirectory() as tmp:
                        r = lava_run(root, path, tmp, validate_only=True)
                        if r.returncode != 0:
                            lines = [l for l in r.stderr.splitlines() if "error" in l.lower()]
                            raise ValueError("lava-run --validate failed: " + (lines[-1] if lines else r.stderr.strip()[-500:]))
                    what += " and lava-run --validate"
        except (voluptuous.Invalid, ValueError) as e:
            print(f"{path}: invalid: {e}", file=sys.stderr)
            bad += 1
            continue
        print(f"{path}: valid {what}")
    return 1 if bad else 0


def signals(root, log):
    """A console log's LAVA signals, read with LAVA's own test-shell code."""
    setup(root, "/nonexistent")
    import json
    import re

    from lava_dispatcher.actions.test.shell import TestShellAction, handle_testcase
    from lava_dispatcher.connection import SignalMatch

    shell = TestShellAction()
    shell._reset_patterns()
    pattern = re.compile(shell.patterns["signal"])
    match = SignalMatch()
    testset = None
    with open(log, errors="replace") as f:
        text = f.read()
    for m in pattern.finditer(text):
        name, params = m.groups()
        params = params.split()
        if name == "TESTSET":
            testset = params[1] if params[0] == "START" and len(params) > 1 else None
        elif name == "TESTCASE":
            res = match.match(handle_testcase(params))
            if testset:
                res["set"] = testset
            print(json.dumps(res, sort_keys=True))
    return 0


def log_entries(root, log):
    """The entries of a lava-run log, each line a YAML document."""
    setup(root, "/nonexistent")
    import json

    import yaml

    with open(log) as f:
        for line in f:
            entry = yaml.safe_load(line)
            if isinstance(entry, list):
                entry = entry[0]
            print(json.dumps(entry, default=str))
    return 0


def main():
    if len(sys.argv) < 3:
        die(USAGE)
    root, cmd, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    if cmd == "lava-run":
        # The child: LAVA's own lava-run, in this process.
        setup(root, rest[0])
        import runpy

        sys.argv = ["lava-run"] + rest[1:]
        runpy.run_path(os.path.join(root, "usr/bin/lava-run"), run_name="__main__")
        return 0
    if cmd == "run" and len(rest) == 2:
        if os.geteuid() != 0:
            die("LAVA's lava-run must run as root")
        setup(root, os.path.join(rest[1], "downloads"))
        return lava_run(root, rest[0], rest[1], validate_only=False).returncode
    if cmd == "log" and len(rest) == 1:
        return log_entries(root, rest[0])
    if cmd == "signals" and len(rest) == 1:
        return signals(root, rest[0])
    if cmd == "validate" and rest:
        return validate(root, rest)
    die(USAGE)


if __name__ == "__main__":
    sys.exit(main())
