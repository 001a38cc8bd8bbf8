"""contrib/txregistry.service: systemd's own checks."""

import os
import shutil
import subprocess
import sys

from tests.support import procs
from tests.support.required import missing

UNIT = os.path.join(procs.REPO, "contrib", "txregistry.service")
ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"


def unitFor(tmp_path, twistd):
    """The unit with its ExecStart pointing at C{twistd} (systemd-analyze
    verify checks that the program is there)."""
    text = open(UNIT).read()
    assert "ExecStart=/opt/txregistry/bin/twistd " in text
    path = tmp_path / "txregistry.service"
    path.write_text(text.replace("/opt/txregistry/bin/twistd", twistd))
    return str(path)


def analyze(*args):
    if not os.access(ANALYZE, os.X_OK):
        missing("systemd-analyze is not installed (Debian: systemd)")
    return subprocess.run([ANALYZE] + list(args), capture_output=True, text=True, timeout=120)


def test_unit_verifies(tmp_path):
    """systemd-analyze verify: no error and no warning (it exits 0 on
    directives it ignores, so its output must be empty too)."""
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    proc = analyze("verify", unitFor(tmp_path, twistd))
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stdout + proc.stderr


def test_unit_hardened(tmp_path):
    """systemd-analyze security rates the unit's exposure OK or better
    (below 2.0 of 10), with the options the README names."""
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    proc = analyze("security", "--offline=yes", "--threshold=20", unitFor(tmp_path, twistd))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = dict(line.split("=", 1) for line in open(UNIT).read().splitlines() if "=" in line and line[:1].isalpha())
    for key, value in [("Restart", "on-failure"), ("DynamicUser", "yes"), ("StateDirectory", "txregistry"),
                       ("ProtectSystem", "strict"), ("NoNewPrivileges", "yes"), ("PrivateTmp", "yes"),
                       ("ProtectHome", "yes")]:
        assert lines.get(key) == value, key


def test_unit_command_serves(tmp_path):
    """The unit's ExecStart with its Environment= settings starts a
    registry (the port and data directory as txregistry.env would set
    them), and SIGTERM, systemd's KillSignal, stops it cleanly."""
    import shlex
    import urllib.request

    settings, execStart = {}, None
    for line in open(UNIT).read().splitlines():
        if line.startswith("Environment="):
            key, value = line[len("Environment="):].split("=", 1)
            settings[key] = value
        elif line.startswith("ExecStart="):
            execStart = shlex.split(line[len("ExecStart="):])
    assert settings["STORAGE_PATH"] == "/var/lib/txregistry" and settings["SETTINGS_FLAVOR"] == "local"
    port = procs.freePort()
    settings.update(REGISTRY_PORT="tcp:%d:interface=127.0.0.1" % port, STORAGE_PATH=str(tmp_path / "state"))
    argv = [os.path.join(os.path.dirname(sys.executable), "twistd")] + execStart[1:]
    daemon = procs.Daemon(argv, port, str(tmp_path / "daemon.log"), env=procs.twistdEnv(settings), cwd=str(tmp_path))
    try:
        with urllib.request.urlopen(daemon.url + "/health", timeout=10) as r:
            assert r.status == 200
        assert "storage filesystem at %s, flavor local" % (tmp_path / "state") in daemon.log(), daemon.log()[-2000:]
    finally:
        daemon.stop()
    assert "Server Shut Down." in daemon.log()
