"""A txregistry with logins: an htpasswd file made by the real ``htpasswd``
tool (apache2-utils) and a config flavor with an ``auth:`` section."""

import os
import shutil
import subprocess

from tests.support import pki, procs

PASSWORDS = {"admin": "admin-secret-pw", "alice": "alice-secret-pw", "bob": "bob-secret-pw"}
CONFIG = """\
secure:
    storage: local
    loglevel: debug
    search_backend: sqlalchemy
    auth:
        htpasswd: users.htpasswd
        mode: %(mode)s
        policy:
            admins: [admin]
            anonymous:
                - {repository: "public/*", actions: [pull]}
            users:
                alice:
                    - {repository: "alice/*", actions: ["*"]}
                    - {repository: "public/*", actions: [pull, push]}
                bob:
                    - {repository: "alice/*", actions: [pull]}
"""


def htpasswd(path, users, flag="-B"):
    """Write C{users} (name -> password) with ``htpasswd -b`` (C{flag}: -B
    bcrypt, -m MD5, ...)."""
    first = True
    for user, password in users.items():
        args = ["htpasswd", "-b", flag] + (["-c"] if first else []) + [str(path), user, password]
        subprocess.run(args, check=True, capture_output=True)
        first = False


def writeConfig(directory, mode="bearer", flag="-B", config=CONFIG):
    """The config file (flavor ``secure``) and its htpasswd in C{directory};
    returns the config file's path."""
    os.makedirs(directory, exist_ok=True)
    htpasswd(os.path.join(directory, "users.htpasswd"), PASSWORDS, flag)
    path = os.path.join(directory, "config.yml")
    with open(path, "w") as f:
        f.write(config % {"mode": mode})
    return path


def startSecure(tmp_path, mode="bearer", tls=True, port=None, config=CONFIG):
    """txregistry with logins (and TLS with a throwaway CA, whose files are
    in C{daemon.pki}; C{daemon.certDir} holds ``ca.crt`` for clients)."""
    configPath = writeConfig(str(tmp_path / "conf"), mode, config=config)
    paths = pki.makePKI(str(tmp_path / "pki")) if tls else None
    daemon = procs.startTxregistry(
        str(tmp_path / "data"), str(tmp_path), port=port, tls=paths,
        args=("--config", configPath, "--flavor", "secure"),
    )
    daemon.pki = paths
    if paths:
        daemon.certDir = str(tmp_path / "certs")
        os.makedirs(daemon.certDir, exist_ok=True)
        shutil.copy(paths["ca"], os.path.join(daemon.certDir, "ca.crt"))
    return daemon
