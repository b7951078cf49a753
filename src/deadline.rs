//! Coarse deadlines for the timeouts every request arms: the HTTP/1
//! header-read timeout (`server::between`) and the upstream response timeout.
//!
//! Almost none of them fire: each is armed, polled once or twice, and dropped
//! when the request goes on. tokio's timer pays for that in full every time
//! (the runtime handle looked up, a lock taken to insert into its wheel and
//! again to remove); the two came to about 2,000 instructions a request, 5% of
//! the whole request path (callgrind, bench_stack's session route).
//!
//! Here, as in nginx's event loop, each serving thread keeps its own list of
//! deadlines and one sweeper task ([`sweep`]) that sleeps until the earliest
//! one (rounded up to [`TICK`]) and wakes the tasks whose deadline passed.
//! Arming is a slot in a thread-local list; disarming frees it; no lock, no
//! clock reading. A deadline fires up to [`TICK`] late, never early.
//!
//! On a thread without a sweeper (the admin listener, tests, another runtime),
//! or polled from a thread other than the one it was armed on, a [`Sleep`]
//! falls back to a tokio sleep: always correct, only not cheap.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How late a deadline may fire: the sweeper's granularity.
pub const TICK: Duration = Duration::from_millis(50);

/// The longest the sweeper sleeps while anything is armed. Arming a deadline
/// later than its next look costs nothing; only one sooner wakes it. Without
/// this bound a busy thread would wake it on almost every request: a look
/// that sees only the response deadlines (a minute away) would be followed
/// by a header deadline (ten seconds away) armed sooner than it.
const LONGEST_SLEEP: Duration = Duration::from_secs(1);

/// A future that resolves once `deadline` has passed (checked by the thread's
/// sweeper; see the module documentation).
#[derive(Debug)]
pub struct Sleep {
    deadline: Instant,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Not yet polled.
    Idle,
    /// Armed in the list of the thread whose sweeper is `list`.
    Armed {
        list: u64,
        slot: usize,
        generation: u32,
    },
    Fired,
    /// Polled where no sweeper runs (or once the thread's sweeper stopped).
    Tokio(Pin<Box<tokio::time::Sleep>>),
}

impl Sleep {
    pub fn until(deadline: Instant) -> Self {
        Self {
            deadline,
            state: State::Idle,
        }
    }

    fn disarm(&mut self) {
        if let State::Armed {
            list,
            slot,
            generation,
        } = self.state
        {
            LIST.with(|cell| {
                if let Ok(mut deadlines) = cell.try_borrow_mut() {
                    if deadlines.id == list {
                        deadlines.remove(slot, generation);
                    }
                }
                // Otherwise another thread's list: its sweeper drops the
                // slot once the deadline passes (waking nothing that cares).
            });
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.disarm();
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let deadline = this.deadline;
        if let State::Tokio(sleep) = &mut this.state {
            return sleep.as_mut().poll(cx);
        }
        if matches!(this.state, State::Fired) {
            return Poll::Ready(());
        }
        let armed = LIST.with(|cell| {
            let Ok(mut deadlines) = cell.try_borrow_mut() else {
                return Err(());
            };
            if deadlines.id == 0 {
                return Err(());
            }
            match this.state {
                State::Armed {
                    list,
                    slot,
                    generation,
                } if list == deadlines.id => Ok(deadlines.poll(slot, generation, cx.waker())),
                _ => {
                    let (slot, generation) = deadlines.insert(deadline, cx.waker());
                    this.state = State::Armed {
                        list: deadlines.id,
                        slot,
                        generation,
                    };
                    Ok(false)
                }
            }
        });
        match armed {
            Ok(true) => {
                this.state = State::Fired;
                Poll::Ready(())
            }
            Ok(false) => Poll::Pending,
            Err(()) => {
                // No sweeper here: tokio's timer (the armed slot, if any, is
                // on another thread and expires there on its own).
                let mut sleep = Box::pin(tokio::time::sleep_until(deadline.into()));
                let polled = sleep.as_mut().poll(cx);
                this.state = State::Tokio(sleep);
                polled
            }
        }
    }
}

/// `future`, or `Err(Elapsed)` once `deadline` has passed (tokio's
/// `timeout_at`, on a [`Sleep`]).
pub fn timeout_at<F: Future>(deadline: Instant, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: Sleep::until(deadline),
    }
}

/// The deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

pin_project_lite::pin_project! {
    /// See [`timeout_at`].
    #[derive(Debug)]
    pub struct Timeout<F> {
        #[pin]
        future: F,
        sleep: Sleep,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        Pin::new(this.sleep).poll(cx).map(|()| Err(Elapsed))
    }
}

/// The deadlines armed on one thread.
struct Deadlines {
    /// Nonzero while a sweeper runs on this thread.
    id: u64,
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// When the sweeper next looks (`None`: it sleeps until woken).
    next_sweep: Option<Instant>,
    sweeper: Option<Waker>,
    /// An arming asked the sweeper to look before `next_sweep`.
    look_sooner: bool,
}

/// A slot is armed while it holds a waker; firing or disarming frees it.
struct Slot {
    generation: u32,
    deadline: Instant,
    waker: Option<Waker>,
}

thread_local! {
    static LIST: RefCell<Deadlines> = const {
        RefCell::new(Deadlines {
            id: 0,
            slots: Vec::new(),
            free: Vec::new(),
            next_sweep: None,
            sweeper: None,
            look_sooner: false,
        })
    };
}

static NEXT_LIST_ID: AtomicU64 = AtomicU64::new(1);

impl Deadlines {
    fn insert(&mut self, deadline: Instant, waker: &Waker) -> (usize, u32) {
        let (slot, generation) = match self.free.pop().and_then(|slot| {
            let entry = self.slots.get_mut(slot)?;
            entry.generation = entry.generation.wrapping_add(1);
            entry.deadline = deadline;
            entry.waker = Some(waker.clone());
            Some((slot, entry.generation))
        }) {
            Some(reused) => reused,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    deadline,
                    waker: Some(waker.clone()),
                });
                (self.slots.len() - 1, 0)
            }
        };
        // The sweeper looks later than this deadline allows: look sooner.
        if !self.look_sooner && self.next_sweep.is_none_or(|at| deadline + TICK < at) {
            self.look_sooner = true;
            if let Some(sweeper) = self.sweeper.take() {
                sweeper.wake();
            }
        }
        (slot, generation)
    }

    /// Whether the slot fired (was freed by the sweeper, and perhaps
    /// reused since); if not, it wakes `waker` when it does.
    fn poll(&mut self, slot: usize, generation: u32, waker: &Waker) -> bool {
        match self.slots.get_mut(slot) {
            Some(Slot {
                generation: current,
                waker: Some(armed),
                ..
            }) if *current == generation => {
                if !armed.will_wake(waker) {
                    *armed = waker.clone();
                }
                false
            }
            _ => true,
        }
    }

    /// Frees the slot unless it fired (the sweeper freed it then).
    fn remove(&mut self, slot: usize, generation: u32) {
        if let Some(entry) = self.slots.get_mut(slot) {
            if entry.generation == generation && entry.waker.take().is_some() {
                self.free.push(slot);
            }
        }
    }

    /// Fires every slot whose deadline is at or before `now` (their wakers
    /// into `woken`), and returns the earliest deadline still armed.
    fn fire_due(&mut self, now: Instant, woken: &mut Vec<Waker>) -> Option<Instant> {
        let mut earliest: Option<Instant> = None;
        for (index, entry) in self.slots.iter_mut().enumerate() {
            if entry.waker.is_none() {
                continue;
            }
            if entry.deadline <= now {
                woken.extend(entry.waker.take());
                self.free.push(index);
            } else {
                earliest = Some(earliest.map_or(entry.deadline, |e| e.min(entry.deadline)));
            }
        }
        earliest
    }
}

/// The thread's sweeper: runs for as long as this thread serves, alongside
/// its accept loop; deadlines armed on this thread are cheap while it runs.
pub async fn sweep() {
    let id = NEXT_LIST_ID.fetch_add(1, Ordering::Relaxed);
    LIST.with(|cell| {
        if let Ok(mut deadlines) = cell.try_borrow_mut() {
            deadlines.id = id;
        }
    });
    let _stop = StopOnDrop;
    let mut woken = Vec::new();
    let mut sleep = Box::pin(tokio::time::sleep(TICK));
    loop {
        let now = Instant::now();
        let next = LIST.with(|cell| {
            let mut deadlines = cell.try_borrow_mut().ok()?;
            // This look answers any arming that asked for one.
            deadlines.look_sooner = false;
            deadlines.sweeper = None;
            let earliest = deadlines.fire_due(now, &mut woken);
            // Rounded up to a whole tick: deadlines close together share a look.
            let next = earliest.map(|at| (at.max(now) + TICK).min(now + LONGEST_SLEEP));
            deadlines.next_sweep = next;
            next
        });
        for waker in woken.drain(..) {
            waker.wake();
        }
        match next {
            Some(at) => sleep.as_mut().reset(at.into()),
            // Nothing armed: sleep until an arming wakes this task (a long
            // sleep, so the tokio timer entry stays and only moves).
            None => sleep
                .as_mut()
                .reset((now + Duration::from_secs(3600)).into()),
        }
        // Until the sleep ends or an arming asks for a look sooner.
        std::future::poll_fn(|cx| {
            let asked = LIST.with(|cell| {
                let Ok(mut deadlines) = cell.try_borrow_mut() else {
                    return true;
                };
                if deadlines.look_sooner {
                    return true;
                }
                deadlines.sweeper = Some(cx.waker().clone());
                false
            });
            if asked {
                return Poll::Ready(());
            }
            sleep.as_mut().poll(cx)
        })
        .await;
    }
}

/// When the sweeper stops, the thread's armed sleeps are woken to fall back
/// to tokio's timer.
struct StopOnDrop;

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let mut woken = Vec::new();
        LIST.with(|cell| {
            if let Ok(mut deadlines) = cell.try_borrow_mut() {
                deadlines.id = 0;
                deadlines.sweeper = None;
                deadlines.next_sweep = None;
                deadlines.look_sooner = false;
                for entry in &mut deadlines.slots {
                    woken.extend(entry.waker.take());
                }
                deadlines.slots.clear();
                deadlines.free.clear();
            }
        });
        for waker in woken {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A current-thread runtime with this thread's sweeper running, as a
    /// serving thread has.
    fn on_a_serving_thread<F: Future>(test: F) -> F::Output {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let test = tokio::time::timeout(Duration::from_secs(10), test);
            tokio::select! {
                output = test => output.expect("the test hung"),
                () = sweep() => unreachable!("the sweeper never ends"),
            }
        })
    }

    /// Polls `future` once, from the calling task.
    async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx))).await
    }

    fn armed_here() -> usize {
        LIST.with(|cell| {
            cell.borrow()
                .slots
                .iter()
                .filter(|slot| slot.waker.is_some())
                .count()
        })
    }

    #[test]
    fn a_deadline_fires_after_it_passes_and_at_most_a_tick_or_so_late() {
        on_a_serving_thread(async {
            for wait in [Duration::from_millis(30), Duration::from_millis(120)] {
                let armed = Instant::now();
                Sleep::until(armed + wait).await;
                let took = armed.elapsed();
                assert!(took >= wait, "fired early: {took:?} < {wait:?}");
                assert!(
                    took < wait + TICK + Duration::from_millis(200),
                    "fired late: {took:?} for {wait:?}"
                );
            }
        });
    }

    #[test]
    fn a_sooner_deadline_is_not_held_up_by_a_later_one() {
        on_a_serving_thread(async {
            // The sweeper settles on the far deadline first...
            let mut far = Sleep::until(Instant::now() + Duration::from_secs(30));
            assert!(poll_once(&mut far).await.is_pending());
            tokio::task::yield_now().await;
            // ...then a near one must wake it for an earlier look.
            let armed = Instant::now();
            Sleep::until(armed + Duration::from_millis(50)).await;
            assert!(
                armed.elapsed() < Duration::from_millis(50) + TICK + Duration::from_millis(200)
            );
            assert!(poll_once(&mut far).await.is_pending());
        });
    }

    #[test]
    fn dropped_and_fired_deadlines_free_their_slots() {
        on_a_serving_thread(async {
            for _ in 0..1_000 {
                let mut sleep = Sleep::until(Instant::now() + Duration::from_secs(60));
                assert!(poll_once(&mut sleep).await.is_pending());
            }
            assert_eq!(armed_here(), 0, "a dropped sleep stays armed");
            Sleep::until(Instant::now() + Duration::from_millis(10)).await;
            assert_eq!(armed_here(), 0, "a fired sleep stays armed");
            let slots = LIST.with(|cell| cell.borrow().slots.len());
            assert!(slots <= 2, "{slots} slots for one sleep at a time");
        });
    }

    #[test]
    fn timeout_at_answers_with_the_future_or_elapsed() {
        on_a_serving_thread(async {
            let soon = Instant::now() + Duration::from_millis(20);
            assert_eq!(timeout_at(soon, async { 7 }).await, Ok(7));
            let never = std::future::pending::<()>();
            assert_eq!(timeout_at(soon, never).await, Err(Elapsed));
            assert!(Instant::now() >= soon);
            assert_eq!(armed_here(), 0);
        });
    }

    #[test]
    fn without_a_sweeper_a_deadline_still_fires() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let armed = Instant::now();
            let fired = tokio::time::timeout(
                Duration::from_secs(5),
                Sleep::until(armed + Duration::from_millis(30)),
            )
            .await;
            assert!(fired.is_ok(), "never fired");
            assert!(armed.elapsed() >= Duration::from_millis(30));
        });
    }

    #[test]
    fn when_the_sweeper_stops_armed_deadlines_fall_back_and_still_fire() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let mut sleep = Sleep::until(Instant::now() + Duration::from_millis(100));
            {
                let mut sweeper = Box::pin(sweep());
                assert!(poll_once(&mut sweeper).await.is_pending());
                assert!(poll_once(&mut sleep).await.is_pending());
                assert_eq!(armed_here(), 1);
            }
            let fired = tokio::time::timeout(Duration::from_secs(5), sleep).await;
            assert!(
                fired.is_ok(),
                "an armed deadline hung once its sweeper stopped"
            );
        });
    }
}
