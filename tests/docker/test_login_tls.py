"""Logins over TLS with the real clients: ``docker login`` (the docker CLI
through podman's service), ``podman login`` and ``skopeo login``, then push
and pull, against a txregistry with htpasswd users, an access policy and a
certificate of a throwaway CA that the clients trust; in bearer mode (the
built-in token endpoint) and basic mode.

The podman service finds a registry's CA where containers/image looks for
it, ``/etc/containers/certs.d/HOST:PORT/ca.crt``: the docker tests put it
there for the registry's own port and take it away after (they run as root,
as CI does)."""

import os
import shutil

import pytest

from tests.docker import images
from tests.support import secure

PW = secure.PASSWORDS
SYSTEM_CERTS = "/etc/containers/certs.d"


@pytest.fixture(params=["bearer", "basic"])
def tlsRegistry(request, tmp_path, podmanHost):
    daemon = secure.startSecure(tmp_path, mode=request.param)
    daemon.mode = request.param
    trusted = os.path.join(SYSTEM_CERTS, daemon.host)
    try:
        os.makedirs(trusted, exist_ok=True)
        shutil.copy(daemon.pki["ca"], os.path.join(trusted, "ca.crt"))
    except OSError as e:
        daemon.stop()
        pytest.fail("the docker login test must be able to write %s (run as root): %s" % (trusted, e))
    try:
        yield daemon
    finally:
        shutil.rmtree(trusted, ignore_errors=True)
        daemon.stop()


def noLogin(tmp_path):
    """An auth file without logins."""
    path = tmp_path / "no-login.json"
    path.write_text('{"auths": {}}')
    return str(path)


def localImage(cli, tmp_path, name):
    built = images.buildImage(tmp_path / ("layout-" + name.replace("/", "_").replace(":", "_")), tag="src")
    cli.loadLayout(built.layout, "src", name)
    return built


def failure(result):
    return (result.stdout + result.stderr).lower()


def refused(result):
    """Whether a client's output says the registry refused it access."""
    text = failure(result)
    return result.returncode != 0 and any(w in text for w in ("denied", "unauthorized", "forbidden"))


def test_docker_login_push_pull(cli, tlsRegistry, tmp_path):
    host = tlsRegistry.host
    r = cli.docker("login", "-u", "alice", "--password-stdin", host, input="wrong-password\n", check=False)
    assert r.returncode != 0
    assert "unauthorized" in failure(r) or "invalid" in failure(r), failure(r)
    r = cli.docker("login", "-u", "alice", "--password-stdin", host, input=PW["alice"] + "\n")
    assert "Login Succeeded" in r.stdout
    try:
        built = localImage(cli, tmp_path, "localhost/txr-login:1")
        mine = "%s/alice/app:1" % host
        cli.docker("tag", "localhost/txr-login:1", mine)
        cli.docker("push", mine)
        # a repository alice may not push to
        theirs = "%s/bob/app:1" % host
        cli.docker("tag", "localhost/txr-login:1", theirs)
        r = cli.docker("push", theirs, check=False)
        assert refused(r), failure(r)
        cli.removeAllImages()
        cli.docker("pull", mine)
        assert cli.inspect(mine)["RootFS"]["Layers"] == built.diffIDs
        # public/* is open to anonymous pulls (bearer mode: with an anonymous token)
        cli.docker("tag", mine, "%s/public/app:1" % host)
        cli.docker("push", "%s/public/app:1" % host)
    finally:
        cli.docker("logout", host, check=False)
    cli.removeAllImages()
    r = cli.docker("pull", mine, check=False)
    assert r.returncode != 0
    if tlsRegistry.mode == "bearer":
        cli.docker("pull", "%s/public/app:1" % host)
    # logged out: search shows the public repository only
    out = cli.docker("search", "--format", "{{.Name}}", "%s/app" % host).stdout.split()
    assert out == ["%s/public/app" % host], out
    log = tlsRegistry.syncLog()
    assert PW["alice"] not in log and "wrong-password" not in log
    assert '" - alice ' in log


def test_podman_login_push_pull(cli, tlsRegistry, tmp_path):
    host = tlsRegistry.host
    auth = str(tmp_path / "podman-auth.json")
    tls = ["--cert-dir", tlsRegistry.certDir]
    r = cli.podman("login", *tls, "--authfile", auth, "-u", "bob", "-p", "wrong", host, check=False)
    assert r.returncode != 0
    cli.podman("login", *tls, "--authfile", auth, "-u", "alice", "-p", PW["alice"], host)
    built = localImage(cli, tmp_path, "localhost/txr-plogin:1")
    ref = "%s/alice/tool:1" % host
    cli.podman("push", *tls, "--authfile", auth, "localhost/txr-plogin:1", ref)
    cli.removeAllImages()
    # bob may pull alice/*, not push there
    bobAuth = str(tmp_path / "bob-auth.json")
    cli.podman("login", *tls, "--authfile", bobAuth, "-u", "bob", "-p", PW["bob"], host)
    cli.podman("pull", *tls, "--authfile", bobAuth, ref)
    assert cli.inspect(ref)["RootFS"]["Layers"] == built.diffIDs
    r = cli.podman("push", *tls, "--authfile", bobAuth, ref, "%s/alice/tool:2" % host, check=False)
    assert refused(r), failure(r)
    # podman sends no login to /v1/search: it finds what anybody may pull
    cli.podman("push", *tls, "--authfile", auth, ref, "%s/public/tool:1" % host)
    out = cli.podman("search", "--authfile", auth, "--format", "{{.Name}}", "%s/tool" % host).stdout.split()
    assert out == ["%s/public/tool" % host], out
    cli.podman("logout", "--authfile", auth, host)


def test_skopeo_login_copy(cli, tlsRegistry, tmp_path):
    host = tlsRegistry.host
    auth = str(tmp_path / "skopeo-auth.json")
    built = images.buildImage(tmp_path / "layout", tag="v1")
    tls = ["--cert-dir", tlsRegistry.certDir]
    r = cli.skopeo("login", *tls, "--authfile", auth, "-u", "alice", "-p", "nope", host, check=False)
    assert r.returncode != 0
    cli.skopeo("login", *tls, "--authfile", auth, "-u", "alice", "-p", PW["alice"], host)
    dest = "docker://%s/alice/lib:v1" % host
    cli.skopeo("copy", "--preserve-digests", "--dest-cert-dir", tlsRegistry.certDir, "--dest-authfile", auth,
               "oci:%s:v1" % built.layout, dest)
    out = str(tmp_path / "out")
    cli.skopeo("copy", "--src-cert-dir", tlsRegistry.certDir, "--src-authfile", auth, dest, "oci:%s:v1" % out)
    from tests.e2e import oci

    assert oci.resolve(out, "v1")["digest"] == built.manifestDigest
    tags = cli.skopeo("list-tags", *tls, "--authfile", auth, "docker://%s/alice/lib" % host).stdout
    assert '"v1"' in tags
    # without the login: refused
    r = cli.skopeo("inspect", *tls, "--authfile", noLogin(tmp_path), dest, check=False)
    assert refused(r), failure(r)


def test_podman_search_with_nothing_public(cli, tmp_path):
    """With no anonymous rules, /v1/search without a login is a 401; podman
    (which sends no login there) then lists the catalog with its login."""
    config = secure.CONFIG.replace('                - {repository: "public/*", actions: [pull]}\n', "")
    config = config.replace("            anonymous:\n", "")
    daemon = secure.startSecure(tmp_path, config=config)
    trusted = os.path.join(SYSTEM_CERTS, daemon.host)
    os.makedirs(trusted, exist_ok=True)
    shutil.copy(daemon.pki["ca"], os.path.join(trusted, "ca.crt"))
    try:
        host = daemon.host
        auth = str(tmp_path / "auth.json")
        cli.podman("login", "--authfile", auth, "-u", "alice", "-p", PW["alice"], host)
        localImage(cli, tmp_path, "localhost/txr-psearch:1")
        for name in ("alice/tool", "alice/other", "public/tool"):
            cli.podman("push", "--authfile", auth, "localhost/txr-psearch:1", "%s/%s:1" % (host, name))
        out = cli.podman("search", "--authfile", auth, "--format", "{{.Name}}", "%s/tool" % host).stdout.split()
        assert sorted(out) == ["%s/alice/tool" % host, "%s/public/tool" % host], out
        # without a login nothing is found (podman reports the 401s as no results)
        r = cli.podman("search", "--authfile", noLogin(tmp_path), "--format", "{{.Name}}", "%s/tool" % host,
                       check=False)
        assert r.stdout.split() == [], r.stdout
        log = daemon.syncLog()
        assert '"GET /v1/search?n=25&q=tool HTTP/1.1" 401' in log and '"GET /v2/_catalog' in log
    finally:
        shutil.rmtree(trusted, ignore_errors=True)
        daemon.stop()
