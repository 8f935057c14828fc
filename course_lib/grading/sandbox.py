"""The kernel that runs untrusted notebooks: an IPython kernel started under OS limits, in its own namespaces.

``python -m course_lib.grading.sandbox --plan PLAN.json -- -f CONNECTION_FILE`` (the argv of the kernelspec
that ``write_kernelspec`` writes) sets the limits on its own process and then *becomes* the kernel, so the
limits hold for the student's code and every process it starts. Promised:

- memory: with a cgroup (``cgroup.MemoryCgroup``, made by the grader and joined here before anything
  else starts) one limit holds for all the kernel's processes together, shared memory included; each
  process also gets ``RLIMIT_DATA`` so a runaway allocation reads as ``MemoryError``. Without a cgroup,
  ``RLIMIT_AS`` (address space, which counts shared mappings) per process instead;
- CPU seconds (``RLIMIT_CPU``), file size (``RLIMIT_FSIZE``), no core dumps (``RLIMIT_CORE``);
- where namespaces work (see ``isolation_mode``): the launcher re-execs itself under
  ``unshare --pid --fork --kill-child --mount --mount-proc`` and stays as PID 1 of the new PID namespace,
  a tiny init that reaps zombies, forwards SIGTERM/SIGINT and exits with the kernel (code, or 128+signal).
  When it exits, or when the grader dies (``PR_SET_PDEATHSIG``), every process the student started dies.
  The kernel sees a fresh ``/proc`` with only its own processes: it cannot read the grader's command line
  nor signal the grader, the batch or other kernels;
- with an ``Isolation``: hidden paths, read-only overlays and read-only paths in the kernel's own mount
  namespace, private size-limited tmpfs on /tmp, /var/tmp and /dev/shm, the cwd writable, and the kernel
  run without capabilities and with no_new_privs (as user nobody when the grader is root, otherwise as
  root of a user namespace), so it cannot undo the mounts.

Needs from the host: util-linux ``unshare`` and ``setpriv``, and either root or unprivileged user
namespaces; otherwise the kernel runs with rlimits only. The environment is reduced to what the labs
need (see ``kernel_env``): no cloud credentials or tokens.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..checks import check_int

KERNEL_NAME = "course-sandbox"
NOBODY = 65534  # uid and gid the kernel runs as when the grader is root

# Variables a lab needs; everything else (AWS_*, tokens, SSH agents...) stays out of reach of student code.
_KEEP_PREFIXES = ("HF_", "HUGGINGFACE_", "TRANSFORMERS_", "TORCH_", "COURSE_", "DIALOGSUM_", "LC_", "OMP_", "MKL_", "OPENBLAS_", "CUDA_")
_KEEP_NAMES = {"PATH", "HOME", "LANG", "TZ", "VIRTUAL_ENV", "PYTHONPATH", "XDG_CACHE_HOME", "TMPDIR", "MPLBACKEND"}
_DROP_NAMES = {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_TOKEN"}

_PRIVATE_TMP = ("/tmp", "/var/tmp", "/dev/shm")
_PRIVATE_HOME = "/tmp/.home"  # the kernel's HOME, in its private /tmp
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC = 1, 2, 4, 8, 32, 4096, 16384
_PR_SET_PDEATHSIG = 1
# statvfs flag -> mount flag, for the flags a bind remount must keep (they may be locked in a user namespace)
_KEEP_FLAGS = {2: MS_NOSUID, 4: MS_NODEV, 8: MS_NOEXEC, 1024: 1024, 2048: 2048, 4096: 1 << 21}


@dataclass
class Isolation:
    """What the kernel may see and write, beyond the limits (paths are absolute)."""

    hide: list[str] = field(default_factory=list)  # folders (empty read-only tmpfs over them) and files (/dev/null over them) the kernel must not see; missing paths are skipped
    overlays: dict[str, str] = field(default_factory=dict)  # target path -> source path, bind-mounted read-only over the target
    readonly: list[str] = field(default_factory=list)  # paths read-only in the kernel's view (the repo, sys.prefix)
    tmp_mb: int = 512  # size of each private tmpfs on /tmp, /var/tmp and /dev/shm, MiB

    def __post_init__(self):
        for name in ("hide", "readonly"):
            for path in getattr(self, name):
                if not isinstance(path, str) or not os.path.isabs(path):
                    raise ValueError(f"Isolation.{name}: {path!r} must be an absolute path.")
        for target, source in self.overlays.items():
            if not (isinstance(target, str) and isinstance(source, str) and os.path.isabs(target) and os.path.isabs(source)):
                raise ValueError(f"Isolation.overlays: {target!r} -> {source!r} must be absolute paths.")
        check_int("Isolation", "tmp_mb", self.tmp_mb, 1)


def kernel_env(extra: dict[str, str] | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """The kernel's environment: the allow-listed variables of ``base`` (default os.environ) plus ``extra``."""
    base = dict(os.environ if base is None else base)
    env = {k: v for k, v in base.items()
           if (k in _KEEP_NAMES or k.startswith(_KEEP_PREFIXES)) and k not in _DROP_NAMES}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"})
    env.update(extra or {})
    return env


def apply_limits(memory_mb: int, cpu_seconds: int, file_mb: int, address_space: bool = False) -> None:
    """Set this process's resource limits (inherited across exec and by children).

    Memory is ``RLIMIT_DATA``, or ``RLIMIT_AS`` with ``address_space`` (counts shared mappings too).
    """
    def lower(which: int, value: int) -> None:
        soft, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value if hard == resource.RLIM_INFINITY else hard))

    if memory_mb > 0:
        lower(resource.RLIMIT_AS if address_space else resource.RLIMIT_DATA, memory_mb * 2**20)
    if cpu_seconds > 0:
        lower(resource.RLIMIT_CPU, cpu_seconds)
    if file_mb > 0:
        lower(resource.RLIMIT_FSIZE, file_mb * 2**20)
    lower(resource.RLIMIT_CORE, 0)


def _unshare_argv(as_root: bool) -> list[str]:
    argv = ["unshare", "--pid", "--fork", "--kill-child", "--mount", "--mount-proc", "--propagation", "private"]
    return argv if as_root else argv + ["--user", "--map-root-user"]


@functools.cache
def isolation_mode() -> str:
    """'namespaces, user nobody', 'namespaces (user namespace)' or 'rlimits only: <why>', found by trying once."""
    missing = [tool for tool in ("unshare", "setpriv") if shutil.which(tool) is None]
    if missing:
        return f"rlimits only: no {' or '.join(missing)} command"
    as_root = os.geteuid() == 0
    probe = _unshare_argv(as_root) + ["sh", "-c", "mount -t tmpfs -o size=1m tmpfs /tmp && test -e /proc/1/cmdline"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"rlimits only: {type(exc).__name__}: {exc}"
    if done.returncode != 0:
        why = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        return f"rlimits only: {why[0][:200]}"
    return "namespaces, user nobody" if as_root else "namespaces (user namespace)"


def write_kernelspec(directory: str | Path, memory_mb: int, cpu_seconds: int, file_mb: int = 512, *,
                     isolation: Isolation | None = None, cgroup: str | None = None) -> Path:
    """A kernelspec folder (``directory/kernels/course-sandbox``) that starts this launcher; returns its parent.

    ``cgroup``: the folder of a ``MemoryCgroup`` the kernel joins (its limit is set by whoever made it).
    """
    spec_dir = Path(directory) / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    plan = {"memory_mb": memory_mb, "cpu_seconds": cpu_seconds, "file_mb": file_mb, "cgroup": cgroup,
            "namespaces": isolation_mode().startswith("namespaces"),
            "isolation": None if isolation is None else {"hide": list(isolation.hide), "overlays": dict(isolation.overlays),
                                                         "readonly": list(isolation.readonly), "tmp_mb": isolation.tmp_mb}}
    plan_path = spec_dir / "plan.json"
    plan_path.write_text(json.dumps(plan, indent=1), encoding="utf-8")
    argv = [sys.executable, "-m", "course_lib.grading.sandbox", "--plan", str(plan_path), "--", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "Python 3 (grading sandbox)", "language": "python",
            "metadata": {"debugger": False}}
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return Path(directory) / "kernels"


# --- inside the launcher --------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


def _prctl(option: int, value: int) -> None:
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def enc(text: str | None) -> bytes | None:
        return None if text is None else text.encode()

    if _libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def _kept_flags(path: str) -> int:
    flags = os.statvfs(path).f_flag
    return sum(ms for st, ms in _KEEP_FLAGS.items() if flags & st)


def _bind(source: str, target: str, readonly: bool) -> None:
    """Bind ``source`` over ``target``, then remount it read-only or read-write (keeping nosuid etc.)."""
    _mount(source, target, None, MS_BIND | MS_REC)
    _mount(None, target, None, MS_REMOUNT | MS_BIND | _kept_flags(target) | (MS_RDONLY if readonly else 0))


def _restore(paths: list[str], fds: dict[str, int]) -> None:
    """Bind each missing path of ``paths`` back, read-only, from the descriptor opened before the mounts hid it."""
    for path in sorted(paths, key=len):
        if os.path.exists(path):  # inside one already bound back
            continue
        source = f"/proc/self/fd/{fds[path]}"
        if os.path.isdir(source):
            os.makedirs(path, mode=0o755)
        else:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            open(path, "a").close()
        _bind(source, path, readonly=True)


def _expose(paths: list[str], fds: dict[str, int]) -> None:
    """Make ``paths`` reachable for an unprivileged user: an empty tmpfs over each first closed ancestor
    (e.g. a 0700 /root holding pyenv; the rest of it stays hidden), with the paths bound back inside."""
    by_ancestor: dict[str, list[str]] = {}
    for path in paths:
        parts = Path(path).parts
        for depth in range(2, len(parts)):
            ancestor = str(Path(*parts[:depth]))
            if not os.stat(ancestor).st_mode & 0o001:
                by_ancestor.setdefault(ancestor, []).append(path)
                break
    for ancestor, inside in by_ancestor.items():
        _mount("tmpfs", ancestor, "tmpfs", MS_NOSUID | MS_NODEV, "size=16k,mode=755")
        _restore(inside, fds)
        _mount(None, ancestor, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)


def _under_private_tmp(path: str) -> bool:
    return any(path == tmp or path.startswith(tmp + "/") for tmp in _PRIVATE_TMP)


def _set_up_mounts(iso: dict, cwd: str, as_nobody: bool) -> None:
    """The kernel's view of the file system (in our private mount namespace); cwd stays writable.

    The private /tmp, /var/tmp and /dev/shm come first; what must stay visible (the interpreter, the read-only
    paths such as a checkout and its virtual environment, even in /tmp; an overlay's source) is opened
    beforehand and bound back."""
    cwd_fd = os.open(cwd, os.O_PATH | os.O_DIRECTORY)
    keep = sorted({os.path.realpath(p) for p in [sys.base_prefix, sys.prefix, *iso["readonly"]] if os.path.exists(p)}, key=len)
    fds = {path: os.open(path, os.O_PATH) for path in keep}
    sources = {target: os.open(source, os.O_PATH) for target, source in iso["overlays"].items() if os.path.exists(source)}
    for path in _PRIVATE_TMP:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"size={iso['tmp_mb']}m,mode=1777")
    _restore([p for p in keep if _under_private_tmp(p)], fds)
    if as_nobody:  # the interpreter (say pyenv in a 0700 /root) and the checkout must stay reachable for nobody
        _expose(keep, fds)
    for path in keep:
        _bind(path, path, readonly=True)
    for fd in fds.values():
        os.close(fd)
    for target, fd in sources.items():
        if os.path.exists(target):
            _bind(f"/proc/self/fd/{fd}", target, readonly=True)
        os.close(fd)
    for path in iso["hide"]:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=16k,mode=755")
        elif os.path.exists(path):
            _bind("/dev/null", path, readonly=True)
    try:  # the cwd, writable, at its own path (it may be under /tmp or a read-only path)
        os.makedirs(cwd, exist_ok=True)
        _bind(f"/proc/self/fd/{cwd_fd}", cwd, readonly=False)
        os.chdir(cwd)
    except OSError:
        os.fchdir(cwd_fd)
    os.close(cwd_fd)


def _read_connection_file(kernel_args: list[str]) -> bytes | None:
    """The connection file's content, read before the mounts may hide it."""
    return Path(kernel_args[kernel_args.index("-f") + 1]).read_bytes() if "-f" in kernel_args[:-1] else None


def _private_connection_file(kernel_args: list[str], content: bytes | None, owner: int | None) -> list[str]:
    """Write the connection file into the private /tmp (readable by the kernel's user); the kernel args to use."""
    args = list(kernel_args)
    if content is not None:
        private = Path("/tmp/.kernel")
        private.mkdir(mode=0o700, exist_ok=True)
        (private / "connection.json").write_bytes(content)
        if owner is not None:
            for path in (private, private / "connection.json"):
                os.chown(path, owner, owner)
        args[args.index("-f") + 1] = str(private / "connection.json")
    return args


def _chown_tree(top: str, uid: int) -> None:
    os.chown(top, uid, uid)
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            try:
                os.lchown(os.path.join(root, name), uid, uid)
            except OSError:
                pass


def hub_cache_dir(env: dict[str, str]) -> Path:
    """Where huggingface_hub looks for downloaded models, given an environment (its documented defaults)."""
    home = env.get("HOME", "/")
    hf_home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or os.path.join(home, ".cache"), "huggingface")
    return Path(env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE") or os.path.join(hf_home, "hub")).expanduser()


def _private_home(hub_fd: int | None, owner: int | None) -> None:
    """A writable home in the private /tmp (the real one is hidden or must not be written), with the grader's
    model cache bound read-only inside it so that downloaded models still load offline."""
    home = Path(_PRIVATE_HOME)
    hub = home / ".cache" / "huggingface" / "hub"
    hub.mkdir(parents=True, exist_ok=True)
    if owner is not None:
        _chown_tree(str(home), owner)
    if hub_fd is not None:
        _bind(f"/proc/self/fd/{hub_fd}", str(hub), readonly=True)
        os.close(hub_fd)
    for name in ("HF_HOME", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE", "TRANSFORMERS_CACHE"):
        os.environ.pop(name, None)
    os.environ.update({"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
                       "HF_HOME": str(home / ".cache" / "huggingface"), "HF_HUB_CACHE": str(hub)})


def _init(plan: dict, kernel_args: list[str]) -> None:
    """PID 1 of the kernel's namespace: set up the mounts, start the kernel, reap, exit with the kernel."""
    iso = plan["isolation"]
    as_nobody = iso is not None and os.getuid() == 0 and os.environ.get("COURSE_SANDBOX_USERNS") != "1"
    if iso is not None:
        connection = _read_connection_file(kernel_args)
        hub = hub_cache_dir(dict(os.environ))
        hub_fd = os.open(hub, os.O_PATH | os.O_DIRECTORY) if hub.is_dir() else None  # before the mounts hide it
        _set_up_mounts(iso, os.getcwd(), as_nobody)
        if as_nobody:
            _chown_tree(os.getcwd(), NOBODY)
        _private_home(hub_fd, NOBODY if as_nobody else None)
        kernel_args = _private_connection_file(kernel_args, connection, NOBODY if as_nobody else None)
    kernel = os.fork()
    if kernel == 0:
        os.setpgid(0, 0)  # signals to the launcher's group reach the kernel only through this init
        os.environ.pop("COURSE_SANDBOX_USERNS", None)
        os.environ.pop("JPY_PARENT_PID", None)  # its parent is this init (PID 1), which ipykernel reads as orphaned
        argv = [sys.executable, "-m", "ipykernel_launcher", *kernel_args]
        if iso is not None:  # (IPython's and matplotlib's folders go in the private HOME)
            user = [f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"] if as_nobody else []
            argv = ["setpriv", *user, "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", *argv]
        os.execvp(argv[0], argv)

    def forward(signum, _frame):
        try:
            os.kill(kernel, signum)
        except OSError:
            pass

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, forward)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(1)
        if pid == kernel:
            code = os.waitstatus_to_exitcode(status)
            os._exit(code if code >= 0 else 128 - code)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m course_lib.grading.sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("--plan", help="JSON file written by write_kernelspec (limits, cgroup, isolation)")
    parser.add_argument("--inner", action="store_true", help="(internal) running as PID 1 of the new namespaces")
    parser.add_argument("--memory-mb", type=int, default=4096, help="memory limit in MiB (0: none), without --plan")
    parser.add_argument("--cpu-seconds", type=int, default=0, help="CPU-time limit in seconds (0: none), without --plan")
    parser.add_argument("--file-mb", type=int, default=512, help="largest file the kernel may write, MiB (0: none)")
    parser.add_argument("kernel_args", nargs=argparse.REMAINDER, help="arguments for ipykernel, after --")
    args = parser.parse_args(argv)
    kernel_args = args.kernel_args[1:] if args.kernel_args[:1] == ["--"] else args.kernel_args
    plan = {"memory_mb": args.memory_mb, "cpu_seconds": args.cpu_seconds, "file_mb": args.file_mb, "cgroup": None,
            "namespaces": False, "isolation": None}
    if args.plan:
        plan = json.loads(Path(args.plan).read_text(encoding="utf-8"))
    if args.inner:
        _init(plan, kernel_args)
    in_cgroup = False
    if plan["cgroup"]:
        try:
            Path(plan["cgroup"], "cgroup.procs").write_text(str(os.getpid()))
            in_cgroup = True
        except OSError:
            pass
    apply_limits(plan["memory_mb"], plan["cpu_seconds"], plan["file_mb"], address_space=not in_cgroup)
    if not in_cgroup:  # glibc reserves 64 MiB of address space per thread arena; RLIMIT_AS counts it
        os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    if not plan["namespaces"]:
        os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", *kernel_args])
    parent = os.getppid()
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # the grader dies -> unshare dies -> (--kill-child) everything dies
    if os.getppid() != parent:
        os._exit(1)
    as_root = os.getuid() == 0
    if not as_root:
        os.environ["COURSE_SANDBOX_USERNS"] = "1"
    inner = [sys.executable, "-m", "course_lib.grading.sandbox", "--inner", "--plan", args.plan, "--", *kernel_args]
    os.execvp("unshare", _unshare_argv(as_root) + inner)


if __name__ == "__main__":
    main()
