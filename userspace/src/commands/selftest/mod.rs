// SPDX-License-Identifier: GPL-2.0
//! `leaklab selftest`: checks leaklab.ko's control interface against its
//! documented contract (see `module/control.rs`): every malformed write is
//! refused with the documented error and changes nothing, reads of any size
//! and offset agree, the leak cap holds, writers in several processes are
//! each counted once, and the module cannot be unloaded while a control file
//! is open.

use std::{
    ffi::CString,
    fs::{self, OpenOptions},
    io::Read,
    os::unix::fs::FileExt,
    path::Path,
};

use crate::{
    kernel::module::Ko,
    ko::{Control, Variant, DIR},
    output::schema::Schema,
    pipeline::run::Run,
    report::selftest::{Case, Selftest},
};
use anyhow::{Context, Result};
use nix::kmod::{delete_module, DeleteModuleFlags};

mod races;

use races::{concurrent_writers, interrupted_runs_clean_up, same, unload_races};

fn errno_name(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("{:?}", nix::errno::Errno::from_raw(n)),
        None => e.to_string(),
    }
}

/// Where a write goes.
#[derive(Clone, Copy)]
enum At {
    /// The file position (0 on a fresh open).
    Position,
    /// After `lseek` to this offset.
    Seek(u64),
    /// `pwrite` at this offset.
    Pwrite(u64),
}

/// Writes `data` to `file` in one call (after `before` writes on the same
/// open file) and names the outcome.
fn write_once(file: &Path, before: &[&[u8]], data: &[u8], at: At) -> String {
    let f = match OpenOptions::new().write(true).open(file) {
        Ok(f) => f,
        Err(e) => return format!("open: {}", errno_name(&e)),
    };
    for b in before {
        if let Err(e) = std::io::Write::write(&mut &f, b) {
            return format!("earlier write: {}", errno_name(&e));
        }
    }
    let r = match at {
        At::Position => std::io::Write::write(&mut &f, data),
        At::Seek(off) => std::io::Seek::seek(&mut &f, std::io::SeekFrom::Start(off))
            .and_then(|_| std::io::Write::write(&mut &f, data)),
        At::Pwrite(off) => f.write_at(data, off),
    };
    match r {
        Ok(n) if n == data.len() => "ok".into(),
        Ok(n) => format!("short write of {n}"),
        Err(e) => errno_name(&e),
    }
}

/// Loads `module`, runs every case, unloads it.
pub fn run(module: &Path) -> Result<Selftest> {
    let ko = Ko::open(module)?;
    // A run without detectors: the contract is checked, not leaks.
    let mut run = Run::new(None, None)?;
    let mut loaded = run.load(&ko)?;
    let result = cases(ko.name());
    let unloaded = run.unload(&mut loaded);
    let mut cases = result?;
    unloaded?;
    cases.extend(unload_races(&ko)?);
    cases.extend(interrupted_runs_clean_up(&ko)?);
    let ok = cases.iter().all(|c| c.ok);
    Ok(Selftest {
        schema: Schema::Selftest.name(),
        cases,
        ok,
    })
}

/// Every case against the loaded `module`, in order; the last one may
/// unload it.
fn cases(module: &str) -> Result<Vec<Case>> {
    let ctl = Control::open()?;
    let dir = Path::new(DIR);
    let mut cases = refused_writes(dir)?;
    cases.extend(leak_cap(&ctl, dir)?);
    cases.extend(reads(dir)?);
    cases.extend(concurrent_writers(dir)?);
    cases.extend(unprivileged(&ctl)?);
    // Last: if this unloads the module, nothing after it could run.
    cases.push(rmmod_while_open(dir, module)?);
    Ok(cases)
}

/// Writes the control files must refuse, each with its error, and the
/// stats after them: no sample ran but the one valid write's.
fn refused_writes(dir: &Path) -> Result<Vec<Case>> {
    let leaky = dir.join("patterns/error_path/leaky");
    let fixed = dir.join("patterns/error_path/fixed");
    let stats_before = fs::read_to_string(dir.join("stats"))?;
    let overlong = vec![b'1'; 65];
    let bad: [(&str, &[u8]); 13] = [
        ("empty", b""),
        ("word", b"abc"),
        ("negative", b"-1"),
        ("zero", b"0"),
        ("over the run limit", b"10001"),
        ("u64 overflow", b"18446744073709551616"),
        ("21 digits", b"999999999999999999999"),
        ("65 bytes", &overlong),
        ("two numbers", b"1 2"),
        ("leading space", b" 1"),
        ("binary", b"\x00\xff\x01"),
        ("non-UTF-8 digit lookalike", "\u{0661}".as_bytes()),
        ("trailing garbage", b"1x"),
    ];
    let mut out: Vec<Case> = bad
        .into_iter()
        .map(|(what, data)| {
            Case::new(
                format!("leaky <- {what}"),
                "EINVAL",
                write_once(&leaky, &[], data, At::Position),
            )
        })
        .collect();
    out.extend([
        Case::new(
            "fixed <- second write on one open file",
            "EINVAL",
            write_once(&fixed, &[b"1"], b"1", At::Position),
        ),
        Case::new(
            "fixed <- write after seeking to 5",
            "EINVAL",
            write_once(&fixed, &[], b"1", At::Seek(5)),
        ),
        // seq_file control files are not pwrite-able at all.
        Case::new(
            "fixed <- pwrite at offset 5",
            "ESPIPE",
            write_once(&fixed, &[], b"1", At::Pwrite(5)),
        ),
        Case::new(
            "version <- write to a read-only file",
            "EINVAL",
            write_once(&dir.join("version"), &[], b"1", At::Position),
        ),
        Case::new(
            "leak_cap <- word",
            "EINVAL",
            write_once(&dir.join("leak_cap"), &[], b"lots", At::Position),
        ),
        Case::new(
            "module_exit/disarm <- 2",
            "EINVAL",
            write_once(
                &dir.join("patterns/module_exit/disarm"),
                &[],
                b"2",
                At::Position,
            ),
        ),
    ]);
    // Nothing above may have run a sample: stats as before, minus the one
    // valid write of the "second write" case, which ran error_path/fixed once.
    let stats_after = fs::read_to_string(dir.join("stats"))?;
    let changed: Vec<String> = stats_before
        .lines()
        .zip(stats_after.lines())
        .filter(|(a, b)| a != b)
        .map(|(_, b)| b.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .collect();
    out.push(Case::new(
        "stats after the refused writes",
        "pattern=error_path variant=fixed runs=1",
        changed.join("; "),
    ));
    Ok(out)
}

/// The cap: a leaky run that does not fit fails whole and leaks nothing.
fn leak_cap(ctl: &Control, dir: &Path) -> Result<Vec<Case>> {
    let leaky = dir.join("patterns/error_path/leaky");
    let (old_cap, _) = ctl.leak_cap()?;
    ctl.set_cap(100)?;
    let refused = Case::new(
        "leaky <- 1 over a 100-byte cap",
        "ENOSPC",
        write_once(&leaky, &[], b"1\n", At::Position),
    );
    let leaked = ctl
        .stats()?
        .into_iter()
        .find(|s| s.pattern == "error_path" && s.variant == Variant::Leaky)
        .context("no error_path leaky stats")?;
    let out = vec![
        refused,
        Case::new(
            "error_path leaky runs after ENOSPC",
            "0",
            leaked.runs.to_string(),
        ),
        Case::new(
            "leak_cap after ENOSPC",
            "cap_bytes=100 leaked_bytes=0",
            fs::read_to_string(dir.join("leak_cap"))?.trim().to_string(),
        ),
    ];
    ctl.set_cap(old_cap)?;
    Ok(out)
}

/// Reads: byte by byte, and at an odd offset, agree with a whole read.
fn reads(dir: &Path) -> Result<Vec<Case>> {
    let whole = fs::read(dir.join("stats"))?;
    let mut f = fs::File::open(dir.join("stats"))?;
    let mut one = [0u8; 1];
    let mut bytewise = Vec::new();
    while f.read(&mut one)? == 1 {
        bytewise.push(one[0]);
    }
    let mut part = [0u8; 7];
    let n = fs::File::open(dir.join("stats"))?.read_at(&mut part, 13)?;
    let mut past = [0u8; 8];
    let beyond = fs::File::open(dir.join("stats"))?.read_at(&mut past, whole.len() as u64 + 100)?;
    Ok(vec![
        Case::new(
            "stats read 1 byte at a time",
            "same",
            same(&whole, &bytewise),
        ),
        Case::new(
            "stats read of 7 bytes at offset 13",
            "same",
            // A short stats (a catalogue of one pattern) has less to give.
            same(whole.get(13..13 + n).unwrap_or(&[]), &part[..n]),
        ),
        Case::new("stats read past the end", "0", beyond.to_string()),
    ])
}

/// `rmmod` of `module` while its stats file is open: refused.
fn rmmod_while_open(dir: &Path, module: &str) -> Result<Case> {
    let open = fs::File::open(dir.join("stats"))?;
    let cname = CString::new(module).context("module name contains NUL")?;
    let actual = match delete_module(&cname, DeleteModuleFlags::O_NONBLOCK) {
        Ok(()) => "unloaded".to_string(),
        Err(e) => format!("{e:?}"),
    };
    drop(open);
    Ok(Case::new("rmmod while stats is open", "EAGAIN", actual))
}

/// The control interface against an unprivileged user: no file in it is
/// open to group or others, no directory writable by them, and a thread with the credentials of nobody
/// gets EACCES opening any file to read or to write.
fn unprivileged(ctl: &Control) -> Result<Vec<Case>> {
    use std::os::unix::fs::PermissionsExt;
    let paths = ctl.entries()?;
    let mut open_to_others = Vec::new();
    for p in &paths {
        let mode = fs::metadata(p)?.permissions().mode();
        // Files root's alone; directories at most listable by others.
        let open = if p.is_dir() { 0o022 } else { 0o077 };
        if mode & open != 0 {
            open_to_others.push(format!("{} {:o}", p.display(), mode & 0o777));
        }
    }
    let files: Vec<_> = paths.into_iter().filter(|p| p.is_file()).collect();
    let refused = crate::kernel::thread::in_fresh_thread(move || {
        // Credentials are per thread in the kernel; the raw system calls
        // (unlike libc's wrappers) change this thread's only, and the thread
        // ends right after.
        // SAFETY: plain system calls with integer arguments (setgroups with
        // an empty list and a null pointer it does not read).
        let dropped = unsafe {
            nix::libc::syscall(nix::libc::SYS_setgroups, 0, std::ptr::null::<u32>()) == 0
                && nix::libc::syscall(nix::libc::SYS_setresgid, 65534, 65534, 65534) == 0
                && nix::libc::syscall(nix::libc::SYS_setresuid, 65534, 65534, 65534) == 0
        };
        anyhow::ensure!(
            dropped,
            "dropping to nobody: {}",
            std::io::Error::last_os_error()
        );
        let mut other = Vec::new();
        for f in &files {
            for write in [false, true] {
                let opened = fs::OpenOptions::new().read(!write).write(write).open(f);
                let got = opened.map_or_else(|e| errno_name(&e), |_| "opened".into());
                if got != "EACCES" {
                    other.push(format!(
                        "{} ({}): {got}",
                        f.display(),
                        if write { "write" } else { "read" }
                    ));
                }
            }
        }
        Ok((files.len(), other))
    })?;
    Ok(vec![
        Case::new(
            "no file open to group or others, no directory writable",
            "none",
            if open_to_others.is_empty() {
                "none".into()
            } else {
                open_to_others.join(", ")
            },
        ),
        Case::new(
            format!("open as nobody, {} files, read and write", refused.0),
            "EACCES",
            if refused.1.is_empty() {
                "EACCES".into()
            } else {
                refused.1.join(", ")
            },
        ),
    ])
}
