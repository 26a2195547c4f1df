//! The run pool: the threads that run in-process checks on their schedule.
//!
//! A tokio timer per check and a hand-off to the blocking pool woke several
//! threads per run: the timer wheel moving the timer down its levels, the
//! blocking thread, then the task awaiting it. On a virtual machine each
//! wake-up costs tens of microseconds, more than a cheap check does. Here
//! each free thread waits for the earliest queued run that no other thread
//! waits for, and makes the call itself when that time comes: one wake-up
//! per run. Before a call, a thread makes sure another one is free, so a slow
//! or stuck plugin never holds up other checks; a call's deadline is an
//! [`Alarm`] armed around it, watched by one thread that wakes only when a
//! call overruns.
//!
//! A check is in one of two places: queued (one entry, at its next run), or
//! out with whoever runs it, who puts it back ([`requeue`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Notify, oneshot};

use super::alarm::{Alarm, Alarms, Rung};
use super::runner::{InProcess, crashed, timed_out};
use crate::status::{Board, CheckSpec, RunRecord};
use crate::telemetry::Metrics;

/// Threads out of a call kept even when idle: one to make a call, one to
/// wait meanwhile. Threads stuck in a plugin do not count.
const MIN_FREE: usize = 2;
/// At most this many threads, as in tokio's blocking pool.
const MAX_THREADS: usize = 512;
/// A thread beyond [`MIN_FREE`] with nothing to wait for leaves after this.
const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// Threads wake on whole milliseconds of the pool's clock, so runs due within
/// one millisecond share a wake-up, as with tokio's timer wheel.
const GRAIN: Duration = Duration::from_millis(1);

/// A check in the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct SlotId(u64);

/// A queued run: when, and whose; the id makes keys unique.
type Key = (Instant, SlotId);

/// An answer owed to whoever asked for a run now.
pub(super) type Reply = oneshot::Sender<RunRecord>;

/// The pool, shared by its handles; dropping them all without
/// [`Pool::stop`] leaves its threads running.
#[derive(Debug, Clone)]
pub(super) struct Pool {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    alarms: Alarms,
    board: Arc<Board>,
    metrics: Metrics,
    /// The pool's clock starts here; see [`GRAIN`].
    epoch: Instant,
    /// Signalled when a call ends while the pool stops.
    drained: Notify,
}

#[derive(Debug, Default)]
struct State {
    slots: HashMap<SlotId, Slot>,
    queue: BTreeSet<Key>,
    /// Queued runs a free thread waits for, and which thread.
    claims: BTreeMap<Key, u64>,
    threads: HashMap<u64, Thread>,
    next_slot: u64,
    next_thread: u64,
    stopping: bool,
    /// [`MAX_THREADS`] was reached and said so; cleared when a thread leaves.
    capped: bool,
}

/// What a check's runs need, shared with the thread running one.
#[derive(Debug)]
struct Check {
    spec: CheckSpec,
    runner: InProcess,
    span: tracing::Span,
}

#[derive(Debug)]
struct Slot {
    check: Arc<Check>,
    /// The next scheduled run; overruns skip ticks but keep the phase.
    next_tick: Instant,
    /// Runs asked for now, each answered with its record.
    requests: VecDeque<Reply>,
    /// When it is queued; `None` while out.
    queued: Option<Instant>,
    /// Removed while out: whoever has it drops it.
    removed: bool,
}

#[derive(Debug)]
struct Thread {
    wake: Arc<Condvar>,
    /// The queued run this thread waits for.
    claim: Option<Key>,
    /// The call this thread is in.
    call: Option<Call>,
}

#[derive(Debug)]
struct Call {
    slot: SlotId,
    timeout: Duration,
    started_at: SystemTime,
    started: Instant,
    reply: Option<Reply>,
    /// Given up on at its deadline: the thread is stuck in the plugin, and
    /// what it returns is dropped.
    abandoned: bool,
}

impl Pool {
    /// A pool with no checks; its threads start with the first one.
    pub(super) fn new(board: Arc<Board>, metrics: Metrics) -> std::io::Result<Pool> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            alarms: Alarms::new()?,
            board,
            metrics,
            epoch: Instant::now(),
            drained: Notify::new(),
        });
        let watcher = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("warden-deadlines".to_owned())
            .spawn(move || watcher.watch())?;
        Ok(Pool { shared })
    }

    /// Schedules a check, its first run at `first`.
    pub(super) fn add(&self, spec: CheckSpec, runner: InProcess, first: Instant) -> SlotId {
        let span = tracing::error_span!("check", check = %spec.name, plugin = %spec.plugin);
        let mut state = self.shared.lock();
        let id = SlotId(state.next_slot);
        state.next_slot += 1;
        let check = Arc::new(Check { spec, runner, span });
        state.slots.insert(
            id,
            Slot {
                check,
                next_tick: first,
                requests: VecDeque::new(),
                queued: None,
                removed: false,
            },
        );
        while state.free_threads() < MIN_FREE && self.shared.spawn_thread(&mut state) {}
        self.shared.release(&mut state, id, Instant::now());
        id
    }

    /// Stops scheduling a check; a call in progress is left to end, and
    /// what it returns is dropped.
    pub(super) fn remove(&self, id: SlotId) {
        let mut state = self.shared.lock();
        let Some(slot) = state.slots.get_mut(&id) else {
            return;
        };
        match slot.queued {
            Some(at) => {
                state.unqueue((at, id));
                state.slots.remove(&id);
            }
            None => slot.removed = true,
        }
    }

    /// Asks for a run now, between scheduled ones; `reply` gets its record,
    /// or is dropped if the check is removed first.
    pub(super) fn request(&self, id: SlotId, reply: Reply) {
        let mut state = self.shared.lock();
        let now = Instant::now();
        let Some(slot) = state.slots.get_mut(&id) else {
            return;
        };
        slot.requests.push_back(reply);
        // Out, it is requeued for now by whoever has it.
        if let Some(at) = slot.queued
            && at > now
        {
            state.unqueue((at, id));
            self.shared.release(&mut state, id, now);
        }
    }

    /// Stops every check and waits for calls in progress, each until it
    /// returns or its deadline passes; their results are dropped.
    pub(super) async fn stop(&self) {
        {
            let mut state = self.shared.lock();
            state.stopping = true;
            state.queue.clear();
            state.claims.clear();
            state.slots.clear();
            for thread in state.threads.values() {
                thread.wake.notify_one();
            }
        }
        loop {
            let drained = self.shared.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.shared.lock().calls_in_progress() == 0 {
                break;
            }
            drained.await;
        }
        self.shared.alarms.stop();
    }
}

impl State {
    /// The earliest queued run no thread waits for.
    fn next_unclaimed(&self) -> Option<Key> {
        self.queue
            .iter()
            .find(|key| !self.claims.contains_key(key))
            .copied()
    }

    /// Takes a run off the queue; a thread waiting for it picks again.
    fn unqueue(&mut self, key: Key) {
        self.queue.remove(&key);
        if let Some(thread) = self.claims.remove(&key)
            && let Some(thread) = self.threads.get_mut(&thread)
        {
            thread.claim = None;
            thread.wake.notify_one();
        }
        if let Some(slot) = self.slots.get_mut(&key.1) {
            slot.queued = None;
        }
    }

    fn thread(&mut self, id: u64) -> &mut Thread {
        self.threads
            .get_mut(&id)
            .expect("a pool thread keeps its entry")
    }

    /// Threads not in a call: waiting, or about to pick a run.
    fn free_threads(&self) -> usize {
        self.threads.values().filter(|t| t.call.is_none()).count()
    }

    /// A free thread waiting for nothing in particular.
    fn idle_thread(&self) -> Option<u64> {
        self.threads
            .iter()
            .find(|(_, t)| t.call.is_none() && t.claim.is_none())
            .map(|(id, _)| *id)
    }

    fn claim(&mut self, thread: u64, key: Key) {
        self.thread(thread).claim = Some(key);
        self.claims.insert(key, thread);
    }

    fn release_claim(&mut self, thread: u64) {
        if let Some(key) = self.threads.get_mut(&thread).and_then(|t| t.claim.take()) {
            self.claims.remove(&key);
        }
    }

    /// Calls not given up on, which a stop waits for.
    fn calls_in_progress(&self) -> usize {
        self.threads
            .values()
            .filter(|t| t.call.as_ref().is_some_and(|c| !c.abandoned))
            .count()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When a thread waiting for a run due at `due` wakes: on the grain.
    fn wake_at(&self, due: Instant) -> Instant {
        let since = due.saturating_duration_since(self.epoch);
        let grains = since.as_nanos().div_ceil(GRAIN.as_nanos());
        u64::try_from(grains * GRAIN.as_nanos())
            .ok()
            .and_then(|nanos| self.epoch.checked_add(Duration::from_nanos(nanos)))
            .unwrap_or(due)
    }

    /// Puts a check that is out back in the queue and makes sure a thread
    /// waits for it.
    fn release(self: &Arc<Self>, state: &mut State, id: SlotId, now: Instant) {
        if let Some(key) = requeue(state, id, now) {
            self.assign(state, key);
        }
    }

    /// Makes sure a free thread waits for a queued run that none waits for:
    /// an idle one, or else the one waiting for the latest run, if this one
    /// comes earlier; with no free thread at all, a new one. The claim is
    /// written here, before the thread wakes, so a second run queued
    /// meanwhile goes to another thread. A run later than every claimed one
    /// waits: whoever takes a claimed run hands on the next one
    /// ([`Shared::run`]).
    fn assign(self: &Arc<Self>, state: &mut State, key: Key) {
        if state.claims.contains_key(&key) {
            return;
        }
        let thread = if let Some(idle) = state.idle_thread() {
            idle
        } else if let Some((&latest, &thread)) = state.claims.last_key_value()
            && key < latest
        {
            state.release_claim(thread);
            thread
        } else {
            self.keep_one_free(state);
            return;
        };
        state.claim(thread, key);
        state.threads[&thread].wake.notify_one();
    }

    /// Starts a thread; false if none can be started.
    fn spawn_thread(self: &Arc<Self>, state: &mut State) -> bool {
        if state.stopping {
            return false;
        }
        if state.threads.len() >= MAX_THREADS {
            if !state.capped {
                state.capped = true;
                tracing::error!(
                    threads = MAX_THREADS,
                    "every check thread is inside a plugin call; runs wait until one returns"
                );
            }
            return false;
        }
        let id = state.next_thread;
        state.next_thread += 1;
        let alarm = match self.alarms.alarm(id) {
            Ok(alarm) => alarm,
            Err(error) => {
                tracing::warn!(%error, "cannot start another check thread");
                return false;
            }
        };
        let wake = Arc::new(Condvar::new());
        state.threads.insert(
            id,
            Thread {
                wake: Arc::clone(&wake),
                claim: None,
                call: None,
            },
        );
        let shared = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("warden-check".to_owned())
            .spawn(move || shared.work(id, &alarm, &wake));
        if let Err(error) = spawned {
            state.threads.remove(&id);
            tracing::warn!(%error, "cannot start another check thread");
            return false;
        }
        true
    }

    /// Makes sure a thread is out of a call, to take the next run.
    fn keep_one_free(self: &Arc<Self>, state: &mut State) {
        if state.free_threads() == 0 {
            self.spawn_thread(state);
        }
    }

    /// A pool thread: wait for the earliest unclaimed run, make it, repeat.
    /// Threads beyond [`MIN_FREE`] free ones leave: after a call when three
    /// more are free (so a pool that grew during a burst shrinks without
    /// churning), or after [`KEEP_ALIVE`] with nothing to wait for.
    fn work(self: Arc<Self>, id: u64, alarm: &Alarm, wake: &Condvar) {
        let mut state = self.lock();
        while !state.stopping {
            // Whatever this thread waited for, it picks afresh.
            state.release_claim(id);
            let now = Instant::now();
            match state.next_unclaimed() {
                Some(key) if key.0 <= now => {
                    state = self.run(state, id, alarm, key);
                    if state.free_threads() > MIN_FREE + 1 {
                        break;
                    }
                }
                Some(key) => {
                    state.claim(id, key);
                    let wait = self.wake_at(key.0).saturating_duration_since(now);
                    state = wake
                        .wait_timeout(state, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                None => {
                    let (guard, waited) = wake
                        .wait_timeout(state, KEEP_ALIVE)
                        .unwrap_or_else(PoisonError::into_inner);
                    state = guard;
                    if waited.timed_out()
                        && state.thread(id).claim.is_none()
                        && state.free_threads() > MIN_FREE
                    {
                        break;
                    }
                }
            }
        }
        state.release_claim(id);
        state.threads.remove(&id);
        state.capped = false;
        // What this thread would have picked next goes to another.
        if let Some(key) = state.next_unclaimed() {
            self.assign(&mut state, key);
        }
    }

    /// Makes the queued run `key` on this thread.
    fn run<'a>(
        self: &'a Arc<Self>,
        mut state: MutexGuard<'a, State>,
        id: u64,
        alarm: &Alarm,
        key: Key,
    ) -> MutexGuard<'a, State> {
        let (due, slot_id) = key;
        // Not claimed: this thread gave up its claim before picking it.
        state.unqueue(key);
        let now = Instant::now();
        let Some(slot) = state.slots.get_mut(&slot_id) else {
            return state;
        };
        let reply = slot.requests.pop_front();
        if reply.is_none() {
            self.metrics
                .observe_start_delay(now.saturating_duration_since(due));
            // A tick missed while a call overran is made late, once (this
            // run); the ones after it keep the phase.
            let interval = slot.check.spec.interval.max(GRAIN);
            slot.next_tick = skip_missed(due + interval, interval, now);
        }
        let check = Arc::clone(&slot.check);
        let timeout = check.spec.timeout;
        let started_at = SystemTime::now();
        state.thread(id).call = Some(Call {
            slot: slot_id,
            timeout,
            started_at,
            started: now,
            reply,
            abandoned: false,
        });
        self.keep_one_free(&mut state);
        // The run after this one needs a thread waiting for it.
        if let Some(next) = state.next_unclaimed() {
            self.assign(&mut state, next);
        }
        drop(state);

        alarm.arm(timeout.saturating_sub(now.elapsed()));
        let result = catch_unwind(AssertUnwindSafe(|| {
            check.runner.call(timeout, started_at, now)
        }));
        alarm.disarm();

        let mut state = self.lock();
        let call = state
            .thread(id)
            .call
            .take()
            .expect("a call outlives itself");
        // Abandoned: the watcher reported the timeout and put the check back.
        if call.abandoned || state.stopping {
            self.drained.notify_waiters();
            return state;
        }
        if state.slots.get(&slot_id).is_none_or(|s| s.removed) {
            requeue(&mut state, slot_id, Instant::now());
            return state;
        }
        drop(state);
        let record = result.unwrap_or_else(|panic| {
            crashed(
                &panic_text(&*panic),
                call.started_at,
                call.started.elapsed(),
            )
        });
        check.span.in_scope(|| {
            super::record_run(&self.board, &self.metrics, &check.spec, record, call.reply);
        });
        let mut state = self.lock();
        // Recorded before it is queued again, so runs are recorded in order.
        // No thread is woken for it: this one picks again right away.
        requeue(&mut state, slot_id, Instant::now());
        state
    }

    /// The deadline watcher: reports overrun calls as timeouts and puts
    /// their checks back in the queue, while their threads stay stuck.
    fn watch(self: Arc<Self>) {
        loop {
            match self.alarms.wait() {
                Ok(Rung::Alarms(threads)) => {
                    for thread in threads {
                        self.overran(thread);
                    }
                }
                Ok(Rung::Stopped) => return,
                Err(error) => {
                    tracing::error!(%error, "cannot watch check deadlines any more");
                    return;
                }
            }
        }
    }

    fn overran(self: &Arc<Self>, thread: u64) {
        let now = Instant::now();
        let mut state = self.lock();
        let Some(call) = state.threads.get_mut(&thread).and_then(|t| t.call.as_mut()) else {
            return;
        };
        // A stale alarm: the call ended, maybe another began, in the meantime.
        if call.abandoned || now < call.started + call.timeout {
            return;
        }
        call.abandoned = true;
        let record = timed_out(call.timeout, call.started_at, call.started.elapsed());
        let (slot_id, reply) = (call.slot, call.reply.take());
        if state.stopping {
            self.drained.notify_waiters();
            return;
        }
        self.keep_one_free(&mut state);
        let Some(check) = state
            .slots
            .get(&slot_id)
            .filter(|s| !s.removed)
            .map(|s| Arc::clone(&s.check))
        else {
            self.release(&mut state, slot_id, now);
            return;
        };
        drop(state);
        check.span.in_scope(|| {
            super::record_run(&self.board, &self.metrics, &check.spec, record, reply);
        });
        let mut state = self.lock();
        self.release(&mut state, slot_id, Instant::now());
    }
}

/// Puts a check that is out back in the queue (at `now` if a run was asked
/// for, else at its next tick) and returns its key, or drops it if it was
/// removed or the pool stops.
fn requeue(state: &mut State, id: SlotId, now: Instant) -> Option<Key> {
    let stopping = state.stopping;
    let slot = state.slots.get_mut(&id)?;
    if slot.removed || stopping {
        state.slots.remove(&id);
        return None;
    }
    // A next tick already past (the call overran it) is queued as it is, so
    // it runs at once and its lateness is observed.
    let at = if slot.requests.is_empty() {
        slot.next_tick
    } else {
        now
    };
    slot.queued = Some(at);
    state.queue.insert((at, id));
    Some((at, id))
}

/// `tick` if it is still ahead of `now`, else the first tick of its phase
/// that is: further ticks missed during an overrun are skipped, not made up
/// for, as with tokio's `MissedTickBehavior::Skip`.
fn skip_missed(tick: Instant, interval: Duration, now: Instant) -> Instant {
    if tick > now {
        return tick;
    }
    let behind = now.duration_since(tick).as_nanos();
    let missed = behind / interval.as_nanos() + 1;
    tick + interval * u32::try_from(missed).unwrap_or(u32::MAX)
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned())
}
