//! The global allocator: a linked-list heap (`linked_list_allocator`) that grows with `brk`
//! whenever it runs out, by at least 64 KiB at a time.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

use linked_list_allocator::Heap;
use spin::Mutex;

use crate::sys;

const GROWTH_MIN: usize = 64 * 1024;
const PAGE: usize = 4096;

struct BrkHeap(Mutex<Heap>);

#[global_allocator]
static HEAP: BrkHeap = BrkHeap(Mutex::new(Heap::empty()));

impl BrkHeap {
    /// Grows the heap by at least `needed` bytes; false if the kernel refuses.
    fn grow(heap: &mut Heap, needed: usize) -> bool {
        let Some(growth) = needed.max(GROWTH_MIN).checked_next_multiple_of(PAGE) else { return false };
        let start = if heap.size() == 0 { sys::heap_end() } else { heap.top() as usize };
        let Some(wanted) = start.checked_add(growth) else { return false };
        let Ok(end) = sys::set_heap_end(wanted) else { return false };
        if end < wanted {
            return false;
        }
        if heap.size() == 0 {
            // SAFETY: `start..end` was just mapped for this process by `brk`, and only this
            // allocator uses the brk area.
            unsafe { heap.init(start as *mut u8, end - start) };
        } else {
            // SAFETY: `brk` extended the mapping contiguously right after the heap's top.
            unsafe { heap.extend(end - start) };
        }
        true
    }
}

// SAFETY: every block comes from `linked_list_allocator`'s heap, which hands out disjoint,
// properly aligned blocks of memory this process owns, under a lock.
unsafe impl GlobalAlloc for BrkHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut heap = self.0.lock();
        if let Ok(block) = heap.allocate_first_fit(layout) {
            return block.as_ptr();
        }
        let needed = layout.size().saturating_add(layout.align()).saturating_add(64);
        if !Self::grow(&mut heap, needed) {
            return ptr::null_mut();
        }
        heap.allocate_first_fit(layout).map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if let Some(block) = NonNull::new(block) {
            // SAFETY: the caller passes a block this allocator returned with this layout.
            unsafe { self.0.lock().deallocate(block, layout) };
        }
    }
}
