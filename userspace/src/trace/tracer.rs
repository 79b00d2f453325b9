//! A tracefs instance of leaklab's own (`instances/leaklab-PID`): its own
//! ring buffer, options, events and triggers, so that nothing of the
//! system's tracing setup is touched; removing it puts tracefs back as it
//! was. A reader thread consumes its `trace_pipe` into a [`Ledger`] while
//! the run goes on.

use std::{
    fs,
    io::{ErrorKind, Read},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use super::{event, ledger::Ledger};
use crate::kernel::{interrupt, undo};

/// Where tracefs is mounted on kernels since 4.1.
pub const TRACEFS: &str = "/sys/kernel/tracing";

/// The allocation events: each gets the `stacktrace` trigger.
pub const ALLOC_EVENTS: &[&str] = &[
    "kmem/kmalloc",
    "kmem/kmem_cache_alloc",
    "kmem/mm_page_alloc",
    "percpu/percpu_alloc_percpu",
];

/// The free events: traced without stacks, from every task.
pub const FREE_EVENTS: &[&str] = &[
    "kmem/kfree",
    "kmem/kmem_cache_free",
    "kmem/mm_page_free",
    "kmem/mm_page_free_batched",
    "percpu/percpu_free_percpu",
];

/// Per-CPU ring buffer size used unless told otherwise (KiB).
pub const DEFAULT_BUFFER_KB: u64 = 16384;

/// How long what the modules hold must stay the same after the unload
/// before the trace is judged ([`Tracer::settle`]).
pub const QUIET: Duration = Duration::from_secs(3);
/// The longest [`Tracer::settle`] waits for deferred frees.
pub const SETTLE_MAX: Duration = Duration::from_secs(15);

/// `common_flags` of an event in hard or soft interrupt or NMI context
/// (`TRACE_FLAG_HARDIRQ | TRACE_FLAG_SOFTIRQ | TRACE_FLAG_NMI`,
/// include/linux/trace_events.h).
const IN_INTERRUPT: u32 = 0x08 | 0x10 | 0x40;

/// Set by the panic undo step: the reader stops at once.
static ABORT: AtomicBool = AtomicBool::new(false);

/// Whether this kernel can trace allocations: tracefs with the kmem and
/// percpu events. `Err` says what is missing and what to do.
pub fn supported() -> Result<()> {
    let Some(root) = mounted_tracefs() else {
        // Mounted by the run itself; the events are checked then.
        if Path::new(TRACEFS).is_dir() {
            return Ok(());
        }
        bail!("{TRACEFS} does not exist: the kernel is built without CONFIG_TRACING");
    };
    for e in ALLOC_EVENTS.iter().chain(FREE_EVENTS) {
        if !root.join("events").join(e).is_dir() {
            bail!(
                "the kernel has no trace event {e} (in {}): it needs CONFIG_EVENT_TRACING",
                root.display()
            );
        }
    }
    Ok(())
}

/// Where tracefs is mounted, if it is.
fn mounted_tracefs() -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 2 && f[2] == "tracefs").then(|| PathBuf::from(f[1]))
    })
}

fn write(path: &Path, value: &str) -> Result<()> {
    fs::write(path, value).with_context(|| format!("writing '{value}' to {}", path.display()))
}

/// What a run traced, once the tracer is gone.
#[derive(Debug)]
pub struct Traced {
    /// The allocations left open.
    pub ledger: Ledger,
    /// Events the ring buffer overwrote or dropped (`per_cpu/*/stats`), and
    /// those the reader saw announced as lost.
    pub lost: u64,
    /// Events read.
    pub events: u64,
}

/// The instance and its reader. Dropping it (also on an error or Ctrl-C)
/// stops the reader and removes the instance.
pub struct Tracer {
    dir: PathBuf,
    /// tracefs, when this run mounted it (unmounted at the end).
    mounted: Option<PathBuf>,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<Result<()>>>,
    markers: AtomicU64,
    noted: Option<undo::Noted>,
}

impl Tracer {
    /// Creates the instance with a ring buffer of `buffer_kb` KiB per CPU,
    /// enables the allocation events with stacks and the free events, and
    /// starts reading.
    pub fn start(buffer_kb: u64) -> Result<Self> {
        anyhow::ensure!(
            buffer_kb > 0,
            "the trace buffer needs at least 1 KiB per CPU"
        );
        let (root, mounted) = match mounted_tracefs() {
            Some(root) => (root, None),
            None => {
                nix::mount::mount(
                    Some("tracefs"),
                    TRACEFS,
                    Some("tracefs"),
                    nix::mount::MsFlags::empty(),
                    None::<&str>,
                )
                .with_context(|| {
                    format!(
                        "mounting tracefs at {TRACEFS} (a kernel without CONFIG_TRACING has none)"
                    )
                })?;
                (PathBuf::from(TRACEFS), Some(PathBuf::from(TRACEFS)))
            }
        };
        let dir = root
            .join("instances")
            .join(format!("leaklab-{}", std::process::id()));
        let unmount = mounted.clone();
        if let Err(e) = fs::create_dir(&dir) {
            if let Some(m) = &unmount {
                let _ = nix::mount::umount(m);
            }
            return Err(e).with_context(|| {
                format!(
                    "creating the tracefs instance {} (needs root and CONFIG_TRACING)",
                    dir.display()
                )
            });
        }
        ABORT.store(false, Ordering::SeqCst);
        let undo_dir = dir.clone();
        let noted = undo::note(
            format!("removed the tracefs instance {}", dir.display()),
            move || {
                ABORT.store(true, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(200));
                remove(&undo_dir, unmount.as_deref())
            },
        );
        let mut tracer = Self {
            dir,
            mounted,
            ledger: Arc::new(Mutex::new(Ledger::default())),
            stop: Arc::new(AtomicBool::new(false)),
            reader: None,
            markers: AtomicU64::new(0),
            noted: Some(noted),
        };
        // The reader first: its own reads allocate (page faults, the
        // ledger), and each event it read would make more to read. Its
        // events are filtered out by its thread id.
        let (reader, tid) = tracer.spawn_reader()?;
        tracer.reader = Some(reader);
        tracer.configure(buffer_kb, tid)?;
        undo::failpoint("trace-running");
        Ok(tracer)
    }

    /// Sets the instance up, leaving out the events of thread `reader`.
    fn configure(&self, buffer_kb: u64, reader: i32) -> Result<()> {
        let d = &self.dir;
        write(&d.join("tracing_on"), "0")?;
        write(&d.join("buffer_size_kb"), &buffer_kb.to_string())?;
        // Real addresses (frees are matched on them), symbols with offsets
        // and the raw return address of every frame (a module's frames stay
        // readable once it is gone).
        for (option, value) in [("hash-ptr", "0"), ("sym-addr", "1"), ("sym-offset", "1")] {
            let path = d.join("options").join(option);
            if path.exists() {
                write(&path, value)?;
            }
        }
        for e in ALLOC_EVENTS.iter().chain(FREE_EVENTS) {
            let event = d.join("events").join(e);
            if !event.is_dir() {
                bail!("the kernel has no trace event {e}: it needs CONFIG_EVENT_TRACING");
            }
            // In interrupt context (hard, soft: RCU callbacks; NMI) an
            // event carries whichever task was running, the reader too.
            let not_reader = format!("common_pid != {reader} || common_flags & {IN_INTERRUPT:#x}");
            write(&event.join("filter"), &not_reader)?;
            if ALLOC_EVENTS.contains(e) {
                // A filter of its own: an unfiltered trigger fires before
                // the event's filter is tested.
                write(
                    &event.join("trigger"),
                    &format!("stacktrace if {not_reader}"),
                )?;
            }
            write(&event.join("enable"), "1")?;
        }
        write(&d.join("tracing_on"), "1")
    }

    /// Starts the reader; returns it and its thread id.
    fn spawn_reader(&self) -> Result<(JoinHandle<Result<()>>, i32)> {
        let path = self.dir.join("trace_pipe");
        let mut pipe = fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let (ledger, stop) = (self.ledger.clone(), self.stop.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::Builder::new()
            .name("trace-reader".into())
            .spawn(move || {
                let _ = tx.send(nix::unistd::gettid().as_raw());
                let mut buf = vec![0u8; 1 << 16];
                let mut carry = Vec::new();
                loop {
                    if ABORT.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    match pipe.read(&mut buf) {
                        Ok(0) => std::thread::sleep(Duration::from_millis(10)),
                        Ok(n) => {
                            carry.extend_from_slice(&buf[..n]);
                            let Some(end) = carry.iter().rposition(|&b| b == b'\n') else {
                                continue;
                            };
                            let text = String::from_utf8_lossy(&carry[..end]).into_owned();
                            carry.drain(..=end);
                            let mut l = ledger.lock().unwrap_or_else(|p| p.into_inner());
                            for line in text.lines() {
                                l.apply(event::parse(line));
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            if stop.load(Ordering::SeqCst) {
                                return Ok(());
                            }
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(e).context("reading trace_pipe"),
                    }
                }
            })?;
        let tid = rx.recv().context("the trace reader did not start")?;
        Ok((reader, tid))
    }

    /// Returns once the reader has taken in every event up to now (a
    /// `trace_marker` write came through).
    ///
    /// A full ring buffer may overwrite the marker itself: once events were
    /// lost it is written again each second, and after three tries the
    /// reader is taken as caught up (the run is inconclusive anyway).
    pub fn sync(&self) -> Result<()> {
        let n = self.markers.fetch_add(1, Ordering::Relaxed);
        let marker = format!("leaklab-sync-{n}");
        let path = self.dir.join("trace_marker");
        write(&path, &marker)?;
        let until = Instant::now() + Duration::from_secs(20);
        let (mut written, mut tries) = (Instant::now(), 0);
        loop {
            if self.ledger().markers.contains(&marker) {
                return Ok(());
            }
            if self.reader.as_ref().is_none_or(JoinHandle::is_finished) {
                bail!("the trace reader stopped early");
            }
            if written.elapsed() >= Duration::from_secs(1) && self.lost() > 0 {
                if tries == 3 {
                    return Ok(());
                }
                write(&path, &marker)?;
                (written, tries) = (Instant::now(), tries + 1);
            }
            anyhow::ensure!(
                Instant::now() < until,
                "the trace reader fell 20 s behind: use a smaller workload or a larger --trace-buffer-kb"
            );
            interrupt::sleep(Duration::from_millis(5))?;
        }
    }

    /// Events lost so far: overwritten or dropped in a buffer, or announced
    /// lost to the reader.
    fn lost(&self) -> u64 {
        self.overruns().saturating_add(self.ledger().lost)
    }

    /// Lets deferred frees (RCU, kvfree_rcu, work items) land: polls
    /// `held` (what the modules still hold) until it has not changed for
    /// [`QUIET`], at most [`SETTLE_MAX`].
    pub fn settle(&self, held: impl Fn(&Ledger) -> usize) -> Result<()> {
        let start = Instant::now();
        let (mut last, mut since) = (usize::MAX, Instant::now());
        while start.elapsed() < SETTLE_MAX {
            self.sync()?;
            let now = held(&self.ledger());
            if now != last {
                (last, since) = (now, Instant::now());
            } else if since.elapsed() >= QUIET {
                break;
            }
            interrupt::sleep(Duration::from_millis(100))?;
        }
        Ok(())
    }

    /// The ledger as read so far (call [`Tracer::sync`] first for an
    /// up-to-date one).
    pub fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops tracing, reads what is left, counts the events lost, and
    /// removes the instance.
    pub fn finish(mut self) -> Result<Traced> {
        self.sync()?;
        write(&self.dir.join("tracing_on"), "0")?;
        let overrun = self.overruns();
        self.stop_reader()?;
        let ledger = std::mem::take(&mut *self.ledger());
        self.remove()?;
        Ok(Traced {
            lost: overrun.saturating_add(ledger.lost),
            events: ledger.events,
            ledger,
        })
    }

    /// Events overwritten (`overrun:`) or dropped (`dropped events:`) in
    /// any CPU's buffer.
    fn overruns(&self) -> u64 {
        let Ok(cpus) = fs::read_dir(self.dir.join("per_cpu")) else {
            return 0;
        };
        cpus.flatten()
            .filter_map(|c| fs::read_to_string(c.path().join("stats")).ok())
            .flat_map(|s| {
                s.lines()
                    .filter_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        matches!(k.trim(), "overrun" | "dropped events")
                            .then(|| v.trim().parse::<u64>().ok())?
                    })
                    .collect::<Vec<_>>()
            })
            .sum()
    }

    fn stop_reader(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        match self.reader.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => bail!("the trace reader panicked"),
            None => Ok(()),
        }
    }

    fn remove(&mut self) -> Result<()> {
        let r = remove(&self.dir, self.mounted.take().as_deref());
        self.noted = None;
        r
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if self.noted.is_some() {
            let _ = self.stop_reader();
            if let Err(e) = self.remove() {
                eprintln!("leaklab: {e:#}");
            }
        }
    }
}

/// Disables the instance's events and removes it (retrying while a reader
/// still holds its pipe), then unmounts tracefs if this run mounted it.
fn remove(dir: &Path, mounted: Option<&Path>) -> Result<()> {
    let _ = write(&dir.join("tracing_on"), "0");
    let _ = write(&dir.join("events").join("enable"), "0");
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => break,
            Err(e) if e.kind() == ErrorKind::NotFound => break,
            Err(e) if Instant::now() < until && e.raw_os_error() == Some(nix::libc::EBUSY) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "removing the tracefs instance {}: rmdir it by hand",
                        dir.display()
                    )
                })
            }
        }
    }
    if let Some(m) = mounted {
        nix::mount::umount(m)
            .with_context(|| format!("unmounting tracefs from {}", m.display()))?;
    }
    Ok(())
}
