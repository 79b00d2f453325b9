// SPDX-License-Identifier: GPL-2.0

//! A small safe debugfs layer.
//!
//! Linux 6.12 has no Rust debugfs abstraction and its `bindings` lack
//! `debugfs.h`: bindgen declares the three functions used here at build
//! time ([`crate::ffi`]). The shape follows upstream
//! `kernel::debugfs` (6.18): a [`Dir`] removes its entry when the last user
//! drops it, and a [`File`] owns the data its handlers see, so the entry is
//! always gone before the data is freed. A file's operations and mode follow
//! from its data's type: [`Dir::read_only_file`] takes a [`Writer`] (mode
//! 0400), [`Dir::read_write_file`] a [`Writer`] and a [`Reader`] (0600), each
//! through a constant [`FileOps`] made once per type.
//!
//! Reads go through `seq_file` (`single_open`), which makes partial reads,
//! tiny buffers and odd offsets safe and gives each open a consistent
//! snapshot. Writes are taken whole: one call at offset zero per open file.

use crate::ffi::{debugfs_create_dir, debugfs_create_file, debugfs_remove};
use core::{fmt, marker::PhantomData, ptr};
use kernel::{
    bindings,
    error::from_err_ptr,
    ffi::{c_char, c_int, c_void},
    prelude::*,
    str::CStr,
    sync::Arc,
    uaccess::UserSlice,
};

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
    dentry: *mut bindings::dentry,
    // Only held, never read: it keeps the parent alive.
    _parent: Option<Arc<Entry>>,
}

// SAFETY: debugfs dentries may be used and removed from any thread.
unsafe impl Send for Entry {}
// SAFETY: `Entry` has no interior mutability; the pointer is only passed to
// debugfs, which does its own locking.
unsafe impl Sync for Entry {}

impl Entry {
    fn parent_ptr(parent: Option<&Arc<Entry>>) -> *mut bindings::dentry {
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

    /// Creates the read-only file `name` (mode 0400) in this directory, whose
    /// reads show `data` through its [`Writer`] implementation.
    pub(crate) fn read_only_file<T: Writer + Send + Sync + 'static>(
        &self,
        name: &CStr,
        data: T,
    ) -> Result<File<T>> {
        self.create_file(name, data, &<T as ReadFile<T>>::FILE_OPS)
    }

    /// Creates the file `name` (mode 0600) in this directory, whose reads show
    /// `data` through its [`Writer`] implementation and whose writes go to its
    /// [`Reader`] implementation.
    pub(crate) fn read_write_file<T: Writer + Reader + Send + Sync + 'static>(
        &self,
        name: &CStr,
        data: T,
    ) -> Result<File<T>> {
        self.create_file(name, data, &<T as ReadWriteFile<T>>::FILE_OPS)
    }

    /// Creates the file `name` in this directory, served by `data` through
    /// `file_ops`, whose owner is this module: an open file keeps the module
    /// (and so the operations, which live in its image) loaded.
    fn create_file<T: Send + Sync + 'static>(
        &self,
        name: &CStr,
        data: T,
        file_ops: &'static FileOps<T>,
    ) -> Result<File<T>> {
        let data = KBox::new(data, GFP_KERNEL)?;
        let parent = self.0.clone();
        // SAFETY: `name` is NUL-terminated and the parent dentry is live. The
        // data stays valid until the entry is removed: it is boxed, never
        // moved out, and dropped after `entry` (field order of `File`), and
        // removing the entry waits for running handlers. The fops are static
        // and safe to use for a file whose private data is that `T`
        // (invariant of `FileOps`).
        let dentry = from_err_ptr(unsafe {
            debugfs_create_file(
                name.as_char_ptr(),
                file_ops.mode,
                parent.dentry,
                ptr::from_ref(&*data).cast_mut().cast(),
                &file_ops.operations,
            )
        })?;
        Ok(File {
            // INVARIANT: `dentry` was just created inside `parent`.
            _entry: Entry {
                dentry,
                _parent: Some(parent),
            },
            _data: data,
        })
    }
}

/// What a file's reads show (upstream: `kernel::debugfs::Writer`): the value
/// writes itself out.
pub(crate) trait Writer {
    /// Writes the file's whole content, for one open.
    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

/// What a file's writes do (upstream: `kernel::debugfs::Reader`): the value
/// reads what user space wrote.
///
/// Upstream hands over a `UserSliceReader`; here the layer takes the write
/// whole first: one write at offset zero per open file, of 1 to [`MAX_WRITE`]
/// bytes, anything else being `-EINVAL`.
pub(crate) trait Reader {
    /// Acts on one whole write.
    fn read(&self, input: &[u8]) -> Result;
}

/// The file operations and mode of a file whose data is a `T`.
///
/// # Invariants
///
/// `operations` is safe to use for a debugfs file whose inode's private data
/// points to a `T` that outlives the file's entry and that is only ever
/// shared; its `owner` is this module. `mode` grants read access for a `read` handler and write
/// access for a `write` handler, to root only.
pub(crate) struct FileOps<T> {
    operations: bindings::file_operations,
    mode: u16,
    _data: PhantomData<T>,
}

impl<T> FileOps<T> {
    /// # Safety
    ///
    /// `operations` is safe to use for a debugfs file whose inode's private
    /// data points to a `T` that outlives the file's entry and that is only
    /// ever shared; its `owner` is this module; `mode` matches its handlers.
    const unsafe fn new(operations: bindings::file_operations, mode: u16) -> Self {
        // INVARIANT: By this function's safety requirements.
        Self {
            operations,
            mode,
            _data: PhantomData,
        }
    }
}

/// The file operations of a file read through [`Writer`] (a trait because
/// generic constants are not in the language yet).
trait ReadFile<T> {
    const FILE_OPS: FileOps<T>;
}

impl<T: Writer + Sync> ReadFile<T> for T {
    const FILE_OPS: FileOps<T> = {
        let operations = bindings::file_operations {
            open: Some(open::<T>),
            read: Some(bindings::seq_read),
            llseek: Some(bindings::seq_lseek),
            release: Some(bindings::single_release),
            owner: crate::THIS_MODULE.as_ptr(),
            // SAFETY: An all-zero `file_operations` is valid: every field is
            // an integer, a nullable pointer or an `Option` of a function
            // pointer.
            ..unsafe { core::mem::zeroed() }
        };
        // SAFETY: Stock `seq_file` operations, and `open::<T>`, which only
        // needs the inode's private data to be such a `T`. Mode 0400: read.
        unsafe { FileOps::new(operations, 0o400) }
    };
}

/// The file operations of a file read through [`Writer`] and written
/// through [`Reader`].
trait ReadWriteFile<T> {
    const FILE_OPS: FileOps<T>;
}

impl<T: Writer + Reader + Sync> ReadWriteFile<T> for T {
    const FILE_OPS: FileOps<T> = {
        let operations = bindings::file_operations {
            open: Some(open::<T>),
            read: Some(bindings::seq_read),
            write: Some(write::<T>),
            llseek: Some(bindings::seq_lseek),
            release: Some(bindings::single_release),
            owner: crate::THIS_MODULE.as_ptr(),
            // SAFETY: An all-zero `file_operations` is valid: every field is
            // an integer, a nullable pointer or an `Option` of a function
            // pointer.
            ..unsafe { core::mem::zeroed() }
        };
        // SAFETY: As for `ReadFile`, plus `write::<T>`, which only needs the
        // seq_file that `open::<T>` sets up. Mode 0600: read and write.
        unsafe { FileOps::new(operations, 0o600) }
    };
}

/// A debugfs file that owns the data its handlers use.
///
/// Dropping it while a descriptor of the file is still open is sound: the
/// entry is removed first, after which debugfs calls no handler that reaches
/// the data, and the descriptor's release runs the static operations, which
/// stay loaded because an open file holds a reference on their owner.
pub(crate) struct File<T> {
    // Dropped first: the entry is removed (and running handlers have returned)
    // before `_data` is freed.
    _entry: Entry,
    _data: KBox<T>,
}

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
/// Called by the VFS with a live inode and file of a file made by [`Dir::create_file`]
/// with the same `T`.
unsafe extern "C" fn open<T: Writer + Sync>(
    inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // SAFETY: `inode` is live during open; its `i_private` is the `T` given to
    // `debugfs_create_file`, and stays valid while the file exists.
    unsafe { bindings::single_open(file, Some(show::<T>), (*inode).i_private) }
}

/// Shows a [`Writer`] through `fmt`.
struct Show<'a, T>(&'a T);

impl<T: Writer> fmt::Display for Show<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write(f)
    }
}

/// # Safety
///
/// Called by `seq_read` with the seq_file that `open::<T>` set up.
unsafe extern "C" fn show<T: Writer + Sync>(m: *mut bindings::seq_file, _v: *mut c_void) -> c_int {
    // SAFETY: `single_open` stored the `T` pointer in `private`; the data lives
    // until the debugfs entry is removed, which waits for this call.
    let data = unsafe { &*(*m).private.cast::<T>() };
    match fmt::Write::write_fmt(&mut SeqFile(m), format_args!("{}", Show(data))) {
        Ok(()) => 0,
        Err(_) => ENOMEM.to_errno(),
    }
}

/// # Safety
///
/// Called by the VFS with a live file of a file made by [`Dir::create_file`] with the
/// same `T`, a user buffer of `count` bytes, and a valid `ppos`.
unsafe extern "C" fn write<T: Reader + Sync>(
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
    match data.read(&kbuf[..count]) {
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
