"""CPU time and memory of a daemon and all its descendant processes, from
/proc, for benchmarks/workers.py.

A daemon here is a root process (twistd, or Distribution's registry) and
whatever it forks.  CPU: the utime+stime of each live process of the tree,
plus its cutime+cstime (children it has waited for); the sum over the live
tree only grows while no process of the tree exits unreaped, so the
difference of two snapshots is the CPU the whole tree used in between, even
if a worker exited and was waited for meanwhile.  Memory: PSS (shared pages
divided among the processes sharing them) summed over the tree, so that N
workers forked from one master are not counted N times.
"""

import os
import threading

TICK = os.sysconf("SC_CLK_TCK")
KiB = 1024


def _stat(pid):
    """(ppid, own CPU s, waited-for children's CPU s, start time) of C{pid}."""
    with open("/proc/%d/stat" % (pid,)) as f:
        data = f.read()
    fields = data[data.rindex(")") + 2 :].split()
    # fields[0] is field 3 of proc(5): state; ppid 4, utime 14, stime 15,
    # cutime 16, cstime 17, starttime 22.
    own = (int(fields[11]) + int(fields[12])) / TICK
    children = (int(fields[13]) + int(fields[14])) / TICK
    return int(fields[1]), own, children, int(fields[19])


def tree(root):
    """The pids of C{root} and of all its live descendants, root first."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            ppid = _stat(int(name))[0]
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop(0)
        out.append(pid)
        todo.extend(sorted(children.get(pid, ())))
    return out


def cpuSnapshot(root):
    """{(pid, starttime): (own CPU s, children's CPU s)} over the tree."""
    snap = {}
    for pid in tree(root):
        try:
            _, own, children, start = _stat(pid)
        except (OSError, ValueError, IndexError):
            continue
        snap[(pid, start)] = (own, children)
    return snap


def cpuTotal(snap):
    return sum(own + children for own, children in snap.values())


def cpuDelta(before, after):
    """CPU seconds of the whole tree between two snapshots."""
    return cpuTotal(after) - cpuTotal(before)


def cpuPerProcess(before, after):
    """{pid: own CPU s between the snapshots} for the processes alive at the
    end (one started meanwhile counts from zero)."""
    return {
        key[0]: own - before.get(key, (0.0, 0.0))[0] for key, (own, _) in sorted(after.items())
    }


def _fields(path, names):
    out = {}
    with open(path) as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in names:
                out[key] = int(line.split()[1]) * KiB
    return out


def memory(pid):
    """{'Pss', 'Rss', 'VmHWM'} of one process, bytes."""
    m = _fields("/proc/%d/smaps_rollup" % (pid,), ("Pss", "Rss"))
    m.update(_fields("/proc/%d/status" % (pid,), ("VmHWM",)))
    return m


def treeMemory(root):
    """{pid: memory(pid)} over the tree."""
    out = {}
    for pid in tree(root):
        try:
            out[pid] = memory(pid)
        except (OSError, ValueError):
            continue
    return out


def pssSum(mem):
    return sum(m.get("Pss", 0) for m in mem.values())


def rssSum(mem):
    return sum(m.get("Rss", 0) for m in mem.values())


class PeakSampler:
    """A thread sampling the tree every C{interval} seconds: the highest PSS
    sum seen, and the highest VmHWM of each process seen (so a process that
    exits before the end still counts)."""

    def __init__(self, root, interval=0.1):
        self.root = root
        self.interval = interval
        self.peakPss = 0
        self.hwm = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self):
        mem = treeMemory(self.root)
        self.peakPss = max(self.peakPss, pssSum(mem))
        for pid, m in mem.items():
            self.hwm[pid] = max(self.hwm.get(pid, 0), m.get("VmHWM", 0))
        self.samples += 1

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)  # sampling period

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.sample()
        return False
