"""Failed logins are counted across the nodes that share a PostgreSQL
search index: wrong passwords sent to one daemon throttle the client on the
other (txregistry.auth.sharedfailures)."""

import base64
import time
import urllib.error
import urllib.request

from tests.support import procs, secure


def status(daemon, authorization):
    req = urllib.request.Request(daemon.url + "/v2/", headers={"Authorization": authorization})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_failed_logins_are_counted_across_nodes(tmp_path, sharedIndex):
    config = secure.CONFIG.replace(
        "        mode: %(mode)s\n", "        mode: %(mode)s\n        login_failures: 3\n        login_failure_window: 30\n"
        "        cache_seconds: 0\n"
    ).replace("    search_backend: sqlalchemy\n",
              "    search_backend: sqlalchemy\n    sqlalchemy_index_database: %s\n" % (sharedIndex.url,))
    path = secure.writeConfig(str(tmp_path / "conf"), "basic", config=config)
    nodes = []
    try:
        for name in ("a", "b"):
            nodes.append(procs.startTxregistry(str(tmp_path / name), str(tmp_path),
                                               args=("--config", path, "--flavor", "secure")))
        a, b = nodes
        wrong = "Basic " + base64.b64encode(b"alice:wrong").decode()
        # (cache_seconds 0: a right password is checked each time, so it is throttled too)
        right = "Basic " + base64.b64encode(("bob:%s" % secure.PASSWORDS["bob"]).encode()).decode()
        assert status(b, right) == 200
        for _ in range(3):
            assert status(a, wrong) == 401
        assert status(a, right) == 429
        deadline = time.monotonic() + 15
        while status(b, right) != 429:  # (b reads them from the database every second: polled)
            assert time.monotonic() < deadline, "node b never counted node a's failed logins"
            time.sleep(0.2)  # polling interval
        for node in nodes:
            log = node.log()
            assert "Traceback" not in log and "not shared" not in log, log[-3000:]
    finally:
        for node in nodes:
            node.stop()
