//! The embedded session store (`session.store = "memory"`). STUB: the real store lands from the memory-store branch.

/// In-process sessions for a single replica.
pub struct MemoryStore;
