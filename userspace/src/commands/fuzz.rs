// SPDX-License-Identifier: GPL-2.0
//! `leaklab fuzz`: random and adversarial input to every control file of
//! leaklab.ko, for a bounded count and time, in one kmemleak window.
//!
//! Writes: empty, huge, binary, non-UTF-8, numbers at every integer
//! boundary, split over two writes, at an offset; reads at odd offsets and
//! sizes. The contract (module/control.rs) is that a write is one decimal
//! number (1 to 20 digits, an optional newline) at offset 0, once per open:
//! anything else must be refused with an error. Afterwards the kernel log
//! must hold no BUG, WARNING or Oops that a leaky sample does not explain,
//! and kmemleak must report nothing outside the leaky samples.

use std::{
    fs::{self, OpenOptions},
    io::Write,
    os::unix::fs::{FileExt, PermissionsExt},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Result;
use fastrand::Rng;

use crate::{
    kernel::module::Ko,
    kmemleak::Kmemleak,
    ko::{Control, Variant},
    output::schema::Schema,
    pipeline::session::Session,
    report::{fuzz::FuzzRun, judgement::Judgement},
};

/// What the fuzzer is asked to do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// leaklab.ko.
    pub module: PathBuf,
    /// At most this many operations.
    pub count: u64,
    /// At most this many seconds of fuzzing.
    pub seconds: u64,
    /// The generator's seed (the same seed, the same input).
    pub seed: u64,
}

/// Whether `data` is inside the write contract: 1 to 20 ASCII digits and
/// an optional newline. Such a write may still be refused (a number out of
/// range, the leak cap); one outside it must be.
pub fn in_contract(data: &[u8]) -> bool {
    let digits = data.strip_suffix(b"\n").unwrap_or(data);
    !digits.is_empty() && digits.len() <= 20 && digits.iter().all(u8::is_ascii_digit)
}

/// The inputs every file gets, then random ones.
fn adversarial() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\n".to_vec(),
        vec![b'7'; 65536],
        vec![b'A'; 4097],
        b"\x00".to_vec(),
        b"\xff\xfe\xfd".to_vec(),
        "\u{0661}\u{0662}".as_bytes().to_vec(),
        b"-1".to_vec(),
        b"+1".to_vec(),
        b" 1".to_vec(),
        b"1 ".to_vec(),
        b"0x10".to_vec(),
        b"1e3".to_vec(),
        b"1\n\n".to_vec(),
        b"1\r\n".to_vec(),
        b"1\x00".to_vec(),
        b"1;2".to_vec(),
    ];
    // Integer boundaries, as written, with and without a newline; runs are
    // capped at 10000, so larger counts are cheap refusals.
    for n in [
        "0",
        "10001",
        "2147483647",
        "2147483648",
        "4294967295",
        "4294967296",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999999",
        "000000000000000000001",
    ] {
        v.push(n.as_bytes().to_vec());
        v.push(format!("{n}\n").into_bytes());
    }
    v
}

/// A random input: mostly bytes from a hostile alphabet, sometimes raw.
fn random_input(rng: &mut Rng) -> Vec<u8> {
    const ALPHABET: &[u8] = b"0123456789-+ \n\t\x00\xffx";
    let len = match rng.u64(..10) {
        0 => rng.u64(..5000) as usize,
        _ => rng.u64(..24) as usize,
    };
    let raw = rng.u64(..4) == 0;
    (0..len)
        .map(|_| {
            if raw {
                rng.u8(..)
            } else {
                ALPHABET[rng.usize(..ALPHABET.len())]
            }
        })
        .collect()
}

/// One write as the contract allows it (one write at offset 0 of a fresh
/// open), or bent: split in two, or at an offset. Returns the outcome and
/// whether the contract allowed it.
fn write(file: &Path, data: &[u8], how: u64) -> (std::io::Result<()>, bool) {
    let f = match OpenOptions::new().write(true).open(file) {
        Ok(f) => f,
        Err(e) => return (Err(e), in_contract(data)),
    };
    match how {
        // Two writes: the second is never allowed.
        0 if data.len() >= 2 => {
            let (a, b) = data.split_at(data.len() / 2);
            let first = (&f).write(a).map(|_| ());
            let second = (&f).write(b).map(|_| ());
            match first {
                // The second half alone is out of the contract.
                Ok(()) => (second, false),
                Err(e) => (Err(e), in_contract(a)),
            }
        }
        // At an offset.
        1 => (f.write_at(data, 1 + data.len() as u64).map(|_| ()), false),
        _ => ((&f).write(data).map(|_| ()), in_contract(data)),
    }
}

/// Runs the plan: fuzz in a window, unload, and judge.
pub fn run(plan: &Plan, progress: &mut dyn FnMut(&str)) -> Result<FuzzRun> {
    let kmemleak = Kmemleak::open()?;
    let session = Session::open(&kmemleak, &Ko::open(&plan.module)?)?;
    let ctl = Control::open()?;
    let mut run = fuzz(&ctl, plan, progress)?;
    // Which leaky samples ran (they may leak), before the module goes.
    let ran_leaky: Vec<String> = ctl
        .stats()?
        .into_iter()
        .filter(|s| s.variant == Variant::Leaky && s.runs > 0)
        .map(|s| s.pattern)
        .collect();
    drop(ctl);
    run.judgement = session.finish(&ran_leaky, progress)?;
    run.ok = run.accepted_bad.is_empty() && run.failed_reads.is_empty() && run.judgement.clean();
    Ok(run)
}

/// The fuzzing itself, against the loaded module.
fn fuzz(ctl: &Control, plan: &Plan, progress: &mut dyn FnMut(&str)) -> Result<FuzzRun> {
    // Every file, with whether its mode lets root write it.
    let mut files = Vec::new();
    for path in ctl.entries()? {
        let meta = fs::metadata(&path)?;
        if meta.is_file() {
            files.push((path, meta.permissions().mode() & 0o200 != 0));
        }
    }
    files.sort();
    let mut rng = Rng::with_seed(plan.seed);
    let mut run = FuzzRun {
        schema: Schema::Fuzz.name().into(),
        seed: plan.seed,
        files: files.len(),
        writes: 0,
        refused: 0,
        accepted_bad: Vec::new(),
        reads: 0,
        failed_reads: Vec::new(),
        judgement: Judgement::default(),
        ok: false,
    };
    let fixed = adversarial();
    let deadline = Instant::now() + Duration::from_secs(plan.seconds);
    let mut ops = 0u64;
    'outer: for round in 0.. {
        for (file, writable) in &files {
            if ops >= plan.count || Instant::now() >= deadline {
                break 'outer;
            }
            crate::kernel::interrupt::check()?;
            ops += 1;
            if ops.is_multiple_of(500) {
                progress(&format!("fuzzing: {ops} operations"));
            }
            if rng.u64(..3) == 0 {
                read_odd(file, &mut rng, &mut run);
                continue;
            }
            let data = match fixed.get(round) {
                Some(d) => d.clone(),
                None => random_input(&mut rng),
            };
            let (result, allowed) = write(file, &data, rng.u64(..6));
            run.writes += 1;
            // A read-only file takes no write at all.
            match (result, allowed && *writable) {
                (Err(_), false) => run.refused += 1,
                (Ok(()), false) => run.accepted_bad.push(format!(
                    "{}: {:?}",
                    file.display(),
                    String::from_utf8_lossy(&data[..data.len().min(40)])
                )),
                (_, true) => {}
            }
        }
    }
    Ok(run)
}

/// A read at a random offset and size; a failure is recorded.
fn read_odd(file: &Path, rng: &mut Rng, run: &mut FuzzRun) {
    let Ok(f) = fs::File::open(file) else {
        // Write-only files refuse reads: that is their contract.
        return;
    };
    let mut buf = vec![0u8; 1 + rng.u64(..300) as usize];
    let offset = match rng.u64(..4) {
        0 => u64::MAX - rng.u64(..16),
        1 => 1 << (20 + rng.u64(..40)),
        _ => rng.u64(..200),
    };
    run.reads += 1;
    if let Err(e) = f.read_at(&mut buf, offset) {
        // Offsets beyond what a file offset can be are EINVAL by POSIX.
        if !(offset > i64::MAX as u64 && e.raw_os_error() == Some(nix::libc::EINVAL)) {
            run.failed_reads
                .push(format!("{} at {offset}: {e}", file.display()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_is_a_short_decimal() {
        for ok in [&b"1"[..], b"1\n", b"18446744073709551616", b"0"] {
            assert!(in_contract(ok), "{ok:?}");
        }
        for bad in [
            &b""[..],
            b"\n",
            b"+1",
            b" 1",
            b"1 ",
            b"1\n\n",
            b"1\r\n",
            b"0x10",
            b"123456789012345678901",
        ] {
            assert!(!in_contract(bad), "{bad:?}");
        }
    }

    #[test]
    fn every_adversarial_input_but_the_numbers_is_out_of_contract() {
        let inputs = adversarial();
        let allowed: Vec<String> = inputs
            .iter()
            .filter(|d| in_contract(d))
            .map(|d| String::from_utf8_lossy(d).trim().to_string())
            .collect();
        // Only the boundary numbers (20 digits at most) are allowed through.
        assert!(allowed
            .iter()
            .all(|n| n.bytes().all(|b| b.is_ascii_digit())));
        assert!(inputs.len() - allowed.len() >= 20);
    }
}
