"""Starting and stopping: every start-up failure ends the command at once,
in the foreground or daemonized, with one line on stderr, a non-zero status
and no pidfile; a bare port listens on IPv4 and IPv6; --version and the
Server header name txregistry."""

import os
import socket
import subprocess
import urllib.request

import pytest

from tests.support import procs

TWISTD = os.path.join(procs.BIN, "twistd")
# Seconds a failing start may take; the daemonized parent used to wait for
# ever on its child's status.
BOUND = 30


def start(tmp_path, mode, port, *args, env=None, pidfile=None, logfile=None):
    """twistd txregistry on C{port}, in the foreground (C{mode} "-n") or
    daemonized, with a pidfile (and daemonized a logfile) in C{tmp_path}
    unless given; the finished command, or a test failure if it did not
    finish within L{BOUND}."""
    pidfile = pidfile or tmp_path / "twistd.pid"
    head = ["-n"] if mode == "-n" else []
    head += ["--pidfile", str(pidfile)]
    if logfile or mode != "-n":
        head += ["--logfile", str(logfile or tmp_path / "twistd.log")]
    argv = [TWISTD] + head + ["txregistry", "--port", port, "--storage-path", str(tmp_path / "data")] + list(args)
    try:
        r = subprocess.run(argv, env=procs.twistdEnv(env), cwd=str(tmp_path), capture_output=True, text=True,
                           timeout=BOUND)
    except subprocess.TimeoutExpired:
        pytest.fail("twistd %s did not end within %d s" % (mode or "(daemonized)", BOUND))
    r.pidfile = pidfile
    return r


def assertFailedAtStart(r, prefix):
    """C{r} ended non-zero with one line on stderr starting with C{prefix},
    nothing on stdout, and left no pidfile."""
    assert r.returncode != 0, (r.stdout, r.stderr)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(prefix), lines[0]
    assert r.stdout.strip() == "", r.stdout
    assert not r.pidfile.exists()
    return lines[0]


MODES = pytest.mark.parametrize("mode", ["-n", "daemonized"])


def hold(family, host):
    """A listening socket on C{host}, any port: (socket, port)."""
    s = socket.socket(family)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((host, 0))
    s.listen()
    return s, s.getsockname()[1]


def ipv6Loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@MODES
def test_port_in_use(tmp_path, mode):
    s, port = hold(socket.AF_INET, "127.0.0.1")
    with s:
        r = start(tmp_path, mode, "tcp:%d:interface=127.0.0.1" % port)
    line = assertFailedAtStart(r, "txregistry: cannot listen on tcp:%d:interface=127.0.0.1: " % port)
    assert "Address already in use" in line


@MODES
@pytest.mark.parametrize("family,host", [(socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")])
def test_bare_port_in_use(tmp_path, mode, family, host):
    if family == socket.AF_INET6 and not ipv6Loopback():
        pytest.skip("no IPv6 here")
    s, port = hold(family, host)
    with s:
        r = start(tmp_path, mode, str(port))
    assertFailedAtStart(r, "txregistry: cannot listen on %d: " % port)


@MODES
@pytest.mark.parametrize(
    "port,detail",
    [
        ("bogus:1", "Unknown endpoint type: 'bogus'"),
        ("tcp:abc", "'abc'"),
        ("ssl:0:interface=127.0.0.1:privateKey=/no/such/key.pem", "/no/such/key.pem"),
        ("70000", "at most 65535"),
    ],
)
def test_bad_port(tmp_path, mode, port, detail):
    r = start(tmp_path, mode, port)
    line = assertFailedAtStart(r, "txregistry: configuration error: bad port %r: " % (port,))
    assert detail in line


@MODES
def test_configuration_error(tmp_path, mode):
    r = start(tmp_path, mode, "tcp:0:interface=127.0.0.1", "--flavor", "nope")
    assertFailedAtStart(r, "txregistry: configuration error: ")


@MODES
def test_pidfile_or_logfile_cannot_be_written(tmp_path, mode):
    # twistd writes its pidfile after it forked, where its failure used to
    # be two lines (daemonized) or a traceback (-n); an unopenable log file
    # was a traceback.
    r = start(tmp_path, mode, "tcp:0:interface=127.0.0.1", pidfile=tmp_path / "no" / "twistd.pid")
    assertFailedAtStart(r, "txregistry: cannot write pidfile %s: " % (tmp_path / "no" / "twistd.pid",))
    r = start(tmp_path, mode, "tcp:0:interface=127.0.0.1", logfile=tmp_path / "no" / "twistd.log")
    assertFailedAtStart(r, "txregistry: cannot open log file %s: " % (tmp_path / "no" / "twistd.log",))


def test_tac_port_in_use(tmp_path):
    s, port = hold(socket.AF_INET, "127.0.0.1")
    with s:
        r = subprocess.run(
            [TWISTD, "-ny", os.path.join(procs.REPO, "registry.tac"), "--pidfile", str(tmp_path / "twistd.pid")],
            env=procs.twistdEnv({"REGISTRY_PORT": "tcp:%d:interface=127.0.0.1" % port,
                                 "STORAGE_PATH": str(tmp_path / "data")}),
            cwd=str(tmp_path), capture_output=True, text=True, timeout=BOUND,
        )
    r.pidfile = tmp_path / "twistd.pid"
    assertFailedAtStart(r, "txregistry: cannot listen on ")


def test_bare_port_answers_on_ipv4_and_ipv6(tmp_path):
    if not ipv6Loopback():
        pytest.skip("no IPv6 loopback (::1) here")
    port = procs.freePort()
    d = procs.Daemon(
        [TWISTD, "-n", "--pidfile=", "txregistry", "--port", str(port), "--storage-path", str(tmp_path / "d")],
        port, str(tmp_path / "bare.log"), env=procs.twistdEnv(),
    )
    try:
        for url in ("http://127.0.0.1:%d/v2/" % port, "http://[::1]:%d/v2/" % port):
            with urllib.request.urlopen(url, timeout=10) as r:
                assert r.status == 200, url
        log = d.syncLog()
        assert "listening on 0.0.0.0:%d and [::]:%d" % (port, port) in log
        # Each client keeps its own address family in the access log.
        assert '"127.0.0.1" - - ' in log and '"::1" - - ' in log, log[-2000:]
    finally:
        d.stop()


def test_version():
    import txregistry

    expected = "txregistry %s " % (txregistry.__version__,)
    env = procs.twistdEnv()
    for argv in ([os.path.join(procs.BIN, "txregistry"), "--version"], [TWISTD, "txregistry", "--version"]):
        r = subprocess.run(argv, env=env, cwd=procs.REPO, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(expected), (argv, r.stdout)
    r = subprocess.run([procs.sys.executable, "setup.py", "--version"], env=env, cwd=procs.REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.split()[-1] == txregistry.__version__, r.stdout + r.stderr


@pytest.mark.parametrize("setting,expected", [(None, "txregistry"), ("false", None), ("acme-registry", "acme-registry")])
def test_server_header(tmp_path, setting, expected):
    import twisted

    cfg = tmp_path / "config.yml"
    cfg.write_text("dev:\n  storage: local\n" + ("  server_header: %s\n" % setting if setting else ""))
    d = procs.startTxregistry(str(tmp_path / "data"), str(tmp_path), env={"DOCKER_REGISTRY_CONFIG": str(cfg)})
    try:
        from tests.hostile import rawhttp

        for request in (b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                        b"GET /v2/no/such/manifests/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                        b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"):
            data, _ = rawhttp.converse(d.port, request, timeout=10)
            head = data.partition(b"\r\n\r\n")[0].decode("latin-1")
            servers = [x.split(":", 1)[1].strip() for x in head.split("\r\n")[1:] if x.lower().startswith("server:")]
            assert servers == ([expected] if expected else []), head
            assert twisted.__version__ not in head
    finally:
        d.stop()
