"""labkit.core.sandbox: a generated program runs in a confined child; each attack is contained, fast,
with a one-line error, and leaves nothing behind (no process, no file, no temporary directory)."""
import json
import os
import re
import socket
import subprocess
import sys

import pytest

from labkit.core.sandbox import MIN_MEMORY_MB, call_function, run_code

LINUX = sys.platform.startswith("linux")


def one_line(text) -> bool:
    return isinstance(text, str) and bool(text) and "\n" not in text


def test_a_normal_program_reads_stdin_and_prints():
    res = run_code("import sys, json, collections\n"
                   "words = sys.stdin.read().split()\n"
                   "print(json.dumps(collections.Counter(words).most_common(1)))", stdin="a b a")
    assert res.ok and res.error is None and res.returncode == 0 and not res.timed_out and res.killed_by is None
    assert json.loads(res.stdout) == [["a", 2]] and res.stderr == ""
    assert {"process", "rlimits", "audit"} <= set(res.isolation)
    assert res.network_isolated == ("netns" in res.isolation)
    if LINUX:
        assert "seccomp" in res.isolation  # this host's kernel has it: the layers are not silently off


def test_call_function_passes_json_in_and_out():
    source = ("def solve(xs, k):\n"
              "    print('thinking...')  # the function's prints go to stderr, not into the result\n"
              "    return {'top': sorted(xs)[-k:], 'n': len(xs)}\n")
    assert call_function(source, "solve", [[3, 1, 2], 2]) == (True, {"top": [2, 3], "n": 3})
    assert call_function("def f():\n    return 1 / 0", "f") == (False, "ZeroDivisionError: division by zero")
    ok, error = call_function("def f():\n    return {1, 2}", "f")
    assert not ok and "not JSON serializable" in error and one_line(error)
    ok, error = call_function("x = 1", "f")
    assert not ok and error.startswith("NameError") and "f" in error
    ok, error = call_function("def f(:\n    pass", "f")
    assert not ok and error.startswith("SyntaxError")
    ok, error = call_function("import sys\ndef f():\n    sys.__stdout__.write('[' * 50_000)", "f")
    assert not ok and error.startswith("the result is not JSON")  # parsed safely, even nested 50k deep
    ok, error = call_function("def f():\n    while True:\n        pass", "f", timeout_s=0.3)
    assert (ok, error) == (False, "timed out after 0.3 s (wall clock)")


def test_an_infinite_loop_times_out():
    res = run_code("while True:\n    pass", timeout_s=0.3)
    assert res.timed_out and res.killed_by == "timeout" and not res.ok and res.returncode < 0
    assert res.error == "timed out after 0.3 s (wall clock)"
    assert res.wall_s < 5


def test_the_cpu_limit_stops_a_busy_program_before_the_wall_clock():
    res = run_code("while True:\n    pass", cpu_s=1, timeout_s=15)
    assert res.killed_by == "SIGXCPU" and not res.timed_out and not res.ok
    assert "cpu_s" in res.error and one_line(res.error)


FORK_BOMB = """
import os
print(os.getpid(), flush=True)
def fork():
    if os.fork() == 0:  # were it allowed, the copy leaves at once: the test must not bomb the host
        os._exit(0)
attempts = {
    "fork": fork,
    "subprocess": lambda: __import__("subprocess").Popen(["/bin/sh", "-c", "sleep 30"]),
    "system": lambda: os.system("sleep 30 &"),
    "posix_spawn": lambda: os.posix_spawn("/bin/sleep", ["sleep", "30"], {}),
    "exec": lambda: os.execv("/bin/sh", ["sh", "-c", "sleep 30"]),
}
for name, attempt in attempts.items():
    for _ in range(20):  # a fork bomb's loop
        try:
            attempt()
        except OSError as e:
            print(name, type(e).__name__, e)
            break
    else:
        print(name, "SPAWNED")
"""


def test_a_fork_bomb_is_refused_and_no_process_is_left_behind():
    res = run_code(FORK_BOMB)
    assert res.ok, res.stderr
    pid, *lines = res.stdout.splitlines()
    assert len(lines) == 5 and "SPAWNED" not in res.stdout
    assert all(line.split()[1] == "PermissionError" and "sandbox:" in line for line in lines), lines
    with pytest.raises(ProcessLookupError):  # the child's process group (its pid) has no member left
        os.killpg(int(pid), 0)


def test_threads_and_processes_are_refused_by_the_kernel_too():
    # starting a thread raises no audit event: it is the seccomp layer (and RLIMIT_NPROC) that refuses it
    res = run_code("import threading\nthreading.Thread(target=print).start()")
    if "seccomp" not in res.isolation:
        pytest.skip("no seccomp here")
    assert res.error == "RuntimeError: can't start new thread"


def test_a_huge_allocation_is_a_memory_error_in_the_child():
    res = run_code("try:\n    bytearray(10**10)\nexcept MemoryError:\n    print('MemoryError')\n"
                   "hoard = []\nwhile True:\n    hoard.append(bytearray(10**6))", memory_mb=64)
    assert res.stdout == "MemoryError\n" and res.error == "MemoryError" and not res.timed_out


def test_writing_outside_the_working_directory_is_refused(tmp_path):
    target = tmp_path / "pwned.txt"
    program = f"""
import os, pathlib, shutil
target = {str(target)!r}
attempts = [
    ("open", lambda: open(target, "w")),
    ("append", lambda: open(target, "a")),
    ("os.open", lambda: os.open(target, os.O_WRONLY | os.O_CREAT)),
    ("pathlib", lambda: pathlib.Path(target).write_text("x")),
    ("dotdot", lambda: open("../../" + os.path.basename(target), "w")),
    ("rename", lambda: (open("mine.txt", "w").close(), os.rename("mine.txt", target))),
    ("sqlite", lambda: __import__("sqlite3").connect(target)),
    ("dir_fd", lambda: os.open(os.path.dirname(target), os.O_RDONLY)),
    ("symlink", lambda: os.symlink(target, "link")),
]
for name, attempt in attempts:
    try:
        attempt()
        print(name, "WROTE")
    except OSError as e:
        print(name, e)
os.mkdir("d")  # inside: files, directories, pathlib, shutil.rmtree (which removes through dir_fd)
pathlib.Path("d/x.txt").write_text("inside")
print(open("d/x.txt").read())
shutil.rmtree("d")
print(os.listdir("."))
"""
    res = run_code(program, allow_files=True)
    assert res.ok, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 11 and "WROTE" not in res.stdout
    assert all("sandbox:" in line and "is not allowed" in line for line in lines[:9]), lines
    assert lines[9:] == ["inside", "['mine.txt']"]
    assert not target.exists() and list(tmp_path.iterdir()) == []

    res = run_code("open('notes.txt', 'w')")  # allow_files=False: no file at all, even in its directory
    assert res.error == "PermissionError: sandbox: writing files (allow_files=False) is not allowed"


def test_file_count_and_size_are_capped():
    res = run_code("import errno\n"
                   "try:\n    with open('big', 'w') as f:\n        f.write('x' * 5000)\n"
                   "except OSError as e:\n    print(e.errno == errno.EFBIG)\n"
                   "for i in range(5):\n    open(f'f{i}', 'w').close()",
                   allow_files=True, max_files=3, max_file_bytes=1000)
    assert res.stdout == "True\n"
    assert res.error == "PermissionError: sandbox: creating more than max_files=3 files is not allowed"


def test_a_socket_connect_to_localhost_is_refused():
    server = socket.socket()
    try:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = server.getsockname()[1]
        res = run_code("import socket\n"
                       f"for make in (lambda: socket.create_connection(('127.0.0.1', {port}), timeout=1),\n"
                       "             lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)):\n"
                       "    try:\n        make()\n        print('CONNECTED')\n"
                       "    except OSError as e:\n        print(e)")
        assert res.ok and "CONNECTED" not in res.stdout
        assert res.stdout.splitlines() == ["sandbox: socket.getaddrinfo is not allowed",
                                           "sandbox: socket.__new__ is not allowed"]
        with pytest.raises(BlockingIOError):  # nobody knocked
            server.accept()
    finally:
        server.close()


def test_the_host_environment_and_files_are_not_visible(monkeypatch):
    monkeypatch.setenv("LABKIT_SANDBOX_SECRET", "hunter2")
    res = run_code("import os, sys\n"
                   "print(dict(os.environ), sys.flags.isolated, sys.flags.no_site)\n"
                   f"for path in ['/proc/{os.getpid()}/environ', {__file__!r}]:\n"
                   "    try:\n        print(open(path).read())\n"
                   "    except OSError as e:\n        print(e)")
    assert "hunter2" not in res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "{} 1 1"
    assert lines[1:] == [f"sandbox: reading /proc/{os.getpid()}/environ is not allowed",
                         f"sandbox: reading {os.path.realpath(__file__)} is not allowed"]


def test_printing_10_mb_is_truncated_at_the_cap():
    res = run_code("print('x' * 10_000_000)", max_output=50_000)
    assert res.truncated and res.killed_by == "output" and not res.ok and not res.timed_out
    assert res.stdout == "x" * 50_000
    assert res.error == "output passed max_output=50000 bytes: truncated, the program was stopped"
    res = run_code("while True:\n    print('y' * 100)", max_output=10_000, timeout_s=15)  # stopped at once
    assert res.killed_by == "output" and len(res.stdout) == 10_000 and res.wall_s < 10
    res = run_code("import sys\nsys.stderr.write('e' * 1_000_000)", max_output=1000)
    assert res.truncated and res.stderr == "e" * 1000


def test_ctypes_is_refused():
    res = run_code("import ctypes\nctypes.CDLL(None).system(b'echo pwned')")
    assert res.error == "PermissionError: sandbox: import ctypes is not allowed" and "pwned" not in res.stdout


def test_deep_recursion_is_a_clean_error():
    res = run_code("def f(n):\n    return f(n + 1)\nf(0)")
    assert res.error == "RecursionError: maximum recursion depth exceeded" and res.returncode == 1
    assert res.stderr.count('File "<program>"') <= 20  # the last frames only, with the program's lines
    # with the recursion limit lifted: the memory limit ends it, the host never notices
    res = run_code("import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n    return f(n + 1)\nf(0)",
                   memory_mb=MIN_MEMORY_MB, timeout_s=15)
    assert not res.ok and not res.timed_out and one_line(res.error)


def test_signals_to_other_processes_are_refused():
    res = run_code(f"import os\nos.kill({os.getpid()}, 0)")
    assert res.error == "PermissionError: sandbox: os.kill of another process is not allowed"


def test_the_working_directory_is_fresh_and_removed_afterwards():
    res = run_code("import os\nprint(os.getcwd())\nprint(os.listdir('.'))\nopen('notes.txt', 'w').write('hi')",
                   allow_files=True)
    assert res.ok, res.stderr
    cwd, listing = res.stdout.splitlines()
    assert listing == "[]" and os.path.basename(cwd) == "work"
    assert not os.path.exists(cwd) and not os.path.exists(os.path.dirname(cwd))


def test_exit_status_and_syntax_errors_are_one_line():
    res = run_code("import sys\nsys.exit(3)")
    assert (res.ok, res.returncode, res.error) == (False, 3, "exit status 3")
    res = run_code("def f(:\n    pass")
    assert res.error == "SyntaxError: invalid syntax" and 'File "<program>", line 1' in res.stderr


@pytest.mark.skipif(not LINUX, reason="the kernel layers are Linux's")
def test_the_kernel_layers_hold_without_the_audit_hook(tmp_path):
    # the confinement alone, in a throwaway interpreter without the hook: what the kernel refuses by itself
    work, target = tmp_path / "work", tmp_path / "outside.txt"
    work.mkdir()
    script = f"""
import json, os, socket, threading
from labkit.core.sandbox import _confine_linux
out = {{"layers": _confine_linux(os.getcwd(), allow_files=True)}}
def fork():
    if os.fork() == 0:
        os._exit(0)
for name, attempt in [("write_outside", lambda: open({str(target)!r}, "w").close()),
                      ("write_inside", lambda: open("inside.txt", "w").close()),
                      ("fork", fork), ("socket", socket.socket),
                      ("thread", lambda: threading.Thread(target=print).start())]:
    try:
        attempt()
        out[name] = "done"
    except (OSError, RuntimeError) as e:
        out[name] = type(e).__name__
print(json.dumps(out))
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=work, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    if not {"landlock", "seccomp"} & set(out["layers"]):
        pytest.skip(f"no Landlock nor seccomp here: {out['layers']}")
    if "landlock" in out["layers"]:
        assert (out["write_outside"], out["write_inside"]) == ("PermissionError", "done")
        assert not target.exists() and (work / "inside.txt").exists()
    if "seccomp" in out["layers"]:
        assert (out["fork"], out["socket"], out["thread"]) == ("PermissionError", "PermissionError", "RuntimeError")


@pytest.mark.parametrize("kwargs, words", [
    ({"source": b"print(1)"}, "source must be a str (Python source code); got bytes"),
    ({"timeout_s": 0}, "timeout_s must be a finite number in (0, 3600]; got 0"),
    ({"timeout_s": float("inf")}, "timeout_s must be a finite number"),
    ({"cpu_s": -1}, "cpu_s must be a finite number in (0, 3600]; got -1"),
    ({"memory_mb": 8}, f"memory_mb must be an integer in [{MIN_MEMORY_MB}, "),
    ({"max_output": 0}, "max_output must be an integer >= 1; got 0"),
    ({"stdin": 5}, "stdin must be a str or bytes; got int"),
    ({"allow_files": "yes"}, "allow_files must be True or False; got 'yes'"),
    ({"max_files": -1}, "max_files must be an integer >= 0; got -1"),
])
def test_bad_arguments_are_one_line_value_errors(kwargs, words):
    kwargs = {"source": "print(1)", **kwargs}
    with pytest.raises(ValueError, match=re.escape(words)) as info:
        run_code(kwargs.pop("source"), **kwargs)
    assert one_line(str(info.value))


@pytest.mark.parametrize("name, args, words", [
    ("1f", [], "name must be a Python identifier"),
    ("def", [], "name must be a Python identifier"),
    ("f", {"x": 1}, "args must be a list of positional arguments; got dict"),
    ("f", [{1, 2}], "args must be JSON values"),
    ("f", [float("nan")], "args must be JSON values"),
])
def test_call_function_checks_its_arguments(name, args, words):
    with pytest.raises(ValueError, match=re.escape(words)) as info:
        call_function("def f(*a):\n    return a", name, args)
    assert one_line(str(info.value))
