//! Shared memory as a kernel object: pages that every holder of a handle may map.
//!
//! The object owns its frames (through [`SharedFrames`]); each mapping holds the frames too,
//! so they are freed when the last handle is closed *and* the last mapping is gone. The
//! frames are charged to the process that created the object; each mapping also counts
//! toward its mapper's limit.

use alloc::sync::Arc;

use crate::mm::shared::SharedFrames;

use super::LiveObject;

/// A shared-memory object.
#[derive(Debug)]
pub struct MemoryObject {
    frames: Arc<SharedFrames>,
    _live: LiveObject,
}

impl MemoryObject {
    /// Wraps freshly allocated frames.
    pub fn new(frames: SharedFrames) -> Self {
        Self { frames: Arc::new(frames), _live: LiveObject::new() }
    }

    /// The frames, for mapping.
    pub fn frames(&self) -> &Arc<SharedFrames> {
        &self.frames
    }
}
