// SPDX-License-Identifier: GPL-2.0
//! Writing the guest's initramfs: a newc cpio archive with `leaklab` as
//! `/init`, the modules under `/lib/modules`, busybox as `/bin/busybox` when
//! there is one, the user's own files (`leaklab vm --file`), the guest
//! command in [`COMMAND_FILE`], and the empty directories and `/dev/console`
//! that PID 1 needs before it mounts anything.

use std::{
    collections::BTreeSet,
    fs::{self, File},
    io::{BufWriter, Cursor, Write},
    os::unix::fs::PermissionsExt,
    path::{Component, Path, PathBuf},
};

use anyhow::{Context, Result};
use cpio::newc::{trailer, Builder};

/// Where the modules are in the guest.
pub const MODULE_DIR: &str = "/lib/modules";

/// Where busybox is in the guest; PID 1 installs its applets beside it.
pub const BUSYBOX: &str = "/bin/busybox";

/// The guest command's words, each ended by a NUL byte.
///
/// The command does not travel on the kernel command line: the kernel
/// splits that at spaces (only double quotes group words, and a word cannot
/// hold one), keeps at most 32 words for init, ends them at a second `--`,
/// and caps the whole line at 2048 bytes. `sh -c 'echo "a b"; exit 3'`
/// must arrive as three words, whatever they hold.
pub const COMMAND_FILE: &str = "/leaklab/command";

/// The directories every initramfs has.
const DIRS: [&str; 9] = [
    "/dev", "/proc", "/sys", "/tmp", "/lib", MODULE_DIR, "/bin", "/root", "/leaklab",
];

/// Directories PID 1 mounts a file system on: a file put there would be
/// hidden (see `init::mount_all`).
const MOUNTED: [(&str, &str); 4] = [
    ("/proc", "proc"),
    ("/sys", "sysfs"),
    ("/dev", "devtmpfs"),
    ("/tmp", "tmpfs"),
];

/// What goes into an initramfs.
#[derive(Debug, Clone)]
pub struct Contents {
    /// The static binary that becomes `/init` (and `/bin/leaklab`).
    pub init: PathBuf,
    /// Files placed under [`MODULE_DIR`] by their file name.
    pub modules: Vec<PathBuf>,
    /// A static busybox, placed at [`BUSYBOX`]: the guest's shell and tools.
    pub busybox: Option<PathBuf>,
    /// The user's own files.
    pub files: Vec<UserFile>,
}

/// A file of the user's for the guest (`leaklab vm --file SRC[:DEST]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFile {
    /// The file on the host.
    pub src: PathBuf,
    /// Its absolute path in the guest, normalized.
    pub dest: String,
}

impl UserFile {
    /// Reads `SRC[:DEST]` (split at the last `:`; DEST defaults to
    /// `/root/<file name>`, and a DEST ending in `/` is a directory that
    /// gets the file name), and checks that SRC is a file and that DEST is
    /// an absolute path the guest will show: not a place the initramfs
    /// itself fills (`/init`, `/lib/modules`, ...) nor one PID 1 mounts
    /// over (`/proc`, `/sys`, `/dev`, `/tmp`).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let fail = |why: String| format!("--file {spec}: {why}");
        let (src, dest) = match spec.rsplit_once(':') {
            Some((src, dest)) => (src, Some(dest)),
            None => (spec, None),
        };
        let src = PathBuf::from(src);
        match fs::metadata(&src) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Err(fail(format!("{} is not a file", src.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(fail(format!("{} does not exist", src.display())))
            }
            Err(e) => return Err(fail(format!("{}: {e}", src.display()))),
        }
        let name = src
            .file_name()
            .ok_or_else(|| fail(format!("{} has no file name", src.display())))?
            .to_string_lossy()
            .into_owned();
        let dest = match dest {
            None => format!("/root/{name}"),
            Some(d) if d.ends_with('/') => format!("{d}{name}"),
            Some(d) => d.to_string(),
        };
        let dest = guest_path(&dest).map_err(fail)?;
        Ok(Self { src, dest })
    }
}

/// `dest` as a normalized absolute guest path a user file may take.
fn guest_path(dest: &str) -> Result<String, String> {
    if !dest.starts_with('/') {
        return Err(format!(
            "DEST {dest:?} is not an absolute path in the guest (e.g. /root/x.sh)"
        ));
    }
    let mut parts = Vec::new();
    for c in Path::new(dest).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(format!("DEST {dest} may not hold '..'"))
            }
        }
    }
    let path = format!("/{}", parts.join("/"));
    let under = |dir: &str| path == dir || path.starts_with(&format!("{dir}/"));
    if path == "/init" {
        return Err("DEST /init would overwrite the guest's init (leaklab itself): choose another path (default /root/<file name>)".into());
    }
    if under(MODULE_DIR) {
        return Err(format!(
            "DEST {path} is in {MODULE_DIR}, which holds the modules: give a module with --module, other files another directory (default /root/<file name>)"
        ));
    }
    if under("/leaklab") {
        return Err(format!(
            "DEST {path} is in /leaklab, leaklab's own directory in the guest: choose another path (default /root/<file name>)"
        ));
    }
    if let Some((dir, fs)) = MOUNTED.iter().find(|(dir, _)| under(dir)) {
        return Err(format!(
            "DEST {path} is under {dir}, which the guest mounts {fs} on (it would be hidden): choose another directory, e.g. /root"
        ));
    }
    if path == "/" || DIRS.contains(&path.as_str()) {
        return Err(format!(
            "DEST {path} is a directory of the guest: name a file in it"
        ));
    }
    if path == BUSYBOX || path == "/bin/leaklab" {
        return Err(format!(
            "DEST {path} would overwrite the guest's own {path}: choose another path"
        ));
    }
    Ok(path)
}

/// Checks that no two of `files` take the same place.
pub fn check_distinct(files: &[UserFile]) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for f in files {
        if !seen.insert(f.dest.as_str()) {
            return Err(format!(
                "--file: two files for {} in the guest: give each its own DEST",
                f.dest
            ));
        }
    }
    Ok(())
}

/// Whether `contents` give the guest a program it can run as `word` (the
/// first word of a command that is not leaklab's): busybox, or a user file
/// at that path or on the guest's PATH.
pub fn provides(contents: &Contents, word: &str) -> bool {
    contents.busybox.is_some()
        || contents.files.iter().any(|f| {
            f.dest == word
                || ["/bin", "/sbin", "/usr/bin", "/usr/sbin"]
                    .iter()
                    .any(|d| f.dest == format!("{d}/{word}"))
        })
}

/// One archive being written: entries get the next inode number, and a
/// file's directories come before it, once.
struct Archive {
    w: BufWriter<File>,
    ino: u32,
    dirs: BTreeSet<String>,
}

impl Archive {
    fn entry(
        &mut self,
        path: &str,
        mode: u32,
        data: &[u8],
        rdev: Option<(u32, u32)>,
    ) -> Result<()> {
        let name = path.trim_start_matches('/');
        let mut b = Builder::new(name).ino(self.ino).mode(mode).nlink(1);
        if let Some((major, minor)) = rdev {
            b = b.rdev_major(major).rdev_minor(minor);
        }
        self.ino += 1;
        let len = u32::try_from(data.len()).context("file too large for cpio")?;
        let mut fw = b.write(&mut self.w, len);
        std::io::copy(&mut Cursor::new(data), &mut fw)?;
        fw.finish()?;
        Ok(())
    }

    /// `path`'s directories that are not in the archive yet, from the top.
    fn parents(&mut self, path: &str) -> Result<()> {
        let mut dir = String::new();
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        for p in &parts[..parts.len().saturating_sub(1)] {
            dir = format!("{dir}/{p}");
            if self.dirs.insert(dir.clone()) {
                self.entry(&dir, 0o040755, &[], None)?;
            }
        }
        Ok(())
    }

    fn dir(&mut self, path: &str) -> Result<()> {
        self.parents(&format!("{path}/x"))
    }

    fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<()> {
        self.parents(path)?;
        self.entry(path, 0o100000 | (mode & 0o7777), data, None)
    }

    fn host_file(&mut self, path: &str, mode: u32, src: &Path) -> Result<()> {
        let data = fs::read(src).with_context(|| format!("reading {}", src.display()))?;
        self.file(path, mode, &data)
    }
}

/// Writes the initramfs for `contents` and the guest command `command` to
/// `out`.
pub fn write(contents: &Contents, command: &[String], out: &Path) -> Result<()> {
    let file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut a = Archive {
        w: BufWriter::new(file),
        ino: 1,
        dirs: BTreeSet::new(),
    };
    for dir in DIRS {
        a.dir(dir)?;
    }
    a.entry("/dev/console", 0o020600, &[], Some((5, 1)))?;
    a.host_file("/init", 0o755, &contents.init)?;
    // `leaklab` by name for the guest's shell scripts.
    a.entry("/bin/leaklab", 0o120777, b"/init", None)?;
    if let Some(busybox) = &contents.busybox {
        a.host_file(BUSYBOX, 0o755, busybox)?;
    }
    for m in &contents.modules {
        let name = m
            .file_name()
            .with_context(|| format!("{} has no file name", m.display()))?
            .to_string_lossy();
        a.host_file(&format!("{MODULE_DIR}/{name}"), 0o644, m)?;
    }
    for f in &contents.files {
        let mode = fs::metadata(&f.src)
            .with_context(|| format!("reading {}", f.src.display()))?
            .permissions()
            .mode();
        a.host_file(&f.dest, mode, &f.src)?;
    }
    let mut words = Vec::new();
    for w in command {
        words.extend_from_slice(w.as_bytes());
        words.push(0);
    }
    a.file(COMMAND_FILE, 0o644, &words)?;
    trailer(&mut a.w)?;
    a.w.flush()?;
    Ok(())
}

/// The words of a [`COMMAND_FILE`]'s contents.
pub fn command_words(data: &[u8]) -> Vec<String> {
    data.split(|b| *b == 0)
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect::<Vec<_>>()
        .split_last()
        .map(|(_, words)| words.to_vec())
        .unwrap_or_default()
}

/// The `.ko` files in `dir`, sorted by name.
pub fn modules_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ko"))
        .collect();
    v.sort();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpio::NewcReader;

    /// A fresh directory for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("leaklab-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// An archive entry: name, mode, rdev, data.
    type Entry = (String, u32, (u32, u32), Vec<u8>);

    /// Every entry of the archive at `path`.
    fn entries(path: &Path) -> Vec<Entry> {
        let mut r = fs::File::open(path).unwrap();
        let mut seen = Vec::new();
        loop {
            let entry = NewcReader::new(r).unwrap();
            if entry.entry().is_trailer() {
                break;
            }
            let (name, mode, rdev) = (
                entry.entry().name().to_string(),
                entry.entry().mode(),
                (entry.entry().rdev_major(), entry.entry().rdev_minor()),
            );
            let mut data = Vec::new();
            let mut entry = entry;
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            seen.push((name, mode, rdev, data));
            r = entry.finish().unwrap();
        }
        seen
    }

    #[test]
    fn archive_holds_init_modules_busybox_files_command_and_console() {
        let dir = scratch("initramfs");
        let init = dir.join("leaklab");
        let ko = dir.join("leaklab.ko");
        let busybox = dir.join("busybox");
        let script = dir.join("poke.sh");
        fs::write(&init, b"\x7fELF-init").unwrap();
        fs::write(&ko, b"module bytes").unwrap();
        fs::write(&busybox, b"\x7fELF-busybox").unwrap();
        fs::write(&script, b"echo 1 > /sys/kernel/debug/my/kick\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o750)).unwrap();
        let out = dir.join("initramfs.cpio");
        let files = vec![
            UserFile::parse(script.to_str().unwrap()).unwrap(),
            UserFile::parse(&format!("{}:/usr/local/bin/poke", script.display())).unwrap(),
        ];
        let command = ["sh", "-c", "echo \"a b\"; exit 3", ""].map(String::from);
        write(
            &Contents {
                init,
                modules: vec![ko],
                busybox: Some(busybox),
                files,
            },
            &command,
            &out,
        )
        .unwrap();

        let seen = entries(&out);
        let find = |n: &str| {
            seen.iter()
                .find(|e| e.0 == n)
                .unwrap_or_else(|| panic!("{n} missing"))
        };
        assert_eq!(find("init").1, 0o100755);
        assert_eq!(find("init").3, b"\x7fELF-init");
        assert_eq!(find("bin/leaklab").1, 0o120777);
        assert_eq!(find("bin/leaklab").3, b"/init");
        assert_eq!(find("bin/busybox").1, 0o100755);
        assert_eq!(find("lib/modules/leaklab.ko").3, b"module bytes");
        assert_eq!(find("dev/console").2, (5, 1));
        assert_eq!(find("dev/console").1 & 0o170000, 0o020000);
        assert_eq!(find("root/poke.sh").1, 0o100750);
        assert_eq!(find("usr/local/bin/poke").1, 0o100750);
        // The parents come before the file, each once.
        let names: Vec<&str> = seen.iter().map(|e| e.0.as_str()).collect();
        let at = |n: &str| names.iter().position(|x| *x == n).unwrap();
        assert!(at("usr") < at("usr/local") && at("usr/local/bin") < at("usr/local/bin/poke"));
        assert_eq!(find("usr/local").1, 0o040755);
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        assert_eq!(command_words(&find("leaklab/command").3), command);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_busybox_there_is_no_shell() {
        let dir = scratch("initramfs-bare");
        let init = dir.join("leaklab");
        fs::write(&init, b"\x7fELF-init").unwrap();
        let out = dir.join("initramfs.cpio");
        let contents = Contents {
            init,
            modules: Vec::new(),
            busybox: None,
            files: Vec::new(),
        };
        write(&contents, &["census".to_string()], &out).unwrap();
        assert!(!entries(&out).iter().any(|e| e.0 == "bin/busybox"));
        assert!(!provides(&contents, "sh"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn command_words_round_trip() {
        assert_eq!(command_words(b""), Vec::<String>::new());
        assert_eq!(command_words(b"census\0"), ["census"]);
        assert_eq!(command_words(b"sh\0-c\0\0"), ["sh", "-c", ""]);
    }

    #[test]
    fn user_files_are_checked() {
        let dir = scratch("user-files");
        let src = dir.join("x.sh");
        fs::write(&src, b"exit 0\n").unwrap();
        let s = src.to_str().unwrap();
        let dest = |spec: &str| UserFile::parse(spec).map(|f| f.dest);
        assert_eq!(dest(s).unwrap(), "/root/x.sh");
        assert_eq!(dest(&format!("{s}:/opt/y.sh")).unwrap(), "/opt/y.sh");
        assert_eq!(dest(&format!("{s}:/opt/")).unwrap(), "/opt/x.sh");
        assert_eq!(dest(&format!("{s}://opt/./z")).unwrap(), "/opt/z");
        let refused = |spec: String, needle: &str| {
            let e = UserFile::parse(&spec).unwrap_err();
            assert!(e.contains(needle), "{spec}: {e:?} lacks {needle:?}");
            assert!(e.starts_with(&format!("--file {spec}: ")), "{e}");
            assert!(!e.contains('\n'), "{e}");
        };
        refused(
            format!("{}/missing.sh", dir.display()),
            "missing.sh does not exist",
        );
        refused(format!("{}:/root/d", dir.display()), "is not a file");
        refused(format!("{s}:root/x.sh"), "is not an absolute path");
        refused(format!("{s}:/init"), "would overwrite the guest's init");
        refused(
            format!("{s}:/lib/modules/my.ko"),
            "give a module with --module",
        );
        refused(format!("{s}:/lib/modules"), "give a module with --module");
        refused(format!("{s}:/leaklab/command"), "leaklab's own directory");
        refused(format!("{s}:/tmp/x.sh"), "mounts tmpfs on");
        refused(format!("{s}:/sys/kernel/debug/x"), "mounts sysfs on");
        refused(format!("{s}:/root/../init"), "may not hold '..'");
        refused(format!("{s}:/bin"), "is a directory");
        refused(
            format!("{s}:/bin/busybox"),
            "would overwrite the guest's own",
        );
        let twice = [UserFile::parse(s).unwrap(), UserFile::parse(s).unwrap()];
        assert!(check_distinct(&twice).unwrap_err().contains("/root/x.sh"));
        assert!(check_distinct(&twice[..1]).is_ok());
        let contents = Contents {
            init: src.clone(),
            modules: Vec::new(),
            busybox: None,
            files: vec![UserFile::parse(&format!("{s}:/bin/mytool")).unwrap()],
        };
        assert!(provides(&contents, "mytool"));
        assert!(provides(&contents, "/bin/mytool"));
        assert!(!provides(&contents, "sh"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
