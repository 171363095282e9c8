//! bbstored.conf's `Server.User`: the account bbstored and bbstoreaccounts run as
//! once started by root, as 0.13's do (Debian starts bbstored as root and lets it
//! drop to `bbstored`, so a store written by 0.13 belongs to that user).
//!
//! The switch is done with the kernel's per-thread calls (rustix, no libc
//! wrappers), so it is only a process-wide switch while the process has one
//! thread: [`switch_to`] refuses otherwise. Callers switch after binding their
//! sockets and writing the pid file, before spawning anything.
//!
//! Users are looked up in /etc/passwd (no NSS): a service account such as
//! `bbstored` is a local user on every system Box Backup runs on. A numeric
//! `User` is taken as a uid whose group is the same number.

use std::path::Path;

use rustix::process::{Gid, Uid};

/// A user to run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Why the switch did not happen.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("User {0}: no such user in {1}")]
    Unknown(String, String),
    #[error("User {0}: reading {1}: {2}")]
    Passwd(String, String, std::io::Error),
    #[error(
        "User {name}: cannot switch to it (uid {uid}) while running as uid {current}: run as root or as that user"
    )]
    NotRoot {
        name: String,
        uid: u32,
        current: u32,
    },
    #[error(
        "User {0}: cannot switch user with {1} threads running (the switch would apply to one thread only)"
    )]
    Threads(String, usize),
    #[error("User {0}: {1} failed: {2}")]
    Call(String, &'static str, std::io::Error),
}

/// Finds `name` in a passwd-format text.
pub fn lookup_in(passwd: &str, name: &str) -> Option<RunAs> {
    if let Ok(n) = name.parse::<u32>() {
        return Some(RunAs {
            name: name.to_owned(),
            uid: n,
            gid: n,
        });
    }
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        let (user, _pw, uid, gid) = (f.next()?, f.next()?, f.next()?, f.next()?);
        (user == name).then_some(())?;
        Some(RunAs {
            name: name.to_owned(),
            uid: uid.parse().ok()?,
            gid: gid.parse().ok()?,
        })
    })
}

/// Looks `name` up in /etc/passwd.
pub fn lookup(name: &str) -> Result<RunAs, UserError> {
    lookup_at(Path::new("/etc/passwd"), name)
}

fn lookup_at(passwd: &Path, name: &str) -> Result<RunAs, UserError> {
    let file = passwd.display().to_string();
    if name.parse::<u32>().is_ok() {
        return lookup_in("", name).ok_or_else(|| UserError::Unknown(name.to_owned(), file));
    }
    let text = std::fs::read_to_string(passwd)
        .map_err(|e| UserError::Passwd(name.to_owned(), file.clone(), e))?;
    lookup_in(&text, name).ok_or(UserError::Unknown(name.to_owned(), file))
}

/// The number of threads of this process, from /proc (None if unreadable).
fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Runs the rest of the process as `name`. Nothing to do when already that
/// user; an error when not root (0.13 fails the same way), or when more than
/// one thread runs.
pub fn switch_to(name: &str) -> Result<RunAs, UserError> {
    let who = lookup(name)?;
    let current = rustix::process::geteuid().as_raw();
    if current == who.uid && rustix::process::getuid().as_raw() == who.uid {
        return Ok(who);
    }
    if current != 0 {
        return Err(UserError::NotRoot {
            name: who.name,
            uid: who.uid,
            current,
        });
    }
    match thread_count() {
        Some(1) => {}
        Some(n) => return Err(UserError::Threads(who.name, n)),
        None => return Err(UserError::Threads(who.name, 0)),
    }
    let call = |what, r: rustix::io::Result<()>| {
        r.map_err(|e| UserError::Call(name.to_owned(), what, e.into()))
    };
    let gid = Gid::from_raw(who.gid);
    let uid = Uid::from_raw(who.uid);
    // Groups first: once the uid is dropped they cannot be changed any more.
    call("setgroups", rustix::thread::set_thread_groups(&[gid]))?;
    call(
        "setresgid",
        rustix::thread::set_thread_res_gid(gid, gid, gid),
    )?;
    call(
        "setresuid",
        rustix::thread::set_thread_res_uid(uid, uid, uid),
    )?;
    Ok(who)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        bbstored:x:102:105::/var:/bin/false\n\
        broken:x:notanumber:1::/:/bin/false\n\
        short:x\n";

    #[test]
    fn finds_users_by_name_and_number() {
        assert_eq!(
            lookup_in(PASSWD, "bbstored"),
            Some(RunAs {
                name: "bbstored".into(),
                uid: 102,
                gid: 105
            })
        );
        assert_eq!(
            lookup_in(PASSWD, "4000").map(|u| (u.uid, u.gid)),
            Some((4000, 4000))
        );
        assert_eq!(lookup_in(PASSWD, "nobody-here"), None);
        assert_eq!(lookup_in(PASSWD, "broken"), None);
        assert_eq!(lookup_in(PASSWD, "short"), None);
        // A prefix of a name is not the name.
        assert_eq!(lookup_in(PASSWD, "bbstore"), None);
    }

    #[test]
    fn unknown_user_names_the_file() {
        let e = lookup_at(Path::new("/nonexistent/passwd"), "x").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/passwd"), "{e}");
    }

    #[test]
    fn already_that_user_is_no_switch() {
        let me = rustix::process::geteuid().as_raw();
        // Several test threads run: a real switch would be refused, no switch is fine.
        assert_eq!(switch_to(&me.to_string()).unwrap().uid, me);
    }
}
