// SPDX-License-Identifier: GPL-2.0
//! A tracefs instance of leaklab's own (`instances/leaklab-PID`): its own
//! ring buffer, options, events and triggers, so that nothing of the
//! system's tracing setup is touched; removing it puts tracefs back as it
//! was. A reader thread consumes each CPU's `trace_pipe_raw` (binary
//! pages: no formatting in the kernel, no text to parse) into a [`Ledger`],
//! in timestamp order across the CPUs, while the run goes on.

use std::{
    fs,
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
    event::Decoder,
    instance::{self, read_at_once, reader_filter, remove, BARRIER_EVENT, RCU_EXPEDITED},
    kallsyms::Kallsyms,
    ledger::Ledger,
    names::Names,
    page::Layout,
    reader::Reader,
    vmalloc,
};
use crate::kernel::{
    interrupt,
    setting::Changed,
    thread::lowest_priority,
    tracefs::{self, write},
    undo,
};

pub use crate::kernel::tracefs::TRACEFS;

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

/// The kernel's symbols, being read or read.
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
    /// The triggers' condition (the reader's thread id in it), once set.
    filter: std::sync::OnceLock<String>,
    /// The kernel's symbols: read ahead in a thread of their own for a run
    /// that will name what it finds ([`Tracer::read_names_ahead`]), else
    /// when first needed ([`Tracer::names`]; `trigger --trace` never does).
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
        // Setting up waits for grace periods (the buffers' resize, each
        // event's filter and trigger): expedited, a third of the time on
        // one TCG vCPU. Put back before anything is traced.
        let _expedited = Changed::to(RCU_EXPEDITED, "1");
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
            symbols: Mutex::new(None),
            vmalloc,
            noted: Some(noted),
        };
        // The reader first: its own reads allocate (page faults, the
        // ledger). Its events are known by its thread id: they get no
        // stacks, and it drops them.
        tracer.reader = Some(tracer.spawn_reader(buffer_kb)?);
        undo::failpoint("trace-running");
        Ok(tracer)
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
        let mut reader = Reader::open(&self.dir, decoder, layout, page_bytes)?;
        let (ledger, stop) = (self.ledger.clone(), self.stop.clone());
        let taken = self.taken.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::Builder::new()
            .name("trace-reader".into())
            .spawn(move || {
                let tid = nix::unistd::gettid().as_raw();
                reader.own(tid);
                let _ = tx.send(tid);
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
        instance::configure(&self.dir, self.vmalloc.as_ref(), filter)?;
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
                && instance::overruns(&self.dir).saturating_add(lost) > 0
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
    /// On each CPU in turn this thread writes the filter of an event the
    /// trace leaves off again ([`BARRIER_EVENT`], the same filter): the kernel then waits for a grace period before it
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

    /// Starts reading the kernel's symbols in a thread while the run goes
    /// on, for a run that will name what it finds ([`Tracer::names`]). The
    /// thread runs at the lowest priority: reading Debian's 107 000 text
    /// symbols takes 0.6 s of a TCG vCPU, which a module's exercise lost
    /// when both ran at once (the C driver's loop took 1.03 s under the
    /// trace instead of 0.80 s).
    pub fn read_names_ahead(&self) -> Result<()> {
        let mut symbols = self.symbols.lock().unwrap_or_else(|p| p.into_inner());
        if symbols.is_none() {
            let thread = std::thread::Builder::new()
                .name("kallsyms".into())
                .spawn(|| {
                    lowest_priority();
                    Kallsyms::read()
                })
                .context("starting a thread")?;
            *symbols = Some(Symbols::Reading(thread));
        }
        Ok(())
    }

    /// Names for the trace's stacks and tasks (the kernel's symbols read,
    /// or waited for, the first time).
    pub fn names(&self) -> Result<Names> {
        let mut symbols = self.symbols.lock().unwrap_or_else(|p| p.into_inner());
        let kallsyms = match symbols.take() {
            Some(Symbols::Read(k)) => k,
            Some(Symbols::Reading(thread)) => match thread.join() {
                Ok(k) => Arc::new(k?),
                Err(_) => bail!("reading the kernel's symbols panicked"),
            },
            None => Arc::new(Kallsyms::read()?),
        };
        *symbols = Some(Symbols::Read(kallsyms.clone()));
        Ok(Names::new(kallsyms, &self.root))
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
        let overrun = instance::overruns(&self.dir);
        self.stop_reader()?;
        let ledger = std::mem::take(&mut *self.ledger());
        self.remove()?;
        Ok(Traced {
            lost: overrun.saturating_add(ledger.lost),
            events: ledger.events,
            ledger,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_list_names_each_cpu_of_its_ranges() {
        assert_eq!(cpu_list("0\n"), Some(vec![0]));
        assert_eq!(cpu_list("0-3,6"), Some(vec![0, 1, 2, 3, 6]));
        assert_eq!(cpu_list(""), None);
        assert_eq!(cpu_list("3-1"), None);
        assert_eq!(cpu_list("a"), None);
        assert_eq!(cpu_list("0-99999999"), None);
    }
}
