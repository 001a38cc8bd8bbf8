"""Many small pushes: the cost of durable, atomic metadata writes.

    .venv/bin/python benchmarks/small_pushes.py [--repo PATH] [--images 300] [--clients 4]

Starts the txregistry of the source tree at --repo (default: this one) on a
fresh storage directory on the same file system as --dir (not tmpfs: fsync
must cost what it costs), and pushes --images images, each a 1 KiB layer,
a config and a manifest by a new tag, from --clients clients at once; prints
the seconds taken and images/s.  Run it on two trees to compare."""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)

from tests.perf.registryclient import RegistryClient, configBlob, imageManifest  # noqa: E402
from tests.support.procs import freePort, terminate, waitFor  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo", default=HERE)
    parser.add_argument("--dir", default=HERE)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    storage = tempfile.mkdtemp(prefix="small-pushes-", dir=args.dir)
    port = freePort()
    env = dict(os.environ, PYTHONPATH=args.repo, LOGLEVEL="warn")
    log = open(os.path.join(storage, "..", os.path.basename(storage) + ".log"), "wb")
    proc = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "twistd"), "-n", "--pidfile=", "txregistry", "--port",
         "tcp:%d:interface=127.0.0.1" % (port,), "--storage-path", storage],
        cwd=args.repo, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        waitFor("http://127.0.0.1:%d/v2/" % (port,), proc)

        def push(k):
            client = RegistryClient("127.0.0.1", port)
            try:
                for i in range(k, args.images, args.clients):
                    name = "small/r%d" % (i % 10,)
                    layer = client.pushBlobMonolithic(name, b"%d" % (i,) * 1024)
                    config = configBlob() + b" " * i
                    configDigest = client.pushBlobMonolithic(name, config)
                    client.putManifest(name, "t%d" % (i,), imageManifest(configDigest, len(config), [(layer, 1024)]))
            finally:
                client.close()

        started = time.monotonic()
        threads = [threading.Thread(target=push, args=(k,)) for k in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.monotonic() - started
        print("%s: %d images in %.2f s, %.1f images/s" % (args.repo, args.images, took, args.images / took))
    finally:
        terminate(proc)
        log.close()
        shutil.rmtree(storage, ignore_errors=True)
        os.unlink(storage + ".log")


if __name__ == "__main__":
    main()
