"""A memory cgroup for one graded notebook: one limit for all the kernel's processes together.

Promised: every process that joins (the sandbox launcher joins before it starts the kernel, so all
its descendants are in) is charged together, shared memory included (``/dev/shm``, memfd,
``MAP_SHARED`` anonymous mappings, tmpfs files), and ``kill_all`` ends every one of them.
Needs from the host: a writable memory cgroup, either cgroup v2 with the ``memory`` controller
enabled for children of our own cgroup, or cgroup v1 (``/sys/fs/cgroup/memory/<our cgroup>``),
usually as root. Without one, ``MemoryCgroup.create`` returns None and the sandbox falls back to
an address-space limit per process.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path


def _mounts(fstype: str) -> list[tuple[str, set[str]]]:
    """(mount point, options) of every mount of type ``fstype``."""
    found = []
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split()
        if len(parts) >= 4 and parts[2] == fstype:
            found.append((parts[1], set(parts[3].split(","))))
    return found


def _own_cgroups() -> dict[str, str]:
    """Controller name (``''`` for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    own = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return own
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            own[name] = path
    return own


def _candidates() -> list[tuple[Path, int]]:
    """Folders where we may create a child memory cgroup, with their cgroup version."""
    own = _own_cgroups()
    found = []
    if "" in own:
        for mount, _ in _mounts("cgroup2"):
            parent = Path(mount + own[""].rstrip("/"))
            controllers = parent / "cgroup.controllers"
            if controllers.exists() and "memory" in controllers.read_text().split():
                found.append((parent, 2))
    if "memory" in own:
        for mount, options in _mounts("cgroup"):
            if "memory" in options:
                found.append((Path(mount + own["memory"].rstrip("/")), 1))
    return found


def _write(path: Path, value: str) -> None:
    path.write_text(value)


class MemoryCgroup:
    """One memory cgroup (v1 or v2) that we created; ``remove()`` when done."""

    def __init__(self, path: Path, version: int):
        self.path = path  # the cgroup's folder
        self.version = version  # 1 or 2

    @classmethod
    def create(cls, memory_mb: int) -> MemoryCgroup | None:
        """A fresh cgroup limited to ``memory_mb`` MiB (0: no limit), no swap; None when none is writable."""
        for parent, version in _candidates():
            path = parent / f"course-kernel-{uuid.uuid4().hex[:12]}"
            try:
                if version == 2:
                    subtree = parent / "cgroup.subtree_control"
                    if "memory" not in subtree.read_text().split():
                        _write(subtree, "+memory")
                path.mkdir()
            except OSError:
                continue
            group = cls(path, version)
            try:
                group._set_limit(memory_mb)
            except OSError:
                group.remove()
                continue
            return group
        return None

    @classmethod
    def available(cls) -> bool:
        """Whether this host lets us make one (tried: made and removed)."""
        group = cls.create(64)
        if group is not None:
            group.remove()
        return group is not None

    def _set_limit(self, memory_mb: int) -> None:
        limit = str(memory_mb * 2**20) if memory_mb > 0 else None
        if self.version == 2:
            if limit:
                _write(self.path / "memory.max", limit)
            if (self.path / "memory.swap.max").exists():
                _write(self.path / "memory.swap.max", "0")
            return
        if limit:
            _write(self.path / "memory.limit_in_bytes", limit)
            if (self.path / "memory.memsw.limit_in_bytes").exists():  # memory + swap: no swapping around the limit
                _write(self.path / "memory.memsw.limit_in_bytes", limit)

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def kill_all(self, timeout: float = 10.0) -> bool:
        """SIGKILL every process in the cgroup until it is empty; True when it emptied in time."""
        end = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if not pids:
                return True
            if time.monotonic() > end:
                return False
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.05)

    def remove(self) -> None:
        """Delete the (empty) cgroup; processes still in it are killed first."""
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                self.kill_all(timeout=1.0)
                time.sleep(0.05)
