//! The JS heap limit, enforced by the runtime's allocator, which therefore *knows* when it was
//! hit.
//!
//! QuickJS reports a refused allocation as an `InternalError("out of memory")`, which a script
//! can also throw itself, and which may itself fail to be created, catch or report (an
//! out-of-memory run could come back as "uncaught value: null" or "promise never settled").
//! So the limit is not QuickJS's but this allocator's: it counts the bytes QuickJS holds, refuses
//! what would go past the limit, and remembers that it did. A run that fails after a refusal is
//! a memory-limit error; one that did not is not, whatever its error says.

use std::cell::Cell;
use std::rc::Rc;

use rquickjs::allocator::Allocator;

/// What the allocator of one runtime counts; shared with the sandbox.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    /// Bytes the runtime may hold; 0 until the run's limit is set (nothing is refused while a
    /// runtime is being made ahead of its request).
    limit: Cell<usize>,
    used: Cell<usize>,
    refused: Cell<bool>,
}

impl Meter {
    pub(crate) fn set_limit(&self, bytes: usize) {
        self.limit.set(bytes);
    }

    /// Whether an allocation was refused for the limit.
    pub(crate) fn refused(&self) -> bool {
        self.refused.get()
    }

    fn admit(&self, more: usize) -> bool {
        let limit = self.limit.get();
        if limit != 0 && self.used.get().saturating_add(more) > limit {
            self.refused.set(true);
            return false;
        }
        true
    }
}

/// libc's allocator, metered.
pub(crate) struct Metered(pub(crate) Rc<Meter>);

fn usable(ptr: *mut u8) -> usize {
    // SAFETY: `ptr` came from malloc/calloc/realloc of this allocator, or is null.
    unsafe { libc::malloc_usable_size(ptr.cast()) }
}

// SAFETY: every block comes from libc's malloc family, aligned for any type (at least usize),
// and `usable_size` reports libc's own usable size of it.
unsafe impl Allocator for Metered {
    fn alloc(&mut self, size: usize) -> *mut u8 {
        if !self.0.admit(size) {
            return std::ptr::null_mut();
        }
        // SAFETY: plain malloc.
        let ptr = unsafe { libc::malloc(size) }.cast::<u8>();
        self.0.used.set(self.0.used.get() + usable(ptr));
        ptr
    }

    fn calloc(&mut self, count: usize, size: usize) -> *mut u8 {
        if !self.0.admit(count.saturating_mul(size)) {
            return std::ptr::null_mut();
        }
        // SAFETY: plain calloc (it checks the multiplication).
        let ptr = unsafe { libc::calloc(count, size) }.cast::<u8>();
        self.0.used.set(self.0.used.get() + usable(ptr));
        ptr
    }

    unsafe fn dealloc(&mut self, ptr: *mut u8) {
        self.0
            .used
            .set(self.0.used.get().saturating_sub(usable(ptr)));
        // SAFETY: per the trait, `ptr` is ours.
        unsafe { libc::free(ptr.cast()) }
    }

    unsafe fn realloc(&mut self, ptr: *mut u8, new_size: usize) -> *mut u8 {
        let old = usable(ptr);
        if new_size > old && !self.0.admit(new_size - old) {
            return std::ptr::null_mut();
        }
        // SAFETY: per the trait, `ptr` is ours (or null).
        let new = unsafe { libc::realloc(ptr.cast(), new_size) }.cast::<u8>();
        if !new.is_null() {
            let used = self.0.used.get().saturating_sub(old) + usable(new);
            self.0.used.set(used);
        }
        new
    }

    unsafe fn usable_size(ptr: *mut u8) -> usize {
        usable(ptr)
    }
}
