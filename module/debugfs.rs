// SPDX-License-Identifier: GPL-2.0

//! A small safe debugfs layer.
//!
//! Linux 6.12 has no Rust debugfs abstraction and its `bindings` lack
//! `debugfs.h`, so the three exported functions are declared here by hand
//! (dentries stay opaque pointers). The shape follows upstream
//! `kernel::debugfs` (6.18): a [`Dir`] removes its entry when the last user
//! drops it, and a [`File`] owns the data its handlers see, so the entry is
//! always gone before the data is freed.
//!
//! Reads go through `seq_file` (`single_open`), which makes partial reads,
//! tiny buffers and odd offsets safe and gives each open a consistent
//! snapshot. Writes are taken whole: one call at offset zero per open file.

use core::{fmt, marker::PhantomPinned, mem::MaybeUninit, pin::Pin, ptr};
use kernel::{
    bindings,
    error::from_err_ptr,
    ffi::{c_char, c_int, c_void},
    prelude::*,
    str::CStr,
    sync::Arc,
    uaccess::UserSlice,
    ThisModule,
};

extern "C" {
    fn debugfs_create_dir(name: *const c_char, parent: *mut c_void) -> *mut c_void;
    fn debugfs_create_file(
        name: *const c_char,
        mode: u16,
        parent: *mut c_void,
        data: *mut c_void,
        // Opaque here: `file_operations` holds a `lockdep_map`, an empty
        // struct in this config, which is not FFI-safe by value.
        fops: *const c_void,
    ) -> *mut c_void;
    fn debugfs_remove(dentry: *mut c_void);
}

/// The longest write a control file accepts, in bytes (a count, a word).
pub(crate) const MAX_WRITE: usize = 64;

/// One debugfs dentry, removed (with anything still below it) on drop.
///
/// # Invariants
///
/// `dentry` was returned by a successful `debugfs_create_*` call and has not
/// been removed. If `parent` is `Some`, it is the entry `dentry` lives in, kept
/// alive so that a parent is never removed before its child.
struct Entry {
    dentry: *mut c_void,
    // Only held, never read: it keeps the parent alive.
    _parent: Option<Arc<Entry>>,
}

// SAFETY: debugfs dentries may be used and removed from any thread.
unsafe impl Send for Entry {}
// SAFETY: `Entry` has no interior mutability; the pointer is only passed to
// debugfs, which does its own locking.
unsafe impl Sync for Entry {}

impl Entry {
    fn parent_ptr(parent: Option<&Arc<Entry>>) -> *mut c_void {
        parent.map_or(ptr::null_mut(), |p| p.dentry)
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        // SAFETY: By the type invariant `dentry` is live and removed only here.
        // `debugfs_remove` waits for handlers that are running to return.
        unsafe { debugfs_remove(self.dentry) };
    }
}

/// A debugfs directory. Cloning is cheap; the directory goes away when the
/// last clone and the last file or directory inside it are dropped.
#[derive(Clone)]
pub(crate) struct Dir(Arc<Entry>);

impl Dir {
    /// Creates `name` at the top of debugfs.
    pub(crate) fn new(name: &CStr) -> Result<Self> {
        Self::create(name, None)
    }

    /// Creates the directory `name` inside this one.
    pub(crate) fn subdir(&self, name: &CStr) -> Result<Self> {
        Self::create(name, Some(self.0.clone()))
    }

    fn create(name: &CStr, parent: Option<Arc<Entry>>) -> Result<Self> {
        // SAFETY: `name` is NUL-terminated; the parent pointer is null or a
        // live dentry (invariant of `Entry`).
        let dentry = from_err_ptr(unsafe {
            debugfs_create_dir(name.as_char_ptr(), Entry::parent_ptr(parent.as_ref()))
        })?;
        // INVARIANT: `dentry` was just created; `parent` is its parent.
        Ok(Self(Arc::new(
            Entry {
                dentry,
                _parent: parent,
            },
            GFP_KERNEL,
        )?))
    }

    /// Creates the file `name` in this directory, served by `data`.
    ///
    /// The file is readable by root only (0400), and writable by root (0600)
    /// when `T::WRITABLE`. `module` becomes the owner of the file operations,
    /// so the module cannot be unloaded while the file is open.
    pub(crate) fn file<T: FileOps>(
        &self,
        name: &CStr,
        data: T,
        module: &'static ThisModule,
    ) -> Result<File<T>> {
        // SAFETY: An all-zero `file_operations` is valid: every field is an
        // integer, a nullable pointer or an `Option` of a function pointer.
        let mut fops: bindings::file_operations = unsafe { MaybeUninit::zeroed().assume_init() };
        fops.owner = module.as_ptr();
        fops.open = Some(open::<T>);
        fops.read = Some(bindings::seq_read);
        fops.llseek = Some(bindings::seq_lseek);
        fops.release = Some(bindings::single_release);
        if T::WRITABLE {
            fops.write = Some(write::<T>);
        }
        let inner = KBox::pin(
            Inner {
                fops,
                data,
                _pin: PhantomPinned,
            },
            GFP_KERNEL,
        )?;
        let mode = if T::WRITABLE { 0o600 } else { 0o400 };
        let parent = self.0.clone();
        // SAFETY: `name` is NUL-terminated and the parent dentry is live. The
        // data and fops pointers stay valid until the entry is removed: both
        // live in `inner`, which is pinned and dropped after `entry` (field
        // order of `File`).
        let dentry = from_err_ptr(unsafe {
            debugfs_create_file(
                name.as_char_ptr(),
                mode,
                parent.dentry,
                ptr::from_ref(&inner.data).cast_mut().cast(),
                ptr::from_ref(&inner.fops).cast(),
            )
        })?;
        Ok(File {
            // INVARIANT: `dentry` was just created inside `parent`.
            _entry: Entry {
                dentry,
                _parent: Some(parent),
            },
            _inner: inner,
        })
    }
}

/// What a debugfs file does when it is read or written.
pub(crate) trait FileOps: Send + Sync + 'static {
    /// Whether the file takes writes (mode 0600 instead of 0400).
    const WRITABLE: bool = false;

    /// Renders the file's whole content for one open.
    fn show(&self, out: &mut SeqFile) -> Result;

    /// Acts on one whole write of at most [`MAX_WRITE`] bytes.
    fn write(&self, _input: &[u8]) -> Result {
        Err(EINVAL)
    }
}

struct Inner<T> {
    fops: bindings::file_operations,
    data: T,
    _pin: PhantomPinned,
}

/// A debugfs file that owns the data its handlers use.
pub(crate) struct File<T> {
    // Dropped first: the entry is removed (and running handlers have returned)
    // before `_inner` frees the data and the file operations.
    _entry: Entry,
    _inner: Pin<KBox<Inner<T>>>,
}

// SAFETY: The raw pointers in the file operations point to functions and to the
// module, which are valid from any thread; `T` itself is `Send`.
unsafe impl<T: Send> Send for File<T> {}
// SAFETY: Shared access only reads the file operations; `T` itself is `Sync`.
unsafe impl<T: Sync> Sync for File<T> {}

/// The output of a read, backed by the kernel's `seq_file`.
pub(crate) struct SeqFile(*mut bindings::seq_file);

impl fmt::Write for SeqFile {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // SAFETY: `self.0` is the live seq_file of the `show` call this value
        // was made for. On overflow seq_file retries `show` with a larger
        // buffer, so the return value needs no handling here.
        unsafe { bindings::seq_write(self.0, s.as_ptr().cast(), s.len()) };
        Ok(())
    }
}

/// # Safety
///
/// Called by the VFS with a live inode and file of a file made by [`Dir::file`]
/// with the same `T`.
unsafe extern "C" fn open<T: FileOps>(
    inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // SAFETY: `inode` is live during open; its `i_private` is the `T` given to
    // `debugfs_create_file`, and stays valid while the file exists.
    unsafe { bindings::single_open(file, Some(show::<T>), (*inode).i_private) }
}

/// # Safety
///
/// Called by `seq_read` with the seq_file that `open::<T>` set up.
unsafe extern "C" fn show<T: FileOps>(m: *mut bindings::seq_file, _v: *mut c_void) -> c_int {
    // SAFETY: `single_open` stored the `T` pointer in `private`; the data lives
    // until the debugfs entry is removed, which waits for this call.
    let data = unsafe { &*(*m).private.cast::<T>() };
    match data.show(&mut SeqFile(m)) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// Called by the VFS with a live file of a file made by [`Dir::file`] with the
/// same `T`, a user buffer of `count` bytes, and a valid `ppos`.
unsafe extern "C" fn write<T: FileOps>(
    file: *mut bindings::file,
    buf: *const c_char,
    count: usize,
    ppos: *mut bindings::loff_t,
) -> isize {
    // SAFETY: `ppos` is valid for the duration of the call.
    if unsafe { *ppos } != 0 {
        // A write that continues an earlier one would see half a command.
        return EINVAL.to_errno() as isize;
    }
    if count == 0 || count > MAX_WRITE {
        return EINVAL.to_errno() as isize;
    }
    let mut kbuf = [0u8; MAX_WRITE];
    let mut reader = UserSlice::new(buf as usize, count).reader();
    if let Err(e) = reader.read_slice(&mut kbuf[..count]) {
        return e.to_errno() as isize;
    }
    // SAFETY: `open::<T>` made `private_data` a seq_file whose `private` is the
    // file's `T`, which outlives every handler call (see `show`).
    let data = unsafe {
        &*(*(*file).private_data.cast::<bindings::seq_file>())
            .private
            .cast::<T>()
    };
    match data.write(&kbuf[..count]) {
        Ok(()) => {
            // A second write on the same open file is refused above: one
            // command per open, as with `echo 5 > file`.
            // SAFETY: `ppos` is valid for the duration of the call.
            unsafe { *ppos = count as bindings::loff_t };
            count as isize
        }
        Err(e) => e.to_errno() as isize,
    }
}
