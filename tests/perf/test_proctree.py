"""benchmarks/proctree.py on a real tree of processes: a parent with two
children, one of which burns CPU and exits (and is waited for) between two
snapshots."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

import proctree  # noqa: E402

PARENT = r"""
import subprocess, sys
burn = "import sys, time\nsys.stdin.readline()\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\n"
a = subprocess.Popen([sys.executable, "-c", burn], stdin=subprocess.PIPE)
b = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
print("ready", a.pid, b.pid, flush=True)
sys.stdin.readline()
a.stdin.write(b"go\n"); a.stdin.close(); a.wait()
print("reaped", flush=True)
sys.stdin.readline()
b.stdin.close(); b.wait()
"""


def test_tree_cpu_and_memory():
    root = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = root.stdout.readline().split()
        assert line[0] == "ready"
        a, b = int(line[1]), int(line[2])
        assert proctree.tree(root.pid) == [root.pid] + sorted([a, b])

        mem = proctree.treeMemory(root.pid)
        assert set(mem) == {root.pid, a, b}
        assert all(m["Pss"] > 0 and m["Rss"] >= m["Pss"] and m["VmHWM"] >= m["Rss"] // 2 for m in mem.values())
        assert proctree.pssSum(mem) <= proctree.rssSum(mem)

        with proctree.PeakSampler(root.pid, interval=0.05) as sampler:
            before = proctree.cpuSnapshot(root.pid)
            root.stdin.write("\n")
            root.stdin.flush()
            assert root.stdout.readline().strip() == "reaped"
            after = proctree.cpuSnapshot(root.pid)
        # The child that exited was waited for: its CPU is in its parent's
        # cutime, so the tree's total still counts it.
        assert proctree.tree(root.pid) == [root.pid, b]
        assert 0.45 <= proctree.cpuDelta(before, after) < 5
        perProcess = proctree.cpuPerProcess(before, after)
        assert set(perProcess) == {root.pid, b}
        assert all(s < 0.4 for s in perProcess.values())
        assert sampler.samples >= 2 and a in sampler.hwm and sampler.peakPss >= proctree.pssSum(mem) // 2
    finally:
        if root.poll() is None:
            root.stdin.write("\n")
            root.stdin.close()
            root.wait(10)
