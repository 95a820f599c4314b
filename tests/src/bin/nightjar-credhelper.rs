//! Usage: nightjar-credhelper parent | child
//!
//! A process whose session and credentials change on purpose, for the live tests of
//! credential events. `parent` runs this program again as `child` and waits for it, so the
//! child has an ordinary user's process as its parent; `child` prints its pid, makes a new
//! session (`setsid`), then takes group id 0 and user id 0 (`setresgid`, `setresuid`), which
//! the file capabilities the test gives this program (CAP_SETGID, CAP_SETUID) allow when an
//! ordinary user runs it: the privilege escalation Elastic's uid_change rules look for.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("parent") => parent(),
        Some("child") => child(),
        _ => {
            eprintln!("usage: nightjar-credhelper parent | child");
            ExitCode::from(2)
        }
    }
}

fn parent() -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(err) => return fail("finding this program", err),
    };
    match Command::new(exe).arg("child").status() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("child: {status}");
            ExitCode::FAILURE
        }
        Err(err) => fail("running the child", err),
    }
}

fn child() -> ExitCode {
    println!("{}", std::process::id());
    // SAFETY: setsid takes no arguments and changes only this process's session.
    if unsafe { libc::setsid() } < 0 {
        return fail("setsid", std::io::Error::last_os_error());
    }
    // SAFETY: no pointers; changes only this process's group ids.
    if unsafe { libc::setresgid(0, 0, 0) } < 0 {
        return fail("setresgid(0, 0, 0)", std::io::Error::last_os_error());
    }
    // SAFETY: no pointers; changes only this process's user ids.
    if unsafe { libc::setresuid(0, 0, 0) } < 0 {
        return fail("setresuid(0, 0, 0)", std::io::Error::last_os_error());
    }
    ExitCode::SUCCESS
}

fn fail(what: &str, err: std::io::Error) -> ExitCode {
    eprintln!("nightjar-credhelper: {what}: {err}");
    ExitCode::FAILURE
}
