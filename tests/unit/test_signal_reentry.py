"""A signal handler that logs (Twisted's own SIGTERM handler says "Received
SIGTERM" from inside it) runs on the main thread between any two steps of
whatever that thread was doing: here, in the middle of a log write that
waits on a full pipe.  A worker's pipe to its master (workers.channel's
Messages) deadlocked on its own lock there, freezing the worker with the
requests it had accepted; the log file observer raised instead.  Each case
runs in a process of its own, which a deadlock would keep from ending."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = textwrap.dedent(r"""
    import json, os, signal, sys, threading, time
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        while True:
            os.write(w, b"x" * 4096)  # fill the pipe: the next write waits
    except BlockingIOError:
        pass
    os.set_blocking(w, True)
    if sys.argv[1] == "messages":
        from txregistry.workers.channel import Messages
        messages = Messages(w)
        send = lambda text: messages.send({"text": text})
    else:
        from txregistry.logs import BatchingFileLogObserver
        observer = BatchingFileLogObserver(os.fdopen(w, "w", buffering=1), None)
        send = lambda text: observer.writeText(json.dumps({"text": text}) + "\n")
    signal.signal(signal.SIGUSR1, lambda *_: send("from the handler"))
    main, mainIdent = threading.get_native_id(), threading.get_ident()

    def reader():
        wchan = "/proc/self/task/%d/wchan" % (main,)
        while not open(wchan).read().endswith("pipe_write"):
            time.sleep(0.001)  # polling: until the main thread waits in its write
        signal.pthread_kill(mainIdent, signal.SIGUSR1)
        data = b""
        while data.count(b"\n") < 2:
            data += os.read(r, 65536)
        print(json.dumps([json.loads(line)["text"] for line in data.lstrip(b"x").splitlines()]), flush=True)
        os._exit(0)

    threading.Thread(target=reader).start()
    send("from the main thread")
    threading.Event().wait(60)
""")


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux's /proc")
@pytest.mark.parametrize("kind", ["messages", "observer"])
def test_a_signal_handler_logging_during_a_blocked_write_neither_hangs_nor_mixes_lines(kind):
    env = dict(os.environ, PYTHONPATH=REPO)
    try:
        done = subprocess.run([sys.executable, "-c", SCRIPT, kind], env=env, capture_output=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("the signal handler's write deadlocked")
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout) == ["from the main thread", "from the handler"]
