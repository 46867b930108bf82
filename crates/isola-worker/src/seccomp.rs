//! The worker's system-call filter: once a worker is up, it may only do what running a QuickJS
//! script and talking over its channel need. Everything else fails with `EPERM` (rather than
//! killing the process, so a call we forgot surfaces as an error, not a crash): no `open`, no
//! sockets, no `fork`/`clone`, no `execve`, no `ptrace`, no signals to other processes.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

/// Install the filter on the calling thread (workers are single-threaded). Returns an error text
/// when the kernel or architecture does not allow it; the caller decides what to do.
pub fn install() -> Result<(), String> {
    let program = filter()?;
    seccompiler::apply_filter(&program)
        .map_err(|e| format!("cannot install the seccomp filter: {e}"))
}

/// The reaper's filter (see `namespaces`): it only waits for its child and exits.
pub fn install_reaper() -> Result<(), String> {
    let program = reaper_filter()?;
    seccompiler::apply_filter(&program)
        .map_err(|e| format!("cannot install the seccomp filter: {e}"))
}

#[cfg(target_arch = "x86_64")]
fn reaper_filter() -> Result<BpfProgram, String> {
    let rules: BTreeMap<i64, Vec<SeccompRule>> = [
        libc::SYS_wait4,
        libc::SYS_waitid,
        libc::SYS_rt_sigreturn,
        libc::SYS_restart_syscall,
        libc::SYS_exit,
        libc::SYS_exit_group,
    ]
    .iter()
    .map(|s| (*s, Vec::new()))
    .collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        seccompiler::TargetArch::x86_64,
    )
    .map_err(|e| format!("bad seccomp rule: {e}"))?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| format!("cannot compile the seccomp filter: {e}"))
}

#[cfg(not(target_arch = "x86_64"))]
fn reaper_filter() -> Result<BpfProgram, String> {
    Err("the seccomp filter is only defined for x86_64".into())
}

#[cfg(target_arch = "x86_64")]
fn filter() -> Result<BpfProgram, String> {
    let err = |e: seccompiler::BackendError| format!("bad seccomp rule: {e}");
    let allow_always = [
        libc::SYS_read,
        libc::SYS_readv,
        libc::SYS_write,
        libc::SYS_writev,
        libc::SYS_poll,
        libc::SYS_ppoll,
        libc::SYS_close,
        libc::SYS_mmap,
        libc::SYS_munmap,
        libc::SYS_mremap,
        libc::SYS_mprotect,
        libc::SYS_madvise,
        libc::SYS_brk,
        libc::SYS_futex,
        libc::SYS_clock_gettime,
        libc::SYS_gettimeofday,
        libc::SYS_nanosleep,
        libc::SYS_clock_nanosleep,
        libc::SYS_sched_yield,
        libc::SYS_getrandom,
        libc::SYS_rt_sigreturn,
        libc::SYS_rt_sigprocmask,
        libc::SYS_sigaltstack,
        libc::SYS_restart_syscall,
        libc::SYS_getpid,
        libc::SYS_gettid,
        libc::SYS_getrlimit,
        libc::SYS_exit,
        libc::SYS_exit_group,
    ];
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        allow_always.iter().map(|s| (*s, Vec::new())).collect();
    // Only this process's own limits (the per-request address-space cap).
    let own_process =
        SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, 0).map_err(err)?;
    rules.insert(
        libc::SYS_prlimit64,
        vec![SeccompRule::new(vec![own_process]).map_err(err)?],
    );
    // abort() signals itself; no signals to anyone else.
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u64;
    let self_only =
        SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, pid).map_err(err)?;
    rules.insert(
        libc::SYS_tgkill,
        vec![SeccompRule::new(vec![self_only]).map_err(err)?],
    );
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        seccompiler::TargetArch::x86_64,
    )
    .map_err(err)?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| format!("cannot compile the seccomp filter: {e}"))
}

#[cfg(not(target_arch = "x86_64"))]
fn filter() -> Result<BpfProgram, String> {
    Err("the seccomp filter is only defined for x86_64".into())
}

/// For `--self-check`: try what the filter must forbid. True when every attempt was refused.
pub fn forbidden_calls_fail() -> bool {
    // SAFETY: plain syscalls on constant arguments; any descriptor obtained is closed.
    unsafe {
        let fd = libc::open(c"/etc/hostname".as_ptr(), libc::O_RDONLY);
        let open_refused = fd < 0;
        if fd >= 0 {
            libc::close(fd);
        }
        let sock = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        let socket_refused = sock < 0;
        if sock >= 0 {
            libc::close(sock);
        }
        let pid = libc::fork();
        if pid == 0 {
            libc::_exit(0);
        }
        let fork_refused = pid < 0;
        let kill_refused = libc::kill(1, 0) < 0;
        open_refused && socket_refused && fork_refused && kill_refused
    }
}
