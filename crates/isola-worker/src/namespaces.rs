//! The worker's namespaces: where the kernel allows it, a worker runs in its own user, mount,
//! network, IPC, UTS and PID namespaces, so that even code that got past QuickJS and the
//! system-call filter would find no files (an empty, read-only root), no network (no interface
//! but a loopback that is down), no other process to signal (`kill(-1, ...)` reaches only its
//! own namespace), and no capability outside its own user namespace.
//!
//! Each namespace is entered on its own, so one the kernel refuses (unprivileged user
//! namespaces turned off, a container's seccomp profile, a namespace limit of 0) costs only
//! that layer: it is reported inactive with the kernel's reason, and the rest still apply.
//!
//! A PID namespace applies to the children of the process that enters it, not to the process
//! itself, so the worker forks once: the child is the first process (PID 1) of the new
//! namespace and runs the scripts; the parent stays outside, closes its copy of the channel,
//! and only waits for the child and exits with its status (a *reaper* under its own tight
//! system-call filter). The host's process handle is the reaper's: killing it kills the child
//! (its parent-death signal), and the host killing itself kills the reaper (the host's).

use std::ffi::CStr;
use std::io;

use isola_protocol::Layer;

/// Hostname the worker sees in its own UTS namespace.
const HOSTNAME: &[u8] = b"isola";

/// Enter every namespace the kernel allows, in the order that makes the next possible; in a
/// new PID namespace this returns in the forked child only (the parent becomes the reaper and
/// never returns). Returns the namespaces' layers, active or not.
pub(crate) fn enter() -> Vec<Layer> {
    let os_error = |what: &str| format!("{what}: {}", io::Error::last_os_error());
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // First the user namespace: inside it the worker holds the capabilities the others need,
    // and only over what it owns. Without it, the others need privileges of their own (root).
    let user = unshare(libc::CLONE_NEWUSER, "user").and_then(|()| map_ids(uid, gid));
    let mount = unshare(libc::CLONE_NEWNS, "mount").and_then(|()| empty_root());
    let net = unshare(libc::CLONE_NEWNET, "network");
    let ipc = unshare(libc::CLONE_NEWIPC, "IPC");
    let uts = unshare(libc::CLONE_NEWUTS, "UTS").and_then(|()| {
        // SAFETY: a valid buffer and its length.
        if unsafe { libc::sethostname(HOSTNAME.as_ptr().cast(), HOSTNAME.len()) } == 0 {
            Ok(())
        } else {
            Err(os_error("sethostname"))
        }
    });
    let pid = unshare(libc::CLONE_NEWPID, "PID").and_then(|()| fork_reaper());
    // Whatever capabilities the user namespace (or a root host) gave are not needed any more.
    drop_capabilities();
    let layer = |name: &str, result: Result<(), String>| Layer {
        name: name.into(),
        active: result.is_ok(),
        detail: result.err(),
    };
    vec![
        layer("user_ns", user),
        layer("mount_ns", mount),
        layer("net_ns", net),
        layer("ipc_ns", ipc),
        layer("uts_ns", uts),
        layer("pid_ns", pid),
    ]
}

fn unshare(flag: libc::c_int, what: &str) -> Result<(), String> {
    // SAFETY: plain syscall; the worker is single-threaded here, as CLONE_NEWUSER requires.
    if unsafe { libc::unshare(flag) } == 0 {
        Ok(())
    } else {
        Err(format!(
            "the kernel refused a new {what} namespace: {}",
            io::Error::last_os_error()
        ))
    }
}

/// Map the worker's own user and group to root of its user namespace (the only mapping an
/// unprivileged process may write), with `setgroups` denied as the kernel requires first.
fn map_ids(uid: libc::uid_t, gid: libc::gid_t) -> Result<(), String> {
    let write = |path: &str, text: String| {
        std::fs::write(path, text).map_err(|e| format!("cannot write {path}: {e}"))
    };
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", format!("0 {uid} 1"))?;
    write("/proc/self/gid_map", format!("0 {gid} 1"))
}

/// Replace the worker's view of the file system with an empty, read-only tmpfs: nothing of the
/// host's files is reachable from the new root. Mounts are made private first, so nothing done
/// here can reach the host's mount table (which matters when the worker runs as root without a
/// user namespace).
fn empty_root() -> Result<(), String> {
    let fail = |what: &str| Err(format!("{what}: {}", io::Error::last_os_error()));
    // SAFETY: plain syscalls on constant, NUL-terminated strings.
    unsafe {
        if libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return fail("cannot make the mounts private");
        }
        // Any existing directory will do to hold the new root for a moment.
        let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        let options = c"size=4096,nr_inodes=2,mode=0555";
        let Some(dir) = [c"/tmp", c"/proc", c"/dev", c"/mnt"]
            .into_iter()
            .find(|dir| {
                libc::mount(
                    c"isola".as_ptr(),
                    dir.as_ptr(),
                    c"tmpfs".as_ptr(),
                    flags,
                    options.as_ptr().cast(),
                ) == 0
            })
        else {
            return fail("cannot mount an empty tmpfs");
        };
        if libc::chdir(dir.as_ptr()) != 0 {
            return fail("cannot enter the new root");
        }
        // The old root is stacked onto the new one, then taken away (pivot_root(2), NOTES).
        if libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0 {
            return fail("pivot_root");
        }
        if libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0 {
            return fail("cannot detach the old root");
        }
        if libc::chdir(c"/".as_ptr()) != 0 {
            return fail("cannot enter the new root");
        }
        if libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | flags,
            std::ptr::null(),
        ) != 0
        {
            return fail("cannot make the new root read-only");
        }
    }
    Ok(())
}

/// Fork once after entering the PID namespace. Returns in the child, the new namespace's first
/// process; the parent waits for it and exits with its status.
fn fork_reaper() -> Result<(), String> {
    // SAFETY: the worker is single-threaded, so the child may do anything after fork.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(format!(
            "cannot start the worker in its PID namespace: {}",
            io::Error::last_os_error()
        ));
    }
    if child == 0 {
        // Killed with the reaper, which is the process the host knows. (Orphaned before this
        // line, the child ends at the end of its input: the host's side of it is gone.)
        // SAFETY: plain syscall.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
        return Ok(());
    }
    reap(child)
}

/// The reaper: hold nothing, do nothing but wait for the child and pass its status on.
fn reap(child: libc::pid_t) -> ! {
    // SAFETY: closing our own descriptors; plain syscalls.
    unsafe {
        // The channel is the child's alone: its end of input and output must not wait for us.
        libc::close(0);
        libc::close(1);
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    drop_capabilities();
    // Best effort: the reaper runs no script.
    let _ = crate::seccomp::install_reaper();
    let mut status = 0;
    loop {
        // SAFETY: a valid pointer to a local.
        let r = unsafe { libc::waitpid(child, &mut status, 0) };
        if r == child {
            break;
        }
        if r < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            // SAFETY: plain syscall.
            unsafe { libc::_exit(1) };
        }
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    // SAFETY: plain syscall.
    unsafe { libc::_exit(code) }
}

/// Give up every capability (effective, permitted, inheritable; the ambient set follows). The
/// worker needs none once its namespaces are set up; without a user namespace this matters for
/// a worker of a root host.
fn drop_capabilities() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: a valid header and the two data words version 3 expects.
    unsafe {
        libc::syscall(libc::SYS_capset, &mut header, data.as_ptr());
    }
}

/// For the tests' `--probe`: what the worker sees of the world from inside its namespaces, as
/// one line per fact (read before the system-call filter forbids it).
pub(crate) fn probe() -> String {
    let root: Vec<String> = std::fs::read_dir("/")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_else(|e| vec![format!("error: {e}")]);
    let mut name = [0u8; 65];
    // SAFETY: a valid buffer and its length.
    let hostname = if unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len()) } == 0 {
        CStr::from_bytes_until_nul(&name)
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        String::new()
    };
    // SAFETY: plain syscalls.
    let (pid, uid) = unsafe { (libc::getpid(), libc::getuid()) };
    let etc = std::fs::metadata("/etc/passwd").is_ok();
    let mut interfaces = Vec::new();
    // SAFETY: the list is read up to its terminating entry and freed once.
    unsafe {
        let list = libc::if_nameindex();
        if !list.is_null() {
            let mut i = 0;
            while !(*list.add(i)).if_name.is_null() {
                interfaces.push(
                    CStr::from_ptr((*list.add(i)).if_name)
                        .to_string_lossy()
                        .into_owned(),
                );
                i += 1;
            }
            libc::if_freenameindex(list);
        }
    }
    format!(
        "root: {}\nhostname: {hostname}\npid: {pid}\nuid: {uid}\n/etc/passwd visible: {etc}\ninterfaces: {}\n",
        root.join(","),
        interfaces.join(",")
    )
}
