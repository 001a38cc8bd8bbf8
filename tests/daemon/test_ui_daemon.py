"""The web pages in a running daemon: on at / by default, moved or turned
off by the ui: key, a bad ui: key refused at start in one line."""

from tests.support import procs
from tests.e2e import clients
from tests.daemon.test_twistd import assertConfigurationError


def start(tmp_path, ui=None):
    args = ()
    tmp_path.mkdir(exist_ok=True)
    if ui is not None:
        conf = tmp_path / "config.yml"
        conf.write_text("web:\n  storage: local\n  ui: %s\n" % (ui,))
        args = ("--config", str(conf), "--flavor", "web")
    return procs.startTxregistry(str(tmp_path / "data"), str(tmp_path), args=args)


def test_onByDefault(tmp_path):
    daemon = start(tmp_path)
    try:
        status, headers, body = clients.request(daemon, "/")
        assert status == 200
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert b"No repositories yet." in body
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        status, _, body = clients.request(daemon, "/v2/")
        assert (status, body) == (200, b"{}")
    finally:
        daemon.stop()


def test_offAndMoved(tmp_path):
    daemon = start(tmp_path / "off", "false")
    try:
        status, headers, body = clients.request(daemon, "/")
        assert status == 404 and b"UNSUPPORTED" in body
    finally:
        daemon.stop()
    daemon = start(tmp_path / "moved", "{path: /browse}")
    try:
        assert clients.request(daemon, "/")[0] == 404
        status, _, body = clients.request(daemon, "/browse/")
        assert status == 200 and b"Repositories" in body
    finally:
        daemon.stop()


def test_badKeyRefusedAtStart(tmp_path):
    from tests.daemon.test_twistd import run

    conf = tmp_path / "config.yml"
    conf.write_text("web:\n  storage: local\n  ui: {path: /v2/pages}\n")
    r = run(["-n", "--pidfile=", "txregistry", "--port", "tcp:0:interface=127.0.0.1", "--storage-path",
             str(tmp_path / "data"), "--config", str(conf), "--flavor", "web"])
    assertConfigurationError(r, "ui.path must be")
