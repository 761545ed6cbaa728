//! `cargo xtask soak [--minutes N] [--report]`: the fleet under steady load
//! while a schedule injects faults, with the invariants checked at the end
//! (and `--report`: written to RELIABILITY.md). `--minutes 1` is the smoke
//! that `cargo xtask test` runs.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) mod fleet;
mod load;
mod report;

use fleet::{Fleet, JwksMode};
use load::{Class, Tally, Targets};

/// `cargo xtask soak` options.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// How long the faults run, in minutes (whole cycles of the schedule:
    /// 2 minutes each; 1 runs the compressed one-minute smoke).
    #[arg(long, default_value_t = 10)]
    pub(crate) minutes: u64,
    /// Write the results into RELIABILITY.md.
    #[arg(long)]
    pub(crate) report: bool,
}

/// Load threads: enough for a steady few hundred calls a second on two
/// cores, leaving the services most of the CPU.
const WORKERS: u64 = 6;
/// After a fault ends, how long its failures are still the fault's.
const GRACE_MS: u64 = 5_000;
/// Memory and descriptor growth allowed after warm-up (10 %).
const GROWTH: f64 = 1.10;

/// One fault as it happened: when it started and ended (ms since the load
/// started), and which calls it may fail, as docs/OPERATIONS.md promises.
#[derive(Debug, Clone)]
struct Window {
    name: &'static str,
    start_ms: u64,
    end_ms: u64,
    excuses: &'static [Class],
    /// The fault makes the provider forget the opaque tokens it issued
    /// before it: the first 401 for such a token is the fault's too, when
    /// ever the gateway's cache entry for it ends.
    forgets_tokens: bool,
}

/// A sample of one process.
#[derive(Debug, Clone)]
struct Sample {
    at_ms: u64,
    name: String,
    pid: u32,
    rss_kb: u64,
    fds: u64,
}

pub(crate) fn run(root: &Path, args: Args) -> Result<(), String> {
    crate::peers::install()?;
    crate::peers::install_node_peers(root)?;
    let minutes = args.minutes.max(1);
    // The schedule's unit: a two-minute cycle, or one of a minute for the smoke.
    let (cycle_s, cycles, overlap) = if minutes == 1 {
        (60.0, 1, 3)
    } else {
        (120.0, minutes / 2, 5)
    };
    // The smoke runs the debug builds the tests made; a real soak runs
    // what would be deployed.
    eprintln!("soak: building the example binaries");
    let bins = if minutes == 1 {
        svcauth_tests::example_binaries()
    } else {
        svcauth_tests::release_example_binaries()
    };
    let logs = bins
        .parent()
        .ok_or("no target directory")?
        .join("soak-logs");
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
    let mut fleet = Fleet::start(bins, &logs, overlap)?;
    let targets = Targets {
        a: fleet.a.port(),
        gateway: fleet.gateway.port(),
        b: fleet.b_ports,
        op: fleet.op.port,
        redis: fleet.redis.port,
    };
    eprintln!(
        "soak: {} cycle(s) of {cycle_s} s; logs in {}",
        cycles,
        logs.display()
    );

    let tally = Arc::new(Tally::default());
    let processes = Arc::new(Mutex::new(fleet.processes()));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut threads = Vec::new();
    for id in 0..WORKERS {
        let (targets, tally) = (targets.clone(), tally.clone());
        let key = fleet.driver_key.clone();
        threads.push(std::thread::spawn(move || {
            load::worker(id, start, targets, &key, &tally)
        }));
    }
    {
        let (tally, processes, samples) = (tally.clone(), processes.clone(), samples.clone());
        threads.push(std::thread::spawn(move || {
            while !tally.stop.load(Ordering::Acquire) {
                let now: Vec<_> = processes.lock().map(|p| p.clone()).unwrap_or_default();
                if let Ok(mut samples) = samples.lock() {
                    let at_ms = start.elapsed().as_millis() as u64;
                    samples.extend(
                        now.into_iter()
                            .filter_map(|(name, pid)| probe(at_ms, name, pid)),
                    );
                }
                std::thread::sleep(Duration::from_secs(2));
            }
        }));
    }

    let mut windows = Vec::new();
    let mut rotations = 0;
    for cycle in 0..cycles {
        let base = cycle as f64 * cycle_s;
        let mut s = Schedule {
            start,
            base,
            scale: cycle_s / 120.0,
        };
        for (rotate_at, fault_at, mode, name) in [
            (0.0, 12.0, JwksMode::Error, "A's JWKS answers 500"),
            (30.0, 42.0, JwksMode::Hang, "A's JWKS hangs"),
            (60.0, 72.0, JwksMode::Garbage, "A's JWKS answers garbage"),
        ] {
            s.until(rotate_at);
            rotate(&targets)?;
            rotations += 1;
            s.until(fault_at);
            fleet.set_jwks(mode);
            tally.probe_jwks.store(true, Ordering::Release);
            let start_ms = s.now_ms();
            s.until(fault_at + 10.0);
            tally.probe_jwks.store(false, Ordering::Release);
            fleet.set_jwks(JwksMode::Pass);
            // Stale-if-error: B keeps A's last good keys, so nothing may fail.
            windows.push(Window {
                name,
                start_ms,
                end_ms: s.now_ms(),
                excuses: &[],
                forgets_tokens: false,
            });
        }
        s.until(90.0);
        rotate(&targets)?;
        rotations += 1;

        s.until(97.0);
        let start_ms = s.now_ms();
        fleet.redis.kill();
        std::thread::sleep(Duration::from_secs(3));
        fleet.redis.restart();
        windows.push(Window {
            name: "Redis restarts (down 3 s)",
            start_ms,
            end_ms: s.now_ms(),
            // Replay and revocation state is on Redis: fail closed (503).
            excuses: &load::CLASSES,
            forgets_tokens: false,
        });
        set_processes(&processes, &fleet);

        s.until(103.0);
        let start_ms = s.now_ms();
        let keys = svcauth_tests::OidcProvider::keygen().ok_or("node is needed")?;
        fleet.op.restart(keys);
        windows.push(Window {
            name: "the OpenID Provider restarts with a new key",
            start_ms,
            end_ms: s.now_ms(),
            // Its opaque tokens are gone with it: the gateway answers 401
            // (or 503 while it is down) until the client gets a new one.
            excuses: &[Class::Edge],
            forgets_tokens: true,
        });
        set_processes(&processes, &fleet);

        s.until(110.0);
        let start_ms = s.now_ms();
        fleet.stop_b(1);
        std::thread::sleep(Duration::from_secs(2));
        fleet.start_b(1)?;
        windows.push(Window {
            name: "service-b replica 2 restarts (down 2 s)",
            start_ms,
            end_ms: s.now_ms(),
            // Calls in flight on its connections are cut; new ones go to
            // replica 1 (the balancer retries a refused connect).
            excuses: &load::CLASSES,
            forgets_tokens: false,
        });
        set_processes(&processes, &fleet);
        s.until(120.0);
        eprintln!("soak: cycle {} of {cycles} done", cycle + 1);
    }
    // A quiet tail: whatever a fault left behind shows here.
    std::thread::sleep(Duration::from_secs(10));
    tally.stop.store(true, Ordering::Release);
    for thread in threads {
        let _ = thread.join();
    }
    let elapsed_ms = start.elapsed().as_millis() as u64;
    let alive = report::alive(&fleet, &targets);
    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    write_samples(&logs.join("samples.csv"), &samples)?;
    let outcome = report::Outcome::new(
        &tally, &windows, &samples, alive, elapsed_ms, rotations, minutes,
    );
    print!("{}", outcome.summary());
    if args.report {
        crate::reliability::write_section(root, "## Soak under faults", &outcome.markdown())?;
    }
    drop(fleet);
    outcome.verdict()
}

/// Rotates A's key (published now, signing after the overlap).
fn rotate(targets: &Targets) -> Result<(), String> {
    let r = crate::demo::http::http("POST", targets.a, "/rotate", &[], "")?;
    if r.status == 200 {
        Ok(())
    } else {
        Err(format!("POST /rotate answered {}: {}", r.status, r.body))
    }
}

fn set_processes(processes: &Mutex<Vec<(String, u32)>>, fleet: &Fleet) {
    if let Ok(mut p) = processes.lock() {
        *p = fleet.processes();
    }
}

/// Every sample, for a closer look at a process that grew.
fn write_samples(path: &Path, samples: &[Sample]) -> Result<(), String> {
    let mut csv = String::from("at_ms,process,pid,rss_kb,fds\n");
    for s in samples {
        csv.push_str(&format!(
            "{},{},{},{},{}\n",
            s.at_ms, s.name, s.pid, s.rss_kb, s.fds
        ));
    }
    std::fs::write(path, csv).map_err(|e| format!("{}: {e}", path.display()))
}

/// Resident memory and open descriptors of `pid`, from /proc.
fn probe(at_ms: u64, name: String, pid: u32) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(Sample {
        at_ms,
        name,
        pid,
        rss_kb,
        fds,
    })
}

/// Offsets within one cycle of the schedule, scaled to its length.
struct Schedule {
    start: Instant,
    base: f64,
    scale: f64,
}

impl Schedule {
    /// Sleeps until `offset` (in the two-minute cycle's seconds).
    fn until(&mut self, offset: f64) {
        let at = Duration::from_secs_f64(self.base + offset * self.scale);
        if let Some(left) = at.checked_sub(self.start.elapsed()) {
            std::thread::sleep(left);
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}
