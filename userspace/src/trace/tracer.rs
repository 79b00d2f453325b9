//! A tracefs instance of leaklab's own (`instances/leaklab-PID`): its own
//! ring buffer, options, events and triggers, so that nothing of the
//! system's tracing setup is touched; removing it puts tracefs back as it
//! was. A reader thread consumes each CPU's `trace_pipe_raw` (binary
//! pages: no formatting in the kernel, no text to parse) into a [`Ledger`],
//! in timestamp order across the CPUs, while the run goes on.

use std::{
    collections::{HashMap, VecDeque},
    fs::{self, File},
    io::{ErrorKind, Read},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Condvar, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use super::{
    event::{Decoder, Event},
    kallsyms::Kallsyms,
    ledger::{Allocation, Ledger},
    page::{self, Layout},
    vmalloc,
};
use crate::{
    kernel::{
        interrupt,
        setting::Changed,
        tracefs::{self, write},
        undo,
    },
    kmemleak::report::{Frame, Report},
};

pub use crate::kernel::tracefs::TRACEFS;

/// Whether normal RCU grace periods are expedited (1) or not (0).
const RCU_EXPEDITED: &str = "/sys/kernel/rcu_expedited";

/// Per-CPU ring buffer size (KiB) an instance gets unless told otherwise,
/// at least. The kernel's own (1.4 MiB) held the bursts between two reads
/// on 6.12 (a sample run 2000 times in one write). Debian's 6.1 once
/// traced twenty times the events of a check (65 k against 3 k): the
/// init probe's tracefs instance, made while the trace ran, got every
/// event's files anew (no eventfs before 6.6) and freed them by RCU; the
/// probe is now armed before the trace starts. The margin stays for
/// kernels that trace more than these.
pub const MIN_BUFFER_KB: u64 = 8192;

/// Where no RCU barrier can be made ([`Tracer::rcu_barrier`]): how long
/// what the modules hold must stay the same after the unload before the
/// trace is judged ([`Tracer::settle`]). A grace period is a few jiffies.
pub const QUIET: Duration = Duration::from_millis(500);
/// The longest [`Tracer::settle`] waits for deferred frees.
pub const SETTLE_MAX: Duration = Duration::from_secs(15);

/// `common_flags` of an event in hard or soft interrupt or NMI context
/// (`TRACE_FLAG_HARDIRQ | TRACE_FLAG_SOFTIRQ | TRACE_FLAG_NMI`,
/// include/linux/trace_events.h).
const IN_INTERRUPT: u32 = 0x08 | 0x10 | 0x40;

/// The filter of every event: not the reader's own, unless in interrupt
/// context (hard, soft: RCU callbacks; NMI), where an event carries
/// whichever task was running, the reader too.
fn reader_filter(reader: i32) -> String {
    format!("common_pid != {reader} || common_flags & {IN_INTERRUPT:#x}")
}

/// Where kmemleak runs: its cache of metadata objects, in sysfs (SLUB) or
/// beside its debugfs file.
const KMEMLEAK_CACHE: [&str; 2] = [
    "/sys/kernel/slab/kmemleak_object",
    "/sys/kernel/debug/kmemleak",
];

/// kmemleak's own metadata, left out of the trace in the kernel (events,
/// filters): an object for every allocation, which doubles what is traced
/// and unwound. By event, the exclusions in the order tried (a refused
/// one costs a grace period when the next replaces it): the allocation's
/// caller is the function that allocates kmemleak's objects
/// (`mem_pool_alloc()`, inlined into `__alloc_object()` in the 6.12 builds
/// here, both static in mm/kmemleak.c; debugobjects' `__alloc_object()`,
/// should the name resolve to it, takes objects from a list and never
/// calls the slab); a free, by its cache's name. A kernel that refuses
/// both keeps them, and they are told apart by their frames
/// ([`super::internal`]).
const KMEMLEAK_OWN: [(&str, &str); 3] = [
    (
        "kmem/kmem_cache_alloc",
        "call_site.function != mem_pool_alloc",
    ),
    (
        "kmem/kmem_cache_alloc",
        "call_site.function != __alloc_object",
    ),
    ("kmem/kmem_cache_free", "name != \"kmemleak_object\""),
];

/// The event whose filter [`Tracer::rcu_barrier`] writes again.
const BARRIER_EVENT: &str = "kmem/kfree";

/// Set by the panic undo step: the reader stops at once.
static ABORT: AtomicBool = AtomicBool::new(false);

/// Whether this kernel can trace allocations: tracefs with the kmem,
/// percpu and ftrace events the reader decodes ([`Decoder::load`]). `Err`
/// says what is missing and what to do.
pub fn supported() -> Result<()> {
    let Some(root) = tracefs::mounted() else {
        // Mounted by the run itself; the events are checked then.
        if Path::new(TRACEFS).is_dir() {
            return Ok(());
        }
        bail!("{TRACEFS} does not exist: the kernel is built without CONFIG_TRACING");
    };
    Decoder::load(&root.join("events"), None).map(|_| ())
}

/// The CPUs a list such as `/sys/devices/system/cpu/online` names
/// (`0-3,6`), if it parses.
fn cpu_list(text: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
        if b < a || b - a > 4096 {
            return None;
        }
        cpus.extend(a..=b);
    }
    (!cpus.is_empty()).then_some(cpus)
}

/// A file that must be read in one call (tracefs's `header_page` answers
/// a read past its start with nothing).
fn read_at_once(path: &Path) -> Result<String> {
    let mut buf = vec![0u8; 1 << 16];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut buf))
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
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

/// The trampolines a return probe's handler runs from (x86_64 and arm64,
/// 6.1 to 6.12): a stack taken there has the probe's frames up to it.
const RETURN_TRAMPOLINES: [&str; 3] = [
    "arch_rethook_trampoline",
    "__kretprobe_trampoline",
    "kretprobe_trampoline",
];

/// The event's own code a stack may start with (seen in Debian's 6.12: the
/// event's `trace_event_raw_event_kmalloc` above `__kmalloc_cache_noprof`).
const TRACING: [&str; 3] = [
    "trace_event_raw_event_",
    "__traceiter_",
    "event_triggers_call",
];

/// Names for what the trace holds: kernel functions by return address
/// (`/proc/kallsyms`), tasks by pid (tracefs `saved_cmdlines`).
#[derive(Debug, Clone, Default)]
pub struct Names {
    kallsyms: Arc<Kallsyms>,
    comms: HashMap<u32, String>,
}

impl Names {
    /// Allocation `a` as a report: its frames named, except those
    /// `in_module` claims (a module's, resolved from its own object file
    /// later), and its task named.
    pub fn report(&self, a: &Allocation, in_module: impl Fn(u64) -> bool) -> Report {
        let frame = |address| match in_module(address) {
            true => Frame {
                raw: format!("{address:#x}"),
                address: Some(address),
                symbol: None,
                offset: None,
                module: None,
            },
            false => self.kallsyms.frame(address),
        };
        let mut r = a.report(frame, self.comms.get(&a.origin.pid).cloned());
        // A return probe's stack starts in the probe's own machinery, and
        // some kernels' stacks in the event's own code.
        let symbol = |f: &Frame| f.symbol.clone().unwrap_or_default();
        let tracing = match r
            .frames
            .iter()
            .rposition(|f| RETURN_TRAMPOLINES.contains(&symbol(f).as_str()))
        {
            Some(i) => i + 1,
            None => r
                .frames
                .iter()
                .take_while(|f| TRACING.iter().any(|t| symbol(f).starts_with(t)))
                .count(),
        };
        r.frames.drain(..tracing);
        r
    }

    /// The allocator that made `a` for its own use on behalf of the code
    /// `in_module` claims, if one did ([`super::internal`]): read from the
    /// kernel's frames before the first module frame, without naming them
    /// all.
    pub fn internal(
        &self,
        a: &Allocation,
        in_module: impl Fn(u64) -> bool,
    ) -> Option<&'static str> {
        let kernel_frames = a
            .stack
            .iter()
            .take_while(|&&x| !in_module(x))
            .map_while(|&x| self.kallsyms.lookup(x))
            .take_while(|(_, _, module)| module.is_none())
            .map(|(name, _, _)| name);
        super::internal(a.space, kernel_frames)
    }
}

/// `pid comm` lines of tracefs's `saved_cmdlines`.
fn saved_cmdlines(text: &str) -> HashMap<u32, String> {
    text.lines()
        .filter_map(|l| {
            let (pid, comm) = l.split_once(' ')?;
            Some((pid.parse().ok()?, comm.trim().to_string()))
        })
        .collect()
}

/// The kernel's symbols, read in a thread of their own while the run goes
/// on; taken when first needed.
enum Symbols {
    Reading(JoinHandle<Result<Kallsyms>>),
    Read(Arc<Kallsyms>),
}

/// The instance and its reader. Dropping it (also on an error or Ctrl-C)
/// stops the reader and removes the instance.
pub struct Tracer {
    /// Where tracefs is mounted.
    root: PathBuf,
    dir: PathBuf,
    /// tracefs, when this run mounted it (unmounted at the end).
    mounted: Option<PathBuf>,
    ledger: Arc<Mutex<Ledger>>,
    /// Notified by the reader each time it took records into the ledger.
    taken: Arc<Condvar>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<Result<()>>>,
    markers: AtomicU64,
    /// The events' filter, once set.
    filter: std::sync::OnceLock<String>,
    symbols: Mutex<Option<Symbols>>,
    /// The vmalloc probes, where the kernel took them.
    vmalloc: Option<vmalloc::Probes>,
    noted: Option<undo::Noted>,
}

impl Tracer {
    /// Creates the instance with a ring buffer of `buffer_kb` KiB per CPU
    /// (`None`: the kernel's own, at least [`MIN_BUFFER_KB`]), enables the
    /// allocation events with stacks and the free events, and starts
    /// reading.
    pub fn start(buffer_kb: Option<u64>) -> Result<Self> {
        anyhow::ensure!(
            buffer_kb != Some(0),
            "the trace buffer needs at least 1 KiB per CPU"
        );
        // Read while the run goes on; needed only to name what is found.
        let symbols = std::thread::Builder::new()
            .name("kallsyms".into())
            .spawn(Kallsyms::read)
            .context("starting a thread")?;
        let (root, mounted) = tracefs::mount()?;
        let vmalloc = vmalloc::Probes::add(&root);
        let dir = root
            .join("instances")
            .join(format!("leaklab-{}", std::process::id()));
        let unmount = mounted.clone();
        if let Err(e) = fs::create_dir(&dir) {
            if let Some(p) = &vmalloc {
                p.remove();
            }
            if let Some(m) = &unmount {
                let _ = tracefs::unmount(m);
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
        let undo_probes = vmalloc.clone();
        let noted = undo::note(
            format!("removed the tracefs instance {}", dir.display()),
            move || {
                ABORT.store(true, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(200));
                remove(&undo_dir, undo_probes.as_ref(), unmount.as_deref())
            },
        );
        let mut tracer = Self {
            root,
            dir,
            mounted,
            ledger: Arc::new(Mutex::new(Ledger::default())),
            taken: Arc::new(Condvar::new()),
            stop: Arc::new(AtomicBool::new(false)),
            reader: None,
            markers: AtomicU64::new(0),
            filter: std::sync::OnceLock::new(),
            symbols: Mutex::new(Some(Symbols::Reading(symbols))),
            vmalloc,
            noted: Some(noted),
        };
        // The reader first: its own reads allocate (page faults, the
        // ledger), and each event it read would make more to read. Its
        // events are filtered out by its thread id.
        tracer.reader = Some(tracer.spawn_reader(buffer_kb)?);
        undo::failpoint("trace-running");
        Ok(tracer)
    }

    /// Enables the events, each with filter `not_reader` (and, where
    /// kmemleak runs, without its own metadata: [`KMEMLEAK_OWN`]).
    fn configure(&self, not_reader: &str) -> Result<()> {
        let d = &self.dir;
        let kmemleak = KMEMLEAK_CACHE.iter().any(|p| Path::new(p).exists());
        // Each event's format was read by the reader's decoder.
        for e in Decoder::allocation_events().chain(Decoder::free_events()) {
            let event = d.join("events").join(e);
            let own = KMEMLEAK_OWN.iter().filter(|(on, _)| kmemleak && *on == e);
            // The first exclusion the kernel takes (a function it does not
            // know is refused), else none.
            let filter = own
                .map(|(_, not)| format!("({not_reader}) && {not}"))
                .find(|f| fs::write(event.join("filter"), f).is_ok());
            let filter = match filter {
                Some(f) => f,
                None => {
                    write(&event.join("filter"), not_reader)?;
                    not_reader.to_string()
                }
            };
            if Decoder::allocation_events().any(|a| a == e) {
                // A filter of its own: an unfiltered trigger fires before
                // the event's filter is tested.
                write(&event.join("trigger"), &format!("stacktrace if {filter}"))?;
            }
            write(&event.join("enable"), "1")?;
        }
        for (e, stack) in self.vmalloc.iter().flat_map(vmalloc::Probes::events) {
            let event = d.join("events").join(e);
            write(&event.join("filter"), not_reader)?;
            if stack {
                write(
                    &event.join("trigger"),
                    &format!("stacktrace if {not_reader}"),
                )?;
            }
            write(&event.join("enable"), "1")?;
        }
        write(&d.join("tracing_on"), "1")
    }

    /// Sets the instance up with `buffer_kb` KiB per CPU (`None`: as
    /// [`Tracer::start`] says), starts the reader on every CPU's
    /// `trace_pipe_raw`, and enables the events without the reader's own.
    fn spawn_reader(&self, buffer_kb: Option<u64>) -> Result<JoinHandle<Result<()>>> {
        let events = self.dir.join("events");
        let decoder = Decoder::load(&events, self.vmalloc.as_ref().map(|p| p.group.as_str()))?;
        let layout = read_at_once(&events.join("header_page"))
            .and_then(|t| Layout::parse(&t))
            .context("reading the ring buffer's header_page")?;
        // Sized before the files are opened: the buffers are made anew.
        write(&self.dir.join("tracing_on"), "0")?;
        let size = self.dir.join("buffer_size_kb");
        let kernels = fs::read_to_string(&size)
            .ok()
            .and_then(|kb| kb.trim().parse::<u64>().ok());
        let wanted = match (buffer_kb, kernels) {
            (Some(kb), _) => Some(kb),
            (None, Some(kb)) if kb >= MIN_BUFFER_KB => None,
            (None, _) => Some(MIN_BUFFER_KB),
        };
        if let Some(kb) = wanted.filter(|&kb| Some(kb) != kernels) {
            write(&size, &kb.to_string())?;
        }
        let page_bytes = fs::read_to_string(self.dir.join("buffer_subbuf_size_kb"))
            .ok()
            .and_then(|kb| kb.trim().parse::<usize>().ok())
            .map_or(4096, |kb| kb * 1024);
        let cpus = CpuBuffer::open_all(&self.dir)?;
        let (ledger, stop) = (self.ledger.clone(), self.stop.clone());
        let taken = self.taken.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::Builder::new()
            .name("trace-reader".into())
            .spawn(move || {
                let _ = tx.send(nix::unistd::gettid().as_raw());
                let mut reader = Reader {
                    cpus,
                    decoder,
                    layout,
                    page: vec![0u8; page_bytes.max(4096)],
                };
                loop {
                    if ABORT.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    let stopping = stop.load(Ordering::SeqCst);
                    let read = reader.round(&ledger)?;
                    if read > 0 {
                        taken.notify_all();
                    } else if stopping {
                        return Ok(());
                    } else {
                        // Read in batches, not woken by each record (a
                        // poll would be: an interrupt per event); a sync
                        // wakes it at once ([`Tracer::sync`]).
                        std::thread::park_timeout(Duration::from_millis(5));
                    }
                }
            })?;
        let tid = rx.recv().context("the trace reader did not start")?;
        let filter = self.filter.get_or_init(|| reader_filter(tid));
        self.configure(filter)?;
        Ok(reader)
    }

    /// Runs `f` with tracing off (work whose events cannot matter: nothing
    /// of a module's exists yet), and turns it on again.
    pub fn paused<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let on = self.dir.join("tracing_on");
        write(&on, "0")?;
        let result = f();
        write(&on, "1")?;
        result
    }

    /// Marks this point of the trace with `text`, without waiting for the
    /// reader: the ledger keeps where each mark fell among the events
    /// ([`Ledger::markers`]).
    pub fn mark(&self, text: &str) -> Result<()> {
        write(&self.dir.join("trace_marker"), text)
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
        if let Some(r) = &self.reader {
            r.thread().unpark();
        }
        let until = Instant::now() + Duration::from_secs(20);
        let (mut written, mut tries) = (Instant::now(), 0);
        loop {
            let lost = {
                let ledger = self.ledger();
                if ledger.markers.iter().any(|(m, _)| *m == marker) {
                    return Ok(());
                }
                // Woken as soon as the reader took records in; the next
                // turn looks for the marker.
                let (ledger, _) = self
                    .taken
                    .wait_timeout(ledger, Duration::from_millis(5))
                    .unwrap_or_else(|p| p.into_inner());
                ledger.lost
            };
            interrupt::check()?;
            if self.reader.as_ref().is_none_or(JoinHandle::is_finished) {
                bail!("the trace reader stopped early");
            }
            if written.elapsed() >= Duration::from_secs(1)
                && self.overruns().saturating_add(lost) > 0
            {
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
        }
    }

    /// Lets deferred frees (RCU callbacks, work items) land: until `held`
    /// (what the modules still hold) stays the same across an RCU barrier
    /// ([`Tracer::rcu_barrier`]; this thread sleeps through each barrier's
    /// grace periods, so the work items that the callbacks before it queued
    /// (`queue_rcu_work()`) run meanwhile, and what they free shows as a
    /// change); where the kernel gives no barrier, until it has not changed
    /// for [`QUIET`]. At most [`SETTLE_MAX`].
    pub fn settle(&self, held: impl Fn(&Ledger) -> usize) -> Result<()> {
        let start = Instant::now();
        let mut last = usize::MAX;
        while start.elapsed() < SETTLE_MAX && self.rcu_barrier()? {
            self.sync()?;
            let now = held(&self.ledger());
            if now == last {
                return Ok(());
            }
            last = now;
        }
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

    /// Waits until the RCU callbacks queued on every online CPU before now
    /// have run, as `rcu_barrier()` would; `false` where that cannot be
    /// done from here.
    ///
    /// On each CPU in turn this thread writes one event's filter again (the
    /// same filter): the kernel then waits for a grace period before it
    /// frees the old one (`apply_event_filter()` calls
    /// `tracepoint_synchronize_unregister()`), and a normal grace period's
    /// waiter is a callback queued on the calling CPU (`synchronize_rcu()`
    /// through `wait_rcu_gp(call_rcu_hurry)`), which runs after the ones
    /// queued there before it. Not so when grace periods are expedited or
    /// `rcutree.rcu_normal_wake_from_gp` is set, nor on a CPU this thread
    /// may not run on.
    fn rcu_barrier(&self) -> Result<bool> {
        let set = |p: &str| fs::read_to_string(p).is_ok_and(|v| matches!(v.trim(), "1" | "Y"));
        if set(RCU_EXPEDITED) || set("/sys/module/rcutree/parameters/rcu_normal_wake_from_gp") {
            return Ok(false);
        }
        let Some(online) = fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()
            .and_then(|l| cpu_list(&l))
        else {
            return Ok(false);
        };
        use nix::{sched, unistd::Pid};
        let me = Pid::from_raw(0);
        let original = sched::sched_getaffinity(me).context("reading this thread's CPUs")?;
        let filter = self.dir.join("events").join(BARRIER_EVENT).join("filter");
        let again = self.filter.get().context("the trace was not configured")?;
        let mut all = true;
        for cpu in online {
            let mut one = sched::CpuSet::new();
            if one.set(cpu).is_err() || sched::sched_setaffinity(me, &one).is_err() {
                all = false;
                break;
            }
            // A filter that cannot be written again leaves the quiet period.
            if write(&filter, again).is_err() {
                all = false;
                break;
            }
        }
        sched::sched_setaffinity(me, &original).context("restoring this thread's CPUs")?;
        Ok(all)
    }

    /// Names for the trace's stacks and tasks (waits for the kernel's
    /// symbols the first time).
    pub fn names(&self) -> Result<Names> {
        let mut symbols = self.symbols.lock().unwrap_or_else(|p| p.into_inner());
        let kallsyms = match symbols.take() {
            Some(Symbols::Read(k)) => k,
            Some(Symbols::Reading(thread)) => match thread.join() {
                Ok(k) => Arc::new(k?),
                Err(_) => bail!("reading the kernel's symbols panicked"),
            },
            None => bail!("the kernel's symbols could not be read"),
        };
        *symbols = Some(Symbols::Read(kallsyms.clone()));
        let comms = fs::read_to_string(self.root.join("saved_cmdlines"))
            .map(|t| saved_cmdlines(&t))
            .unwrap_or_default();
        Ok(Names { kallsyms, comms })
    }

    /// The number of the last event read so far (call [`Tracer::sync`]
    /// first for the last one up to now): later allocations have a higher
    /// [`Allocation::seq`].
    pub fn seq(&self) -> u64 {
        self.ledger().events
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
        // The reader drains what is left, then ends.
        self.stop.store(true, Ordering::SeqCst);
        if let Some(r) = &self.reader {
            r.thread().unpark();
        }
        match self.reader.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => bail!("the trace reader panicked"),
            None => Ok(()),
        }
    }

    /// Whether vmalloc areas are traced (by kprobe events); where they are
    /// not, `/proc/vmallocinfo` tells them ([`vmalloc::Loads`]).
    pub fn traces_vmalloc(&self) -> bool {
        self.vmalloc.is_some()
    }

    fn remove(&mut self) -> Result<()> {
        let r = remove(
            &self.dir,
            self.vmalloc.as_ref(),
            self.mounted.take().as_deref(),
        );
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

/// Pages read from one CPU in a round, at most: the others are read too
/// before any of it is taken in.
const PAGES_PER_ROUND: usize = 256;

/// One CPU's `trace_pipe_raw` and what was read of it and not yet taken
/// in.
struct CpuBuffer {
    cpu: u32,
    file: File,
    pending: VecDeque<(u64, Event)>,
    /// The time of the last record read.
    last: u64,
    /// Whether the last read found it empty.
    drained: bool,
}

impl CpuBuffer {
    /// Opens `per_cpu/cpuN/trace_pipe_raw` of every CPU of the instance.
    fn open_all(dir: &Path) -> Result<Vec<Self>> {
        let per_cpu = dir.join("per_cpu");
        let mut cpus = Vec::new();
        for entry in fs::read_dir(&per_cpu)
            .with_context(|| format!("listing {}", per_cpu.display()))?
            .flatten()
        {
            let name = entry.file_name();
            let Some(cpu) = name
                .to_str()
                .and_then(|n| n.strip_prefix("cpu"))
                .and_then(|n| n.parse().ok())
            else {
                continue;
            };
            let path = entry.path().join("trace_pipe_raw");
            let file = fs::OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_NONBLOCK)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            cpus.push(Self {
                cpu,
                file,
                pending: VecDeque::new(),
                last: 0,
                drained: false,
            });
        }
        if cpus.is_empty() {
            bail!("{} lists no CPU", per_cpu.display());
        }
        Ok(cpus)
    }
}

/// The reader thread's state: every CPU's buffer, and how to read them.
struct Reader {
    cpus: Vec<CpuBuffer>,
    decoder: Decoder,
    layout: Layout,
    page: Vec<u8>,
}

impl Reader {
    /// Reads what every CPU has (up to [`PAGES_PER_ROUND`] pages each) and
    /// takes what it can into `ledger` ([`take_in`]). Returns the pages
    /// read.
    fn round(&mut self, ledger: &Mutex<Ledger>) -> Result<usize> {
        let mut pages = 0;
        for c in &mut self.cpus {
            c.drained = false;
            for _ in 0..PAGES_PER_ROUND {
                let n = match c.file.read(&mut self.page) {
                    Ok(0) => 0,
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(e).with_context(|| format!("reading CPU {}'s trace", c.cpu))
                    }
                };
                if n == 0 {
                    c.drained = true;
                    break;
                }
                pages += 1;
                let (decoder, cpu) = (&self.decoder, c.cpu);
                let (pending, last) = (&mut c.pending, &mut c.last);
                let p = page::read(&self.layout, &self.page[..n], |ts, record| {
                    *last = ts;
                    match decoder.decode(cpu, record) {
                        Event::Other => {}
                        e => pending.push_back((ts, e)),
                    }
                });
                if p.missed > 0 {
                    c.pending.push_front((0, Event::Lost(p.missed)));
                }
            }
        }
        take_in(
            &mut self.cpus,
            &mut ledger.lock().unwrap_or_else(|p| p.into_inner()),
        );
        Ok(pages)
    }
}

/// Takes into `ledger`, oldest first across the CPUs, every record read
/// that no CPU can still precede: up to the last one read of any CPU whose
/// buffer was not read empty.
fn take_in(cpus: &mut [CpuBuffer], ledger: &mut Ledger) {
    let until = cpus
        .iter()
        .filter(|c| !c.drained)
        .map(|c| c.last)
        .min()
        .unwrap_or(u64::MAX);
    loop {
        let next = cpus
            .iter_mut()
            .filter(|c| c.pending.front().is_some_and(|e| e.0 <= until))
            .min_by_key(|c| c.pending.front().map(|e| e.0));
        match next.and_then(|c| c.pending.pop_front()) {
            Some((_, e)) => ledger.apply(e),
            None => break,
        }
    }
}

/// Disables the instance's events and removes it (retrying while a reader
/// still holds its pipe), takes its vmalloc probes away, then unmounts
/// tracefs if this run mounted it.
fn remove(dir: &Path, probes: Option<&vmalloc::Probes>, mounted: Option<&Path>) -> Result<()> {
    let _ = write(&dir.join("tracing_on"), "0");
    let _ = write(&dir.join("events").join("enable"), "0");
    // The removal waits for a grace period per trigger and per filter (ten
    // or so): expedited, they take a tenth of the time (0.03 s against
    // 0.15 s on one TCG vCPU). The setting is put back after.
    let _expedited = Changed::to(RCU_EXPEDITED, "1");
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
    if let Some(p) = probes {
        p.remove();
    }
    if let Some(m) = mounted {
        tracefs::unmount(m)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::event::{Origin, Space};

    #[test]
    fn a_cpu_list_names_each_cpu_of_its_ranges() {
        assert_eq!(cpu_list("0\n"), Some(vec![0]));
        assert_eq!(cpu_list("0-3,6"), Some(vec![0, 1, 2, 3, 6]));
        assert_eq!(cpu_list(""), None);
        assert_eq!(cpu_list("3-1"), None);
        assert_eq!(cpu_list("a"), None);
        assert_eq!(cpu_list("0-99999999"), None);
    }

    fn cpu(cpu: u32, pending: &[(u64, Event)], last: u64, drained: bool) -> CpuBuffer {
        CpuBuffer {
            cpu,
            file: File::open("/dev/null").unwrap(),
            pending: pending.iter().cloned().collect(),
            last,
            drained,
        }
    }

    fn alloc(cpu: u32, key: u64) -> Event {
        Event::Alloc {
            origin: Origin {
                pid: 1,
                cpu,
                context: Default::default(),
            },
            space: Space::Slab,
            key,
            bytes: 64,
        }
    }

    fn free(cpu: u32, key: u64) -> Event {
        Event::Free {
            origin: Origin {
                pid: 1,
                cpu,
                context: Default::default(),
            },
            space: Space::Slab,
            key,
        }
    }

    #[test]
    fn records_are_taken_in_time_order_across_cpus() {
        // Allocated on CPU 0, freed on CPU 1, allocated again on CPU 1:
        // taken CPU by CPU (CPU 1 first), CPU 0's allocation would come last
        // and hold the address with the wrong stack.
        let mut cpus = [
            cpu(
                1,
                &[(20, free(1, 0x1000)), (30, alloc(1, 0x1000))],
                30,
                true,
            ),
            cpu(0, &[(10, alloc(0, 0x1000))], 10, true),
        ];
        let mut l = Ledger::default();
        take_in(&mut cpus, &mut l);
        let held = l.outstanding(|_| true);
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].origin.cpu, 1, "the later allocation");
        assert!(cpus.iter().all(|c| c.pending.is_empty()));
    }

    #[test]
    fn a_cpu_not_read_empty_holds_back_what_is_later_than_its_last_record() {
        // CPU 0 has more to read after time 15: CPU 1's free at 20 waits,
        // since CPU 0 may yet have an allocation of that address before it.
        let mut cpus = [
            cpu(0, &[(10, alloc(0, 0x2000))], 15, false),
            cpu(1, &[(20, free(1, 0x1000))], 20, true),
        ];
        let mut l = Ledger::default();
        take_in(&mut cpus, &mut l);
        assert_eq!(l.events, 1);
        assert_eq!(cpus[1].pending.len(), 1, "held back");
        cpus[0].pending.push_back((18, alloc(0, 0x1000)));
        cpus[0].drained = true;
        take_in(&mut cpus, &mut l);
        assert_eq!(l.events, 3);
        let held: Vec<u64> = l.outstanding(|_| true).iter().map(|a| a.key).collect();
        assert_eq!(held, [0x2000], "0x1000 allocated at 18, freed at 20");
    }

    #[test]
    fn saved_cmdlines_name_tasks_by_pid() {
        let m = saved_cmdlines("61 insmod\n12 kworker/u4:1\nbad line\n");
        assert_eq!(m.get(&61).map(String::as_str), Some("insmod"));
        assert_eq!(m.get(&12).map(String::as_str), Some("kworker/u4:1"));
        assert_eq!(m.len(), 2);
    }
}
