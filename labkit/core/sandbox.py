"""A sandbox for generated code: run a short Python program a model wrote, in a process of its own, with limits.

Later notebooks run programs a tiny model writes (tool synthesis, program search, reward expressions). The
project's rule is that model output is never `eval`ed or `exec`ed in our process; it runs here instead:

    res = run_code("print(sum(range(10)))")          # SandboxResult(ok=True, stdout='45\\n', ...)
    call_function("def f(a, b): return a * b", "f", [6, 7])        # (True, 42): JSON in, JSON out

The child is `sys.executable -I -S -B -X utf8` running this very file as its bootstrap, which confines
itself before it compiles the program. Layers, each named in `SandboxResult.isolation` when it took effect:

  process   its own session (the parent kills the whole process group on a wall-clock timeout, and when
            stdout or stderr passes `max_output` bytes), an empty environment, no site-packages, a fresh
            empty working directory (deleted afterwards), stdin from a pipe; on Linux it dies with its parent
            (PR_SET_PDEATHSIG), so a parent killed mid-run leaves no program behind.
  netns     Linux: a new network namespace (no interface but a loopback that is down).
  caps      Linux: every capability dropped (matters when the host runs as root).
  landlock  Linux >= 5.13: writes only beneath the working directory and only with `allow_files`; no TCP
            bind/connect (kernel >= 6.7); no signals to processes outside the sandbox (kernel >= 6.12).
  seccomp   Linux: no fork, clone (no threads either), exec, socket, ptrace, unshare or io_uring.
  rlimits   address space (`memory_mb`), CPU seconds (`cpu_s`), file size (`max_file_bytes`, 0 without
            `allow_files`), 64 open files, no core dumps, no new process (RLIMIT_NPROC=0; root ignores it).
  audit     a `sys.addaudithook` hook (it cannot be removed once added) that refuses sockets, subprocesses,
            fork/exec/spawn, signals to other processes, ctypes, writes outside the working directory
            (all writes without `allow_files`; at most `max_files` new files), reads outside it and the
            standard library, and the introspection that reaches the hook itself (gc referrers, tracing,
            code objects built by hand).

What it does NOT protect against. This is a process sandbox for toy programs, not a security boundary
against a determined attacker. The audit hook is Python code in the same interpreter as the program: a
program that patches the standard library it uses, or crashes the interpreter on purpose, can get past it;
the kernel layers are the backstop, and they are best effort: on macOS, in a container whose seccomp
policy forbids them, or on an old kernel only `process`, `rlimits` and `audit` hold (check `isolation`, and
`network_isolated` for the network). Landlock lets the program read any file the host user can read (the
interpreter must load its modules), only the hook refuses such reads. RLIMIT_AS caps virtual memory, not
resident memory, and nothing caps disk use beyond `max_files` x `max_file_bytes`. There is no PID or mount
namespace: the program may list directories and see the host's processes (not signal them). A parent killed
with SIGKILL leaves the temporary directory behind. Kernel bugs, timing side channels and the CPU time a
program burns until it is stopped are outside its scope. One process, one thread: no program here needs more.
"""
from __future__ import annotations

import json
import keyword
import math
import os
import signal
import sys
import time
from dataclasses import dataclass

__all__ = ["SandboxResult", "run_code", "call_function"]

MIN_MEMORY_MB = 32  # the interpreter and its bootstrap take ~20 MB of address space before the program runs
MAX_OPEN_FILES = 64  # std streams, modules being imported, a few files of the program's own
_TRACEBACK_FRAMES = 20  # the innermost frames of the program's traceback on stderr
_DEVICES = ("/dev/null", "/dev/urandom")  # files a program may read outside its directory and the stdlib


@dataclass(frozen=True)
class SandboxResult:
    ok: bool  # exit status 0 and not stopped
    stdout: str
    stderr: str
    returncode: int  # negative: killed by that signal
    timed_out: bool
    killed_by: str | None  # "timeout", "output" (max_output), or a signal name (SIGXCPU: the cpu limit)
    error: str | None  # one line: what went wrong, e.g. "ZeroDivisionError: division by zero"
    wall_s: float
    truncated: bool = False  # stdout or stderr was cut at max_output bytes
    network_isolated: bool = False  # the program had no network interface at all
    isolation: tuple[str, ...] = ()  # the layers that took effect (see the module docstring)


# ---------------------------------------------------------------------------- the parent's side

def run_code(source: str, *, stdin: str | bytes = "", timeout_s: float = 2.0, memory_mb: int = 256,
             cpu_s: float | None = None, max_output: int = 64_000, allow_files: bool = False,
             max_files: int = 16, max_file_bytes: int = 1_000_000) -> SandboxResult:
    """Run `source` (a Python program) in a sandboxed child process and return what it did.

    `timeout_s` is wall-clock time from the start of the child (the interpreter's ~0.05 s start included);
    `cpu_s` (default: `timeout_s`) is CPU time, rounded up to whole seconds; `memory_mb` the address space;
    `max_output` the bytes kept of stdout and of stderr (the program is stopped when either passes it).
    With `allow_files` the program may create at most `max_files` files of at most `max_file_bytes` each
    in its working directory, which is deleted when it ends; without, it writes no file at all.
    """
    # imported here, not at the top: the child runs this file too and needs none of them
    import shutil
    import subprocess
    import tempfile

    config = _check_run(source, stdin, timeout_s, memory_mb, cpu_s, max_output, allow_files, max_files,
                        max_file_bytes)
    data = stdin.encode("utf-8") if isinstance(stdin, str) else bytes(stdin)
    root = tempfile.mkdtemp(prefix="labkit-sandbox-")
    report_r = None
    try:
        work = os.path.join(root, "work")  # the program's cwd; its source lives beside it, not in it
        os.mkdir(work)
        config["program"] = os.path.join(root, "program.py")
        with open(config["program"], "w", encoding="utf-8") as f:
            f.write(source)
        report_r, report_w = os.pipe()  # the child says which layers took effect, before the program runs
        config["report_fd"], config["parent"] = report_w, os.getpid()
        cmd = [sys.executable, "-I", "-S", "-B", "-X", "utf8", os.path.abspath(__file__), json.dumps(config)]
        start = time.monotonic()
        deadline = start + timeout_s
        # no preexec_fn: it is unsafe in a threaded parent (torch) and the child confines itself anyway
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    cwd=work, env={}, start_new_session=True, pass_fds=(report_w,))
        finally:
            os.close(report_w)
        try:
            out, err, stopped = _pump(proc, data, deadline, max_output)
            if stopped is None and not _exited(proc, deadline):
                stopped = "timeout"  # it closed its output but kept running
        finally:
            # kill the whole group before reaping: the pid (= the group id) cannot be reused until then
            _kill_group(proc.pid)
            proc.wait()
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if not pipe.closed:
                    pipe.close()
        wall_s = time.monotonic() - start
        os.set_blocking(report_r, False)
        try:
            isolation = tuple(json.loads(os.read(report_r, 4096) or b"[]"))
        except (BlockingIOError, ValueError):
            isolation = ()
    finally:
        if report_r is not None:
            os.close(report_r)
        shutil.rmtree(root, ignore_errors=True)

    rc = proc.returncode
    killed_by = stopped or (_signal_name(-rc) if rc < 0 else None)
    stdout, stderr = (b.decode("utf-8", "replace") for b in (out, err))
    ok = rc == 0 and killed_by is None
    error = None if ok else _error_line(killed_by, rc, stderr, timeout_s, config["cpu_s"], max_output)
    return SandboxResult(ok=ok, stdout=stdout, stderr=stderr, returncode=rc, timed_out=stopped == "timeout",
                         killed_by=killed_by, error=error, wall_s=wall_s, truncated=stopped == "output",
                         network_isolated="netns" in isolation, isolation=isolation)


def call_function(source: str, name: str, args=(), **limits) -> tuple[bool, object]:
    """Run the function `name` defined in `source` on `args` (a list of JSON values) in the sandbox.

    Returns (True, its return value) or (False, a one-line error). The arguments go in on stdin and the
    value comes back on stdout, both as JSON, parsed with `json.loads` (never pickle, never eval); the
    function's own prints go to stderr. `limits` are `run_code`'s keyword arguments.
    """
    from labkit.core.checks import ParameterError  # here: the child runs this file without labkit on its path

    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ParameterError(f"name must be a Python identifier (the function to call); got {name!r}")
    if not isinstance(args, (list, tuple)):
        raise ParameterError(f"args must be a list of positional arguments; got {type(args).__name__}")
    try:
        data = json.dumps(list(args), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ParameterError(f"args must be JSON values (dict, list, str, finite number, bool, None); {e}") from None
    if "stdin" in limits:
        raise ParameterError("call_function takes no stdin: the arguments travel on it")
    if not isinstance(source, str):
        raise ParameterError(f"source must be a str (Python source code); got {type(source).__name__}")
    res = run_code(source + _CALL.format(name=name), stdin=data, **limits)
    if not res.ok:
        return False, res.error
    try:
        return True, json.loads(res.stdout)
    except (ValueError, RecursionError) as e:  # RecursionError: JSON nested thousands deep
        return False, f"the result is not JSON ({e}): the program wrote to sys.__stdout__ itself?"


# Appended to the source by call_function. The data travels on stdin, never inside the code.
_CALL = """

def __sandbox_call__():
    import json, sys
    args = json.loads(sys.stdin.read())
    fn = globals().get({name!r})
    if not callable(fn):
        raise NameError("the program defines no function named {name}")
    real, sys.stdout = sys.stdout, sys.stderr  # the function's own prints go to stderr
    try:
        value = fn(*args)
    finally:
        sys.stdout = real
    real.write(json.dumps(value, allow_nan=False))


__sandbox_call__()
"""


def _check_run(source, stdin, timeout_s, memory_mb, cpu_s, max_output, allow_files, max_files,
               max_file_bytes) -> dict:
    """run_code's arguments checked (one-line ParameterErrors), as the child's config."""
    from labkit.core.checks import ParameterError, check_bool, check_float, check_int

    if not isinstance(source, str):
        raise ParameterError(f"source must be a str (Python source code); got {type(source).__name__}")
    if not isinstance(stdin, (str, bytes)):
        raise ParameterError(f"stdin must be a str or bytes; got {type(stdin).__name__}")
    timeout_s = check_float("timeout_s", timeout_s, gt=0, max=3600)
    cpu_s = timeout_s if cpu_s is None else check_float("cpu_s", cpu_s, gt=0, max=3600)
    return {"memory_mb": check_int("memory_mb", memory_mb, min=MIN_MEMORY_MB, max=1 << 20),
            "cpu_s": math.ceil(cpu_s),
            "max_output": check_int("max_output", max_output, min=1),
            "allow_files": check_bool("allow_files", allow_files),
            "max_files": check_int("max_files", max_files, min=0),
            "max_file_bytes": check_int("max_file_bytes", max_file_bytes, min=0)}


def _pump(proc, data: bytes, deadline: float, max_output: int):
    """Feed stdin and read stdout/stderr as they come until both close, the deadline passes or one of them
    passes max_output bytes. Returns (stdout, stderr, None | "timeout" | "output")."""
    import selectors

    sel = selectors.DefaultSelector()
    bufs = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    for fd in bufs:
        sel.register(fd, selectors.EVENT_READ)
    stdin_fd, pending = proc.stdin.fileno(), memoryview(data)
    if pending:
        os.set_blocking(stdin_fd, False)  # a program that never reads stdin must not block us
        sel.register(stdin_fd, selectors.EVENT_WRITE)
    else:
        proc.stdin.close()  # EOF at once
    stopped = None
    while stopped is None and any(key.fd in bufs for key in sel.get_map().values()):
        left = deadline - time.monotonic()
        if left <= 0:
            stopped = "timeout"
            break
        for key, _ in sel.select(left):
            if key.fd == stdin_fd:
                try:
                    pending = pending[os.write(stdin_fd, pending[:65536]):]
                except (BrokenPipeError, BlockingIOError) as e:
                    pending = pending if isinstance(e, BlockingIOError) else pending[:0]
                if not pending:
                    sel.unregister(stdin_fd)
                    proc.stdin.close()
                continue
            chunk = os.read(key.fd, 65536)
            if not chunk:
                sel.unregister(key.fd)
                continue
            buf = bufs[key.fd]
            buf += chunk
            if len(buf) > max_output:
                del buf[max_output:]
                stopped = "output"
                break
    sel.close()
    return bytes(bufs[proc.stdout.fileno()]), bytes(bufs[proc.stderr.fileno()]), stopped


def _exited(proc, deadline: float) -> bool:
    """Wait until the child has exited or the deadline passes, without reaping it (WNOWAIT) where we can."""
    if not hasattr(os, "waitid"):  # reaping now leaves a tiny window for the pid to be reused before killpg
        try:
            return proc.wait(max(0.0, deadline - time.monotonic())) is not None
        except Exception:  # subprocess.TimeoutExpired
            return False
    while os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone (a zombie leader alone still answers: nothing to kill)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _error_line(killed_by, rc, stderr, timeout_s, cpu_s, max_output) -> str:
    if killed_by == "timeout":
        return f"timed out after {timeout_s:g} s (wall clock)"
    if killed_by == "output":
        return f"output passed max_output={max_output} bytes: truncated, the program was stopped"
    if killed_by in ("SIGXCPU", "SIGKILL") and rc in (-signal.SIGXCPU, -signal.SIGKILL):
        return f"killed by {killed_by}: the cpu limit of {cpu_s} s (cpu_s), or the memory limit"
    if killed_by == "SIGSEGV":
        return "killed by SIGSEGV: the interpreter crashed (a C stack overflow from deep recursion?)"
    if killed_by:
        return f"killed by {killed_by}"
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    last = lines[-1] if lines else f"exit status {rc}"
    return last if len(last) <= 300 else last[:297] + "..."


# ---------------------------------------------------------------------------- the child's side
# This file is the child's bootstrap: `python -I -S -B -X utf8 sandbox.py CONFIG`. It confines itself,
# layer by layer, strongest first, then compiles the program and runs it as `__main__`.

def _child(argv) -> int:
    config = json.loads(argv[1])
    with open(config["program"], encoding="utf-8") as f:
        source = f.read()
    os.environ.clear()  # empty already, but for LC_CTYPE, which Python's C-locale coercion sets
    cwd = os.path.realpath(os.getcwd())
    layers = ["process"]
    if sys.platform.startswith("linux"):
        layers += _confine_linux(cwd, config["allow_files"], config["parent"])
    if _set_rlimits(config):
        layers.append("rlimits")
    import linecache
    import pathlib
    import traceback
    import types

    # tracebacks show the program's lines; compile errors are reported like any other error
    linecache.cache["<program>"] = (len(source), None, source.splitlines(True), "<program>")
    try:
        code = compile(source, "<program>", "exec")
    except (SyntaxError, ValueError) as e:
        traceback.print_exception(type(e), e, None)
        return 1
    _install_hook(cwd, config["allow_files"], config["max_files"], (pathlib.PurePosixPath, pathlib.PosixPath))
    layers.append("audit")
    fd = config["report_fd"]
    os.write(fd, json.dumps(layers).encode())
    os.close(fd)

    main = types.ModuleType("__main__")  # a fresh __main__ and argv: the program sees none of the bootstrap
    sys.modules["__main__"] = main
    sys.argv = ["<program>"]
    try:
        exec(code, main.__dict__)
    except SystemExit:
        raise
    except BaseException as e:  # the program's error, reported as Python would
        # without the bootstrap's frame, and only the last frames (deep recursion: thousands of them)
        traceback.print_exception(type(e), e, e.__traceback__.tb_next, limit=-_TRACEBACK_FRAMES)
        return 1
    return 0


def _set_rlimits(config) -> bool:
    import resource

    # a file past RLIMIT_FSIZE raises OSError (EFBIG) instead of killing the program with SIGXFSZ
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    cpu = config["cpu_s"]
    limits = [(resource.RLIMIT_CPU, cpu, cpu + 1),  # SIGXCPU at the soft limit, SIGKILL a second later
              (resource.RLIMIT_FSIZE, config["max_file_bytes"] if config["allow_files"] else 0, None),
              (resource.RLIMIT_NOFILE, MAX_OPEN_FILES, None),
              (resource.RLIMIT_CORE, 0, None),
              # no new process or thread for this user (exact: no count of the user's other processes
              # to race with); root is exempt, which is what seccomp is for
              (getattr(resource, "RLIMIT_NPROC", None), 0, None),
              (getattr(resource, "RLIMIT_AS", None), config["memory_mb"] << 20, None)]  # last: the largest
    ok = True
    for which, soft, hard in limits:
        try:
            if which is None:
                raise ValueError("not on this platform")
            old_hard = resource.getrlimit(which)[1]
            hard = soft if hard is None else hard
            if old_hard != resource.RLIM_INFINITY:
                soft, hard = min(soft, old_hard), min(hard, old_hard)
            resource.setrlimit(which, (soft, hard))
        except (ValueError, OSError):
            ok = False
    return ok


def _confine_linux(cwd: str, allow_files: bool, parent: int | None = None) -> list[str]:
    """The kernel layers, each best effort: the names of those that took effect. `parent`: its pid."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    L = ctypes.c_ulong
    layers = []
    # die with the parent (PR_SET_PDEATHSIG): a sleeping program must not outlive a parent killed mid-run
    if libc.prctl(1, L(signal.SIGKILL), L(0), L(0), L(0)) == 0 and parent not in (None, os.getppid()):
        os._exit(1)  # the parent was gone before the line above
    # a network namespace of our own: root may make one; anyone may inside a new user namespace
    CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
    if libc.unshare(CLONE_NEWNET) == 0 or libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0:
        layers.append("netns")
    # no capabilities (effective, permitted, inheritable): root is an ordinary user from here on
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    if libc.capset(header, (ctypes.c_uint32 * 6)()) == 0:
        layers.append("caps")
    if libc.prctl(38, L(1), L(0), L(0), L(0)) != 0:  # PR_SET_NO_NEW_PRIVS: required by both below
        return layers
    if _landlock(ctypes, libc, cwd, allow_files):
        layers.append("landlock")
    if _seccomp(ctypes, libc):
        layers.append("seccomp")
    for name in [m for m in sys.modules if m == "_ctypes" or m.partition(".")[0] == "ctypes"]:
        del sys.modules[name]  # so that the program's `import ctypes` reaches the audit hook
    return layers


def _landlock(ctypes, libc, cwd: str, allow_files: bool) -> bool:
    L = ctypes.c_long
    CREATE, ADD_RULE, RESTRICT = 444, 445, 446  # the same numbers on every architecture
    abi = libc.syscall(L(CREATE), None, L(0), L(1))  # LANDLOCK_CREATE_RULESET_VERSION
    if abi < 1:
        return False
    # filesystem rights (uapi/linux/landlock.h): all those this ABI knows are handled, so denied unless granted
    EXECUTE, WRITE_FILE, READ_FILE, READ_DIR, REMOVE_DIR, REMOVE_FILE = 1, 2, 4, 8, 16, 32
    MAKE_DIR, MAKE_REG, REFER, TRUNCATE = 1 << 7, 1 << 8, 1 << 13, 1 << 14
    handled = (1 << 13) - 1 | (REFER if abi >= 2 else 0) | (TRUNCATE if abi >= 3 else 0) | (1 << 15 if abi >= 5 else 0)
    net = 0b11 if abi >= 4 else 0  # BIND_TCP | CONNECT_TCP, no rule: no TCP at all
    scoped = 0b11 if abi >= 6 else 0  # abstract unix sockets and signals stay inside the sandbox
    attr = (ctypes.c_uint64 * 3)(handled, net, scoped)
    ruleset = libc.syscall(L(CREATE), ctypes.byref(attr), L(8 if abi < 4 else 16 if abi < 6 else 24), L(0))
    if ruleset < 0:
        return False

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    def grant(path, rights):
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        try:
            rule = PathBeneath(rights, fd)
            return libc.syscall(L(ADD_RULE), L(ruleset), L(1), ctypes.byref(rule), L(0)) == 0
        finally:
            os.close(fd)

    try:
        read = EXECUTE | READ_FILE | READ_DIR  # everywhere: the interpreter loads its modules as it goes
        ok = grant("/", read)
        if allow_files:  # regular files and directories only: no device nodes, fifos, sockets or links
            write = WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG
            ok = ok and grant(cwd, read | write | (REFER if abi >= 2 else 0) | (TRUNCATE if abi >= 3 else 0))
        return ok and libc.syscall(L(RESTRICT), L(ruleset), L(0)) == 0
    finally:
        os.close(ruleset)


# seccomp: (AUDIT_ARCH, system calls answered EPERM) per machine
_SECCOMP = {
    # socket socketpair clone fork vfork execve ptrace unshare setns process_vm_readv/writev execveat
    # io_uring_setup clone3
    "x86_64": (0xC000003E, (41, 53, 56, 57, 58, 59, 101, 272, 308, 310, 311, 322, 425, 435)),
    # socket socketpair clone execve ptrace unshare setns process_vm_readv/writev execveat io_uring_setup clone3
    "aarch64": (0xC00000B7, (198, 199, 220, 221, 117, 97, 268, 270, 271, 281, 425, 435)),
}


def _seccomp(ctypes, libc) -> bool:
    machine = os.uname().machine
    if machine not in _SECCOMP:
        return False
    arch, denied = _SECCOMP[machine]
    LD, JEQ, JGE, RET = 0x20, 0x15, 0x35, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_JMP|JGE|K, BPF_RET|K
    ALLOW, EPERM, KILL = 0x7FFF0000, 0x00050000 | 1, 0x80000000  # SECCOMP_RET_*

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                    ("k", ctypes.c_uint32)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(Filter))]

    prog = [(LD, 0, 0, 4), (JEQ, 1, 0, arch), (RET, 0, 0, KILL),  # another ABI (e.g. int 0x80): killed
            (LD, 0, 0, 0)]  # the system call number
    if machine == "x86_64":
        prog += [(JGE, 0, 1, 0x40000000), (RET, 0, 0, KILL)]  # the x32 ABI
    for nr in denied:
        prog += [(JEQ, 0, 1, nr), (RET, 0, 0, EPERM)]
    prog.append((RET, 0, 0, ALLOW))
    filters = (Filter * len(prog))(*[Filter(*ins) for ins in prog])
    program = Program(len(prog), filters)
    L = ctypes.c_ulong
    return libc.prctl(22, L(2), ctypes.byref(program), L(0), L(0)) == 0  # PR_SET_SECCOMP, MODE_FILTER


# Audit events refused outright, by prefix, and modules the program may not import.
_REFUSED = frozenset({
    "os.system", "os.fork", "os.forkpty", "pty.spawn",  # new processes
    "os.symlink", "os.link", "os.chmod", "os.chown", "os.chflags", "os.lchflags", "os.utime", "os.mknod",
    "os.mkfifo", "os.setxattr", "os.removexattr", "os.chroot",  # file system changes no toy program needs
    "gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys.settrace", "sys.setprofile",
    "sys._current_frames", "code.__new__",  # ways to reach or rewrite the hook
    "resource.setrlimit", "resource.prlimit",
})
_REFUSED_PREFIXES = ("socket.", "ctypes.", "subprocess.", "os.exec", "os.spawn", "os.posix_spawn", "_posixsubprocess")
_REFUSED_MODULES = frozenset({"ctypes", "_ctypes", "_posixsubprocess", "_testcapi", "_testinternalcapi",
                              "_xxsubinterpreters", "_xxinterpchannels"})
# file system changes allowed in the working directory with allow_files: (path arguments, their dir_fd's)
_FS_EVENTS = {"os.remove": ((0,), (1,)), "os.rmdir": ((0,), (1,)), "os.mkdir": ((0,), (2,)),
              "os.rename": ((0, 1), (2, 3)), "os.truncate": ((0,), ())}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _install_hook(cwd: str, allow_files: bool, max_files: int, path_types: tuple) -> None:
    """The audit hook. What it uses is bound here, so that the program cannot swap it from under it."""
    realpath, exists, isdir, join, sep = os.path.realpath, os.path.exists, os.path.isdir, os.path.join, os.sep
    fsdecode, readlink = os.fsdecode, os.readlink
    read_roots = tuple(sorted({realpath(p) for p in sys.path if p})) + (cwd,)
    me = os.getpid()
    created = [0]

    def refuse(what):
        raise PermissionError(f"sandbox: {what} is not allowed")

    def resolve(path, dir_fd=None) -> str:
        # exact str from a str (sub)class; pathlib's own classes only: another PathLike could answer
        # __fspath__ differently to the hook and to the open() that follows
        if isinstance(path, str):
            path = "".join([path])
        elif isinstance(path, bytes):
            path = fsdecode(b"".join([path]))
        elif type(path) in path_types:
            path = str(path)
        else:
            refuse(f"a path of type {type(path).__name__}")
        if dir_fd not in (None, -1):  # an *at() call (shutil.rmtree): relative to that directory
            try:
                path = join(readlink(f"/proc/self/fd/{int(dir_fd)}"), path)
            except OSError:
                refuse("dir_fd (no /proc/self/fd here)")
        return realpath(path)

    def under(path, roots) -> bool:
        return any(path == r or path.startswith(r.rstrip(sep) + sep) for r in roots)

    def check_write(path, dir_fd=None):
        if not allow_files:
            refuse("writing files (allow_files=False)")
        path = resolve(path, dir_fd)
        if not under(path, (cwd,)):
            refuse(f"writing {path} (outside the working directory)")
        if not exists(path):
            created[0] += 1
            if created[0] > max_files:
                refuse(f"creating more than max_files={max_files} files")

    def check_open(path, mode, flags):
        if isinstance(path, int):
            return  # a descriptor the program holds already (opened through this hook)
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (flags or 0) & _WRITE_FLAGS:
            return check_write(path)
        path = resolve(path)
        if not (under(path, read_roots) or path in _DEVICES):
            refuse(f"reading {path}")
        # os.open of a directory: a dir_fd that open()s through it (the event does not say which) would
        # escape the checks above, so only directories of the working directory
        if mode is None and isdir(path) and not under(path, (cwd,)):
            refuse(f"a descriptor of the directory {path}")

    def hook(event, args):
        if event == "open":
            check_open(*args[:3])
        elif event == "import":
            if args[0].partition(".")[0] in _REFUSED_MODULES:
                refuse(f"import {args[0]}")
        elif event in _FS_EVENTS:
            paths, dir_fds = _FS_EVENTS[event]
            for i, path in enumerate(args[j] for j in paths):
                if not isinstance(path, int):  # os.truncate(fd, ...): the fd was checked when opened
                    check_write(path, args[dir_fds[i]] if dir_fds else None)
        elif event in ("os.kill", "os.killpg"):
            if args[0] != me:
                refuse(f"{event} of another process")
        elif event == "sqlite3.connect":
            if args[0] != ":memory:":
                check_write(args[0])
        elif event == "object.__setattr__":
            if args[1] == "__code__":
                refuse("replacing a function's code")
        elif event in _REFUSED or event.startswith(_REFUSED_PREFIXES):
            refuse(event)

    sys.addaudithook(hook)


if __name__ == "__main__":
    sys.exit(_child(sys.argv))
