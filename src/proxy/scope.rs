//! What one connection's requests share, and the runtime cell reloads swap.
//!
//! Every request needs the process state, the current runtime and the
//! connection's details. Cloning each of them per request wrote reference
//! counts that every serving thread shares: under load each such write pulls
//! a cache line from the other core (a few hundred cycles apiece, invisible
//! to an instruction count). A connection instead keeps one [`Scope`] holding
//! all three and hands each request a clone of that: one count, written only
//! by the connection's own thread. A reload is seen by the next request: the
//! scope is rebuilt when the cell's replacement count moved.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use super::{ConnInfo, Runtime, State};

/// The runtime, swapped whole on reload, and how many times it was.
pub struct RuntimeCell {
    current: ArcSwap<Runtime>,
    /// Moved after every swap; read (never written) per request.
    replaced: AtomicU64,
}

impl RuntimeCell {
    pub fn new(runtime: Runtime) -> Self {
        RuntimeCell {
            current: ArcSwap::from_pointee(runtime),
            replaced: AtomicU64::new(0),
        }
    }

    /// The current runtime, borrowed for a moment.
    pub fn load(&self) -> Guard<Arc<Runtime>> {
        self.current.load()
    }

    /// The current runtime, to keep.
    pub fn load_full(&self) -> Arc<Runtime> {
        self.current.load_full()
    }

    /// Makes `runtime` the current one for every request that starts after.
    pub fn store(&self, runtime: Arc<Runtime>) {
        self.current.store(runtime);
        // After the swap: whoever reads the new count loads the new runtime.
        self.replaced.fetch_add(1, Ordering::Release);
    }

    fn replaced(&self) -> u64 {
        self.replaced.load(Ordering::Acquire)
    }
}

/// The state, runtime and connection one request is served with.
pub struct Scope {
    pub state: Arc<State>,
    pub rt: Arc<Runtime>,
    pub conn: ConnInfo,
    /// The cell's replacement count when `rt` was loaded.
    replaced: u64,
}

impl Scope {
    fn load(state: Arc<State>, conn: ConnInfo) -> Self {
        // The count first: a swap in between only makes the next request
        // load again.
        let replaced = state.runtime.replaced();
        let rt = state.runtime.load_full();
        Scope {
            state,
            rt,
            conn,
            replaced,
        }
    }
}

/// A connection's current [`Scope`]. It keeps the runtime its last request
/// used until the next one starts (or the connection closes: an idle
/// keep-alive connection is closed after `server.header_read_timeout`).
pub struct Scopes {
    current: RefCell<Arc<Scope>>,
}

impl Scopes {
    pub fn new(state: Arc<State>, conn: ConnInfo) -> Self {
        Scopes {
            current: RefCell::new(Arc::new(Scope::load(state, conn))),
        }
    }

    /// The scope for a request starting now: the connection's, loaded again
    /// when the runtime was replaced since.
    pub fn for_request(&self) -> Arc<Scope> {
        let mut current = self.current.borrow_mut();
        if current.state.runtime.replaced() != current.replaced {
            *current = Arc::new(Scope::load(current.state.clone(), current.conn.clone()));
        }
        current.clone()
    }
}
