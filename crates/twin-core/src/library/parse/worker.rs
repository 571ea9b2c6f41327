//! PDF text extraction in a child process with memory, CPU and time limits.
//!
//! PDF is the one format whose parser Twin cannot bound from the outside: lopdf inflates every
//! stream whole (a Flate bomb of a few KB asks for GBs), page trees can be circular, and a
//! damaged xref can send it into long loops. `catch_unwind` stops panics only; running out of
//! memory aborts the process and a loop never returns. So the extraction runs in a copy of the
//! host executable started with [`WORKER_ARG`], under an address-space limit
//! ([`MEMORY_LIMIT`]) and a CPU limit, and is killed at [`TIME_LIMIT`]. Whatever happens to it,
//! the import goes on and the file is reported with the reason.
//!
//! A host opts in by calling [`serve_if_asked`] first thing in `main` (both shells do). Hosts
//! that do not (a library user, a unit-test binary) extract in process as before.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::ParseError;

/// The first argument that makes a Twin executable serve one extraction and exit.
pub const WORKER_ARG: &str = "--twin-pdf-worker";

/// The worker's address-space limit: generous for real documents (a 300-page book extracts in
/// well under 100 MiB), small enough that a bomb fails fast on an 8 GB laptop.
pub const MEMORY_LIMIT: u64 = 768 << 20;

/// The worker's wall-clock limit.
pub const TIME_LIMIT: Duration = Duration::from_secs(30);

/// The most extracted text read back (a PDF's text layer is rarely over a few MB).
const OUTPUT_LIMIT: u64 = 64 << 20;

/// Exit status of a worker that read the PDF and found it damaged (its message on stdout).
const EXIT_DAMAGED: i32 = 3;

/// Whether this process can start workers (its `main` serves [`WORKER_ARG`]).
static HOST_SERVES_WORKERS: AtomicBool = AtomicBool::new(false);

/// Call first in `main`. When this process was started as a PDF worker, extract the PDF on
/// stdin, write the text to stdout and exit; otherwise note that workers can be started from
/// this executable and return.
pub fn serve_if_asked() {
    if std::env::args_os().nth(1).is_some_and(|a| a == WORKER_ARG) {
        let mut bytes = Vec::new();
        let code = match std::io::stdin().read_to_end(&mut bytes) {
            Ok(_) => match super::pdf::extract_in_process(&bytes) {
                Ok(text) => write_out(text.as_bytes(), 0),
                Err(reason) => write_out(reason.as_bytes(), EXIT_DAMAGED),
            },
            Err(e) => write_out(e.to_string().as_bytes(), EXIT_DAMAGED),
        };
        std::process::exit(code);
    }
    HOST_SERVES_WORKERS.store(true, Ordering::SeqCst);
}

fn write_out(bytes: &[u8], code: i32) -> i32 {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        Ok(()) => code,
        Err(_) => EXIT_DAMAGED,
    }
}

/// Extract `bytes`' text layer in a limited child process when the host serves workers, else
/// in process. `Err` carries the reason the user sees.
pub fn extract(bytes: &[u8]) -> Result<String, ParseError> {
    if !HOST_SERVES_WORKERS.load(Ordering::SeqCst) {
        return super::pdf::extract_in_process(bytes).map_err(ParseError::Invalid);
    }
    let exe = std::env::current_exe()
        .map_err(|e| ParseError::Invalid(format!("cannot start the PDF reader: {e}")))?;
    let mut command = Command::new(exe);
    command
        .arg(WORKER_ARG)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // One thread is plenty, and a worker must not start allocator arenas per core.
        .env("MALLOC_ARENA_MAX", "1")
        .env("RAYON_NUM_THREADS", "1");
    limit(&mut command);
    let mut child = command
        .spawn()
        .map_err(|e| ParseError::Invalid(format!("cannot start the PDF reader: {e}")))?;
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(ParseError::Invalid(
            "cannot start the PDF reader: no pipes".into(),
        ));
    };
    // The pipes are drained on their own threads so a full pipe never stalls either side.
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.take(OUTPUT_LIMIT).read_to_end(&mut out);
        out
    });
    let errors = std::thread::spawn(move || {
        let mut err = Vec::new();
        let _ = stderr.take(64 << 10).read_to_end(&mut err);
        err
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= TIME_LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let _ = writer.join();
    let out = reader.join().unwrap_or_default();
    let err = errors.join().unwrap_or_default();
    let Some(status) = status else {
        return Err(ParseError::Invalid(format!(
            "the PDF reader took longer than {} s on this file (a damaged or hostile PDF); stopped",
            TIME_LIMIT.as_secs()
        )));
    };
    match status.code() {
        Some(0) => Ok(String::from_utf8_lossy(&out).into_owned()),
        Some(EXIT_DAMAGED) => Err(ParseError::Invalid(
            String::from_utf8_lossy(&out).into_owned(),
        )),
        _ => Err(ParseError::Invalid(why_it_stopped(&err))),
    }
}

/// The reason a worker died, from what it wrote on stderr.
fn why_it_stopped(stderr: &[u8]) -> String {
    let said = String::from_utf8_lossy(stderr);
    if said.contains("memory allocation") || said.contains("capacity overflow") {
        format!(
            "the PDF needs more than {} MiB to read (a decompression bomb, or a damaged file); stopped",
            MEMORY_LIMIT >> 20
        )
    } else if said.contains("stack overflow") {
        "the PDF is nested too deeply to read (a damaged or hostile file); stopped".into()
    } else {
        "damaged or truncated PDF (the reader crashed on it)".into()
    }
}

/// Apply the address-space and CPU limits in the child before it runs.
#[cfg(unix)]
fn limit(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only calls setrlimit, which
    // is async-signal-safe; it touches no locks or allocations of the parent.
    unsafe {
        command.pre_exec(|| {
            let memory = libc::rlimit {
                rlim_cur: MEMORY_LIMIT as libc::rlim_t,
                rlim_max: MEMORY_LIMIT as libc::rlim_t,
            };
            let cpu = libc::rlimit {
                rlim_cur: TIME_LIMIT.as_secs() as libc::rlim_t,
                rlim_max: TIME_LIMIT.as_secs() as libc::rlim_t + 5,
            };
            // A parent already under a lower limit keeps it: setrlimit may only lower.
            let _ = libc::setrlimit(libc::RLIMIT_AS, &memory);
            let _ = libc::setrlimit(libc::RLIMIT_CPU, &cpu);
            Ok(())
        });
    }
}

/// Elsewhere only the wall-clock limit applies.
#[cfg(not(unix))]
fn limit(_command: &mut Command) {}
