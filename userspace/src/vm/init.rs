// SPDX-License-Identifier: GPL-2.0
//! The guest side of `leaklab vm`: `leaklab` as PID 1 of the initramfs.
//!
//! It mounts proc, sysfs, devtmpfs, debugfs and a tmpfs, installs busybox's
//! applets in `/bin` when the initramfs has busybox, runs the command it was
//! given in [`COMMAND_FILE`] as a child process, and powers the VM off
//! afterwards, whatever the command did. A command whose first word is a
//! leaklab subcommand (or `leaklab`) runs this binary; any other runs the
//! program of that name from `PATH` (`/bin:/sbin:...`): `sh -c '...'`,
//! `insmod /lib/modules/my.ko x=1`.
//!
//! The console has one writer. The kernel is booted with `loglevel=4`, so
//! only errors and worse reach the console directly; PID 1 relays every other
//! kernel record from `/dev/kmsg` and the child's output line by line, each
//! line in one write, so that kernel text never splits a line of the
//! command's output. Lines carry a tag the host reads back (see [`Tag`]).

use std::{
    fs::{self, File},
    io::{self, BufRead, BufReader, Read, Write},
    process::{Command, Stdio},
    sync::mpsc,
    thread,
};

use nix::{
    mount::{mount, MsFlags},
    sys::reboot::{reboot, RebootMode},
};

use super::initramfs::{command_words, BUSYBOX, COMMAND_FILE};

/// The guest's `PATH`: busybox's applets are installed in `/bin`.
pub const PATH: &str = "/bin:/sbin:/usr/bin:/usr/sbin";

/// The tags that start console lines written by PID 1 in the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// A line of the command's standard output.
    Stdout,
    /// A line of the command's standard error.
    Stderr,
    /// A message of PID 1 itself.
    Init,
    /// The command's exit status; the last line before power-off.
    Exit,
}

impl Tag {
    /// The text that starts a line with this tag.
    pub const fn prefix(self) -> &'static str {
        match self {
            Tag::Stdout => "@1 ",
            Tag::Stderr => "@2 ",
            Tag::Init => "@i ",
            Tag::Exit => "@exit ",
        }
    }

    /// Splits a console line into its tag and text; `None` for kernel lines.
    pub fn split(line: &str) -> Option<(Tag, &str)> {
        [Tag::Stdout, Tag::Stderr, Tag::Init, Tag::Exit]
            .into_iter()
            .find_map(|t| line.strip_prefix(t.prefix()).map(|rest| (t, rest)))
    }
}

/// Runs as PID 1: sets up the guest, runs the guest command, reports its
/// status and powers off. Never returns.
///
/// The command is the one in [`COMMAND_FILE`]; `args` (the words after `--`
/// on the kernel command line) only when the initramfs has none.
/// `is_leaklab_command` tells a leaklab subcommand's name.
pub fn run(args: Vec<String>, is_leaklab_command: fn(&str) -> bool) -> ! {
    let status = std::panic::catch_unwind(|| supervise(args, is_leaklab_command)).unwrap_or(125);
    console_line(Tag::Exit, &status.to_string());
    // Under QEMU's -no-reboot a reboot ends the VM.
    let _ = reboot(RebootMode::RB_AUTOBOOT);
    // Only reached if the reboot failed; PID 1 must not exit.
    loop {
        thread::park();
    }
}

fn console_line(tag: Tag, text: &str) {
    let line = format!("{}{}\n", tag.prefix(), text);
    let _ = io::stdout().lock().write_all(line.as_bytes());
}

fn mount_all() {
    let mounts: [(&str, &str, &str); 5] = [
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
        ("devtmpfs", "/dev", "devtmpfs"),
        ("debugfs", "/sys/kernel/debug", "debugfs"),
        ("tmpfs", "/tmp", "tmpfs"),
    ];
    for (src, target, fstype) in mounts {
        let _ = fs::create_dir_all(target);
        if let Err(e) = mount(
            Some(src),
            target,
            Some(fstype),
            MsFlags::empty(),
            None::<&str>,
        ) {
            if e != nix::errno::Errno::EBUSY {
                console_line(Tag::Init, &format!("mounting {fstype} on {target}: {e}"));
            }
        }
    }
}

enum Event {
    Line(Tag, String),
    Kernel(String),
    Closed,
}

/// What PID 1 runs for a guest command.
#[derive(Debug, PartialEq, Eq)]
pub enum Program {
    /// This binary, with these leaklab arguments.
    Leaklab(Vec<String>),
    /// A program of the guest (a name found on [`PATH`], or a path), with
    /// its arguments.
    Exec(String, Vec<String>),
}

impl Program {
    /// Which program `command` runs: leaklab for its subcommands (and
    /// options, and `leaklab ...`), the named program otherwise.
    pub fn of(command: &[String], is_leaklab_command: fn(&str) -> bool) -> Option<Self> {
        let (first, rest) = command.split_first()?;
        Some(if first == "leaklab" {
            Program::Leaklab(rest.to_vec())
        } else if is_leaklab_command(first) || first.starts_with('-') {
            Program::Leaklab(command.to_vec())
        } else {
            Program::Exec(first.clone(), rest.to_vec())
        })
    }

    /// The command line, words quoted as a shell would need them.
    pub fn display(&self) -> String {
        let (name, args) = match self {
            Program::Leaklab(args) => ("leaklab", args),
            Program::Exec(name, args) => (name.as_str(), args),
        };
        std::iter::once(name)
            .chain(args.iter().map(String::as_str))
            .map(quote)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// `word` as a shell reads it back: bare when it is safe so, else in single
/// quotes.
fn quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The guest command: [`COMMAND_FILE`]'s words, or `args`.
fn guest_command(args: Vec<String>) -> Vec<String> {
    match fs::read(COMMAND_FILE) {
        Ok(data) => command_words(&data),
        Err(_) => args,
    }
}

/// Puts busybox's applets (`sh`, `insmod`, `cat`, ...) in `/bin` as links
/// to it; says so when the initramfs has no busybox.
fn install_busybox() {
    if !std::path::Path::new(BUSYBOX).exists() {
        return;
    }
    match Command::new(BUSYBOX)
        .args(["--install", "-s", "/bin"])
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => {}
        Ok(out) => console_line(
            Tag::Init,
            &format!(
                "{BUSYBOX} --install -s /bin failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ),
        Err(e) => console_line(Tag::Init, &format!("running {BUSYBOX}: {e}")),
    }
}

/// Mounts, starts the command, relays its output and the kernel log, and
/// returns the command's exit status.
fn supervise(args: Vec<String>, is_leaklab_command: fn(&str) -> bool) -> i32 {
    mount_all();
    // Only this thread runs yet: the environment can change safely.
    std::env::set_var("PATH", PATH);
    std::env::set_var("HOME", "/root");
    install_busybox();
    let command = guest_command(args);
    let Some(program) = Program::of(&command, is_leaklab_command) else {
        console_line(Tag::Init, "no guest command given");
        return 2;
    };
    console_line(Tag::Init, &format!("running: {}", program.display()));
    let mut cmd = match &program {
        Program::Leaklab(args) => {
            let mut c = Command::new("/proc/self/exe");
            c.args(args);
            c
        }
        Program::Exec(name, args) => {
            let mut c = Command::new(name);
            c.args(args);
            c
        }
    };
    let (tx, rx) = mpsc::channel();
    relay_kmsg(tx.clone());
    let mut child = match cmd
        .env("LEAKLAB_GUEST", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            let (status, why) = match e.kind() {
                io::ErrorKind::NotFound if !std::path::Path::new(BUSYBOX).exists() => {
                    (127, format!("not found: the guest has no busybox (its shell and tools), only leaklab's commands and your --file files; PATH={PATH}"))
                }
                io::ErrorKind::NotFound => (127, format!("not found (PATH={PATH})")),
                _ => (126, e.to_string()),
            };
            let name = match &program {
                Program::Leaklab(_) => "leaklab",
                Program::Exec(name, _) => name,
            };
            console_line(Tag::Init, &format!("{name}: {why}"));
            return status;
        }
    };
    let mut open = 0;
    if let Some(out) = child.stdout.take() {
        relay_lines(out, Tag::Stdout, tx.clone());
        open += 1;
    }
    if let Some(err) = child.stderr.take() {
        relay_lines(err, Tag::Stderr, tx.clone());
        open += 1;
    }
    drop(tx);
    while open > 0 {
        match rx.recv() {
            Ok(Event::Line(tag, text)) => console_line(tag, &text),
            Ok(Event::Kernel(text)) => print_kernel(&text),
            Ok(Event::Closed) => open -= 1,
            Err(_) => break,
        }
    }
    let status = match child.wait() {
        Ok(s) => s.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&s).unwrap_or(0)
        }),
        Err(e) => {
            console_line(Tag::Init, &format!("waiting for the command: {e}"));
            2
        }
    };
    if let Ok(u) = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN) {
        console_line(
            Tag::Init,
            &format!("command's peak RSS: {} KiB", u.max_rss()),
        );
    }
    // Let the kernel log catch up with what the command did last.
    thread::sleep(std::time::Duration::from_millis(50));
    while let Ok(ev) = rx.try_recv() {
        if let Event::Kernel(text) = ev {
            print_kernel(&text);
        }
    }
    status
}

fn print_kernel(text: &str) {
    let line = format!("{text}\n");
    let _ = io::stdout().lock().write_all(line.as_bytes());
}

fn relay_lines(pipe: impl Read + Send + 'static, tag: Tag, tx: mpsc::Sender<Event>) {
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf);
                    let text = text.trim_end_matches(['\n', '\r']).to_string();
                    if tx.send(Event::Line(tag, text)).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = tx.send(Event::Closed);
    });
}

/// Relays kernel records below the console's direct level (the kernel prints
/// levels 0-3 itself under `loglevel=4`) as `[seconds] text` lines.
fn relay_kmsg(tx: mpsc::Sender<Event>) {
    let Ok(mut kmsg) = File::open("/dev/kmsg") else {
        console_line(
            Tag::Init,
            "cannot open /dev/kmsg: kernel messages are not relayed",
        );
        return;
    };
    thread::spawn(move || {
        let mut buf = vec![0u8; 8192];
        loop {
            let n = match kmsg.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                // EPIPE: records were overwritten before we read them.
                Err(e) if e.raw_os_error() == Some(nix::libc::EPIPE) => continue,
                Err(_) => break,
            };
            let record = String::from_utf8_lossy(&buf[..n]);
            if let Some(line) = format_kmsg(&record) {
                if tx.send(Event::Kernel(line)).is_err() {
                    break;
                }
            }
        }
    });
}

/// Formats one `/dev/kmsg` record (`prio,seq,usec,flags;text`) like dmesg,
/// or returns `None` for records the kernel already printed on the console.
pub fn format_kmsg(record: &str) -> Option<String> {
    let (header, body) = record.split_once(';')?;
    let mut fields = header.split(',');
    let prio: u32 = fields.next()?.parse().ok()?;
    let _seq = fields.next()?;
    let usec: u64 = fields.next()?.parse().ok()?;
    if prio & 7 < 4 {
        return None;
    }
    // Continuation lines (" KEY=value") carry dictionary data, not text.
    let text = body.lines().next().unwrap_or("");
    Some(format!(
        "[{:5}.{:06}] {}",
        usec / 1_000_000,
        usec % 1_000_000,
        text
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn leaklab_commands_run_leaklab_others_run_from_path() {
        let is_leaklab = |w: &str| ["census", "cycle", "matrix"].contains(&w);
        assert_eq!(
            Program::of(&words(&["census", "/lib/modules/x.ko"]), is_leaklab),
            Some(Program::Leaklab(words(&["census", "/lib/modules/x.ko"])))
        );
        assert_eq!(
            Program::of(&words(&["leaklab", "cycle", "-n", "3"]), is_leaklab),
            Some(Program::Leaklab(words(&["cycle", "-n", "3"])))
        );
        assert_eq!(
            Program::of(&words(&["--version"]), is_leaklab),
            Some(Program::Leaklab(words(&["--version"])))
        );
        let sh = Program::of(&words(&["sh", "-c", "echo 'a b'; exit 3"]), is_leaklab);
        assert_eq!(
            sh,
            Some(Program::Exec(
                "sh".into(),
                words(&["-c", "echo 'a b'; exit 3"])
            ))
        );
        assert_eq!(sh.unwrap().display(), r#"sh -c 'echo '\''a b'\''; exit 3'"#);
        assert_eq!(
            Program::of(
                &words(&["insmod", "/lib/modules/my.ko", "x=1", ""]),
                is_leaklab
            )
            .unwrap()
            .display(),
            "insmod /lib/modules/my.ko x=1 ''"
        );
        assert_eq!(Program::of(&[], is_leaklab), None);
    }

    #[test]
    fn tags_round_trip() {
        for tag in [Tag::Stdout, Tag::Stderr, Tag::Init, Tag::Exit] {
            let line = format!("{}hello world", tag.prefix());
            assert_eq!(Tag::split(&line), Some((tag, "hello world")));
        }
        assert_eq!(Tag::split("[    1.000000] kmemleak: ..."), None);
    }

    #[test]
    fn kmsg_records_are_formatted_and_filtered() {
        assert_eq!(
            format_kmsg(
                "6,339,5140900,-;kmemleak: Kernel memory leak detector initialized\n SUBSYSTEM=x"
            ),
            Some("[    5.140900] kmemleak: Kernel memory leak detector initialized".into())
        );
        // Level 3 (err) was printed by the kernel itself.
        assert_eq!(format_kmsg("3,1,10,-;oops"), None);
        // Facility bits above the level do not hide a record.
        assert!(format_kmsg("14,2,10,-;user message").is_some());
        assert_eq!(format_kmsg("garbage"), None);
    }
}
