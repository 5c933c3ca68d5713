//! Writes that give way to reads. sled 0.34 stops every read while it
//! applies a batch, and on a machine whose cores both readers and the fold
//! want, the time ingestion spends is time a reader may wait. A
//! [`ReadLoad`] records when reads are being served (the HTTP layer enters
//! it for each request); a [`Pace`] given to
//! [`crate::Store::apply_batch_paced`] then pauses the writer after each
//! stretch of work, in proportion to the CPU time the stretch used and to
//! how much of it reads were in flight:
//!
//! `pause = cpu × (1 − share) / share × busy`, at most [`PAUSE_MAX`],
//!
//! where `busy` (0..=1) is the fraction of the stretch's wall time during
//! which at least one read was in flight. Under a saturating read load the
//! writer so uses at most about `share` of the CPU it could; a client
//! polling now and then costs ingestion next to nothing; with no reads
//! nothing pauses and a backlog is caught up at full speed. CPU time, not
//! wall time, is what is paced, so a writer already starved of the CPU by
//! readers (it runs at a lower priority) is not slowed twice.
//!
//! Pacing bounds what ingestion takes; the *write floor* bounds what it
//! gets. Ingestion runs at a lower priority than the readers (`[kafka]
//! nice`), so a read load that keeps every core busy could starve it for
//! good: no batch would finish however long the load lasts. The writer
//! therefore beats — after each record it decodes, each session it folds
//! and each write part — while it has work ([`Pace::working`]), and says
//! when it has none ([`Pace::idle`]). Once it has had work but no beat
//! for `TURN × (1 − floor) / floor` ([`ReadLoad::with_floor`]), the reads
//! that arrive wait for a *write turn* of at most [`TURN`] (the HTTP layer
//! asks [`ReadLoad::writer_turn`]), during which the writer has the cores
//! the readers leave. While it has work, ingestion so gets about `floor`
//! of the wall time at least, and a read waits at most [`TURN`] for it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The share `serve` paces ingestion at unless configured (`[kafka]
/// write_share`; 1 is unpaced): chosen by `scripts/bench-http
/// --during-ingest`, where at 1M sessions it brought by-id and list p99
/// during catch-up from 8.5× and 9.4× the p99 after it (unpaced) to about
/// 1.6× (README). With no reads in flight nothing pauses.
pub const DEFAULT_SHARE: f64 = 0.25;

/// A writer that follows the reads, paced or not, counts as quiet
/// ([`Pace::quiet`]) once no read has been in flight for this long.
pub const QUIET_AFTER: Duration = Duration::from_millis(200);

/// Longest single pause, so that a long stretch of work never stops
/// ingestion for long.
pub const PAUSE_MAX: Duration = Duration::from_millis(100);

/// The write floor `serve` keeps unless configured (`[kafka]
/// write_floor`; 0 is none): the least share of wall time a starved
/// ingestion gets while it has work (module docs).
pub const DEFAULT_FLOOR: f64 = 0.05;

/// Longest write turn: the most a read waits for a starved writer.
pub const TURN: Duration = Duration::from_millis(5);

/// The writer's side of a [`ReadLoad`]: whether it has work, its last
/// beat, and the write turns its starvation started.
#[derive(Debug, Default)]
struct Writer {
    working: AtomicBool,
    /// The last beat or change of `working`, ns since the load's origin.
    beat: AtomicU64,
    /// When the current or last write turn ends, ns since the origin (0:
    /// none yet).
    turn_end: AtomicU64,
    /// Write turns started.
    turns: AtomicU64,
}

/// When reads are being served: a running total of the time at least one
/// was in flight.
#[derive(Debug)]
pub struct ReadLoad {
    state: Mutex<LoadState>,
    origin: Instant,
    writer: Writer,
    /// Writer starvation that starts a write turn: no beat for this long
    /// while it has work (`None`: no floor).
    starved_after: Option<Duration>,
}

#[derive(Debug, Default)]
struct LoadState {
    in_flight: usize,
    /// When the current busy interval began (valid while `in_flight > 0`).
    since: Duration,
    /// Busy time of the intervals that ended.
    busy: Duration,
    /// When the last busy interval ended (`None`: no read yet).
    last_end: Option<Duration>,
}

impl Default for ReadLoad {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            origin: Instant::now(),
            writer: Writer::default(),
            starved_after: None,
        }
    }
}

impl ReadLoad {
    /// A load whose reads make room for a starved writer: while it has
    /// work, it gets at least about `floor` (0 < floor < 1) of the wall
    /// time (module docs). A floor out of that range is none.
    pub fn with_floor(floor: f64) -> Self {
        let starved_after =
            (floor > 0.0 && floor < 1.0).then(|| TURN.mul_f64((1.0 - floor) / floor));
        Self {
            starved_after,
            ..Self::default()
        }
    }

    fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    /// Whether a read arriving now must wait for a write turn, and for how
    /// long at most before asking again (`None`: go on). A turn starts once
    /// the writer has had work but no beat for the floor's bound since its
    /// last beat or the last turn's end, whichever is later; it ends after
    /// [`TURN`], or as soon as the writer has no work.
    pub fn writer_turn(&self) -> Option<Duration> {
        let starved_after = self.starved_after?.as_nanos() as u64;
        let w = &self.writer;
        if !w.working.load(Ordering::Acquire) {
            return None;
        }
        let now = self.now_ns();
        let end = w.turn_end.load(Ordering::Acquire);
        if now >= end {
            let since = w.beat.load(Ordering::Acquire).max(end);
            if now.saturating_sub(since) < starved_after {
                return None;
            }
            // Starved: one read starts the turn, the others see it.
            let turn = now + TURN.as_nanos() as u64;
            if w.turn_end
                .compare_exchange(end, turn, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                w.turns.fetch_add(1, Ordering::Relaxed);
            }
        }
        let left = w.turn_end.load(Ordering::Acquire).saturating_sub(now);
        (left > 0).then(|| Duration::from_nanos(left))
    }

    /// Write turns started so far (the time requests waited for them is
    /// the HTTP layer's `ledger_http_write_turn_wait_seconds`).
    pub fn turns(&self) -> u64 {
        self.writer.turns.load(Ordering::Relaxed)
    }

    fn beat(&self, working: bool) {
        self.writer.beat.store(self.now_ns(), Ordering::Release);
        self.writer.working.store(working, Ordering::Release);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LoadState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A read starts; it ends when the guard drops.
    pub fn enter(self: &Arc<Self>) -> ReadGuard {
        let now = self.origin.elapsed();
        let mut s = self.lock();
        if s.in_flight == 0 {
            s.since = now;
        }
        s.in_flight += 1;
        ReadGuard(self.clone())
    }

    /// Reads in flight now.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// Whether a read is in flight or one ended within `window`.
    pub fn active_within(&self, window: Duration) -> bool {
        let now = self.origin.elapsed();
        let s = self.lock();
        s.in_flight > 0 || s.last_end.is_some_and(|e| now.saturating_sub(e) < window)
    }

    /// Time since this load was made during which a read was in flight,
    /// and the time since it was made.
    fn busy_total(&self) -> (Duration, Duration) {
        let now = self.origin.elapsed();
        let s = self.lock();
        let open = if s.in_flight > 0 {
            now.saturating_sub(s.since)
        } else {
            Duration::ZERO
        };
        (s.busy + open, now)
    }
}

/// One read in flight (see [`ReadLoad::enter`]).
#[derive(Debug)]
pub struct ReadGuard(Arc<ReadLoad>);

impl Drop for ReadGuard {
    fn drop(&mut self) {
        let now = self.0.origin.elapsed();
        let mut s = self.0.lock();
        s.in_flight -= 1;
        if s.in_flight == 0 {
            let since = s.since;
            s.busy += now.saturating_sub(since);
            s.last_end = Some(now);
        }
    }
}

/// The CPU time the calling thread has used.
pub fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec.max(0) as u64, t.tv_nsec as u32)
}

/// Where a stretch of work began: wall time, busy time, the thread's CPU.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    at: Duration,
    busy: Duration,
    cpu: Duration,
}

/// How a writer paces itself against reads (module docs): while reads go
/// on, it uses at most about `share` (0 < share < 1) of the CPU it could.
#[derive(Debug, Clone, Default)]
pub struct Pace {
    load: Option<Arc<ReadLoad>>,
    share: f64,
    /// Time paused so far, ns (shared by clones).
    paused: Arc<AtomicU64>,
}

impl Pace {
    /// No pacing: the writer runs flat out whatever the reads.
    pub fn none() -> Self {
        Self::default()
    }

    /// Pacing against `load` at `share`; a share of 1 or more (or not
    /// above 0) is no pacing, but the writer still follows `load` to know
    /// when nobody reads ([`Pace::quiet`]).
    pub fn new(load: Arc<ReadLoad>, share: f64) -> Self {
        let paced = share > 0.0 && share < 1.0;
        Self {
            load: Some(load),
            share: if paced { share } else { 1.0 },
            paused: Arc::default(),
        }
    }

    /// Whether writes pause for reads (a share below 1).
    fn paced(&self) -> bool {
        self.load.is_some() && self.share < 1.0
    }

    /// The share of the CPU writes take under a saturating read load (1:
    /// unpaced).
    pub fn share(&self) -> f64 {
        if self.paced() {
            self.share
        } else {
            1.0
        }
    }

    /// Whether this pace has reads to follow and none was in flight for
    /// [`QUIET_AFTER`]: the writer may then take bigger steps, paced or
    /// not. [`Pace::none`] knows of no reads and is never quiet.
    pub fn quiet(&self) -> bool {
        self.load
            .as_ref()
            .is_some_and(|l| !l.active_within(QUIET_AFTER))
    }

    /// The writer has work and makes progress (a beat; module docs).
    /// Cheap: a clock read and two stores.
    #[inline]
    pub fn working(&self) {
        if let Some(l) = &self.load {
            l.beat(true);
        }
    }

    /// The writer has no work now (it waits for records, for the disk, or
    /// pauses): no write turn is due to it.
    #[inline]
    pub fn idle(&self) {
        if let Some(l) = &self.load {
            l.beat(false);
        }
    }

    /// Time paused so far, by this pace and its clones.
    pub fn paused(&self) -> Duration {
        Duration::from_nanos(self.paused.load(Ordering::Relaxed))
    }

    /// How long to pause after `cpu` of work during which reads were in
    /// flight for the fraction `busy` of the time (module docs).
    pub fn pause_for(&self, cpu: Duration, busy: f64) -> Duration {
        if !self.paced() || busy.is_nan() || busy <= 0.0 {
            return Duration::ZERO;
        }
        cpu.mul_f64((1.0 - self.share) / self.share * busy.min(1.0))
            .min(PAUSE_MAX)
    }

    /// The start of a stretch of work on the calling thread (`None`:
    /// unpaced, nothing to measure).
    pub fn mark(&self) -> Option<Mark> {
        self.working();
        let load = self.load.as_ref().filter(|_| self.paced())?;
        let (busy, at) = load.busy_total();
        Some(Mark {
            at,
            busy,
            cpu: thread_cpu(),
        })
    }

    /// Pauses after the stretch of work that began at `mark`, which used
    /// the calling thread's CPU since then plus `other_cpu` (of threads it
    /// waited for).
    pub fn after(&self, mark: Option<Mark>, other_cpu: Duration) {
        let (Some(load), Some(m)) = (&self.load, mark) else {
            return;
        };
        let cpu = thread_cpu().saturating_sub(m.cpu) + other_cpu;
        let (busy, at) = load.busy_total();
        let wall = at.saturating_sub(m.at);
        let busy = if wall.is_zero() {
            f64::from(u8::from(load.in_flight() > 0))
        } else {
            busy.saturating_sub(m.busy).as_secs_f64() / wall.as_secs_f64()
        };
        let pause = self.pause_for(cpu, busy);
        if !pause.is_zero() {
            load.beat(false);
            std::thread::sleep(pause);
            self.paused
                .fetch_add(pause.as_nanos() as u64, Ordering::Relaxed);
            load.beat(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_time_counts_while_any_read_is_in_flight() {
        let load = Arc::new(ReadLoad::default());
        let (b0, _) = load.busy_total();
        assert_eq!(b0, Duration::ZERO, "no read yet");
        let a = load.enter();
        let b = load.enter();
        assert_eq!(load.in_flight(), 2);
        std::thread::sleep(Duration::from_millis(20));
        drop(a);
        std::thread::sleep(Duration::from_millis(20));
        let (open, _) = load.busy_total();
        assert!(
            open >= Duration::from_millis(40),
            "one still in flight: {open:?}"
        );
        drop(b);
        let (closed, _) = load.busy_total();
        std::thread::sleep(Duration::from_millis(20));
        let (later, _) = load.busy_total();
        assert_eq!(later, closed, "nothing in flight: no busy time accrues");
        assert_eq!(load.in_flight(), 0);
    }

    #[test]
    fn quiet_once_no_read_was_in_flight_for_a_while() {
        let load = Arc::new(ReadLoad::default());
        let pace = Pace::new(load.clone(), 0.5);
        assert!(pace.quiet(), "no read yet");
        assert!(!Pace::none().quiet(), "no reads to follow: never quiet");
        // Unpaced (share 1) still follows the reads.
        let unpaced = Pace::new(load.clone(), 1.0);
        assert!(unpaced.quiet());
        {
            let _read = load.enter();
            assert!(!unpaced.quiet());
        }
        let read = load.enter();
        assert!(!pace.quiet());
        std::thread::sleep(QUIET_AFTER + Duration::from_millis(20));
        assert!(!pace.quiet(), "a read still in flight");
        drop(read);
        assert!(!pace.quiet(), "a read just ended");
        std::thread::sleep(QUIET_AFTER + Duration::from_millis(20));
        assert!(pace.quiet());
    }

    #[test]
    fn pauses_keep_the_share_scale_with_busy_and_are_bounded() {
        let load = Arc::new(ReadLoad::default());
        let ms = Duration::from_millis;
        let half = Pace::new(load.clone(), 0.5);
        assert_eq!(half.pause_for(ms(10), 1.0), ms(10));
        assert_eq!(half.pause_for(ms(10), 0.5), ms(5));
        assert_eq!(half.pause_for(ms(10), 0.0), Duration::ZERO);
        assert_eq!(half.pause_for(ms(10), f64::NAN), Duration::ZERO);
        assert_eq!(half.pause_for(ms(10), 3.0), ms(10), "busy is at most 1");
        assert_eq!(half.pause_for(ms(500), 1.0), PAUSE_MAX);
        let quarter = Pace::new(load.clone(), 0.25);
        assert_eq!(quarter.pause_for(ms(10), 1.0), ms(30));
        assert_eq!(quarter.share(), 0.25);
        for off in [
            Pace::new(load.clone(), 1.0),
            Pace::new(load, 0.0),
            Pace::none(),
        ] {
            assert_eq!(off.pause_for(ms(10), 1.0), Duration::ZERO);
            assert_eq!(off.share(), 1.0);
            assert!(off.mark().is_none());
        }
    }

    #[test]
    fn after_pauses_for_cpu_used_while_a_read_goes_on() {
        let load = Arc::new(ReadLoad::default());
        let pace = Pace::new(load.clone(), 0.5);
        let _read = load.enter();
        let mark = pace.mark();
        // Work measured on other threads counts as given.
        let t = Instant::now();
        pace.after(mark, Duration::from_millis(30));
        assert!(
            t.elapsed() >= Duration::from_millis(30),
            "paused {:?}",
            t.elapsed()
        );
        assert!(pace.clone().paused() >= Duration::from_millis(30));
    }

    #[test]
    fn a_starved_writer_gets_bounded_turns_and_an_idle_one_none() {
        let ms = Duration::from_millis;
        // Floor 0.02: starved after 245 ms without a beat.
        let load = Arc::new(ReadLoad::with_floor(0.02));
        let starved = load.starved_after.unwrap() + ms(3);
        let pace = Pace::new(load.clone(), 0.25);
        assert_eq!(load.writer_turn(), None, "no writer yet");
        pace.working();
        assert_eq!(load.writer_turn(), None, "it just beat");
        std::thread::sleep(starved);
        // Starved: a turn of at most TURN, one for every read that asks.
        let first = load.writer_turn().expect("a turn");
        assert!(first <= TURN, "{first:?}");
        let second = load.writer_turn().expect("the same turn");
        assert!(second <= first);
        assert_eq!(load.turns(), 1, "one turn, however many reads ask");
        // It ends after TURN; the next is due only the bound later.
        std::thread::sleep(first + ms(1));
        assert_eq!(load.writer_turn(), None, "the turn ended");
        std::thread::sleep(starved);
        assert!(load.writer_turn().is_some(), "starved again");
        assert_eq!(load.turns(), 2);
        // A writer with no work ends its turn and gets none.
        pace.idle();
        assert_eq!(load.writer_turn(), None);
        std::thread::sleep(starved);
        assert_eq!(load.writer_turn(), None, "idle: never starved");
        // A beating writer is never starved.
        for _ in 0..5 {
            pace.working();
            std::thread::sleep(ms(10));
            assert_eq!(load.writer_turn(), None);
        }
        assert_eq!(load.turns(), 2);
    }

    #[test]
    fn without_a_floor_reads_never_wait() {
        for load in [
            ReadLoad::default(),
            ReadLoad::with_floor(0.0),
            ReadLoad::with_floor(1.0),
            ReadLoad::with_floor(f64::NAN),
        ] {
            let load = Arc::new(load);
            Pace::new(load.clone(), 0.25).working();
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(load.writer_turn(), None);
        }
        // The default floor leaves the writer 95 ms before a 5 ms turn.
        let load = ReadLoad::with_floor(DEFAULT_FLOOR);
        assert_eq!(load.starved_after, Some(Duration::from_millis(95)));
    }

    #[test]
    fn a_pause_is_not_starvation() {
        let load = Arc::new(ReadLoad::with_floor(0.5));
        let pace = Pace::new(load.clone(), 0.01);
        let _read = load.enter();
        let mark = pace.mark();
        let (reader, stop) = (load.clone(), Arc::new(AtomicBool::new(false)));
        let asked = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut turns = 0;
                while !stop.load(Ordering::Acquire) {
                    turns += usize::from(reader.writer_turn().is_some());
                    std::thread::sleep(Duration::from_millis(1));
                }
                turns
            })
        };
        // A 40 ms pause (1 ms of CPU at share 0.01 is 99 ms, bounded).
        pace.after(mark, Duration::from_micros(400));
        stop.store(true, Ordering::Release);
        assert!(pace.paused() >= Duration::from_millis(39));
        assert_eq!(asked.join().unwrap(), 0, "a turn during a pause");
        assert_eq!(load.turns(), 0);
    }

    #[test]
    fn thread_cpu_grows_with_work_not_with_sleep() {
        let c0 = thread_cpu();
        std::thread::sleep(Duration::from_millis(30));
        let slept = thread_cpu() - c0;
        let mut x = 0u64;
        let c1 = thread_cpu();
        while thread_cpu() - c1 < Duration::from_millis(5) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(x > 0);
        assert!(
            slept < Duration::from_millis(30),
            "sleeping used {slept:?} of CPU"
        );
    }
}
