"""Thin blocking wrappers over the clients the end-to-end tests drive."""

import json
import shutil
import subprocess
import urllib.error
import urllib.request

SKOPEO = shutil.which("skopeo") or "/usr/bin/skopeo"


class ClientError(AssertionError):
    pass


def skopeo(*args, timeout=90, check=True):
    """Run skopeo; returns the completed process.  With C{check}, a
    non-zero exit fails the test with skopeo's stderr."""
    argv = [SKOPEO, "--insecure-policy"] + list(args)
    proc = subprocess.run(argv, capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise ClientError(
            "%s exited %d\nstdout: %s\nstderr: %s"
            % (" ".join(argv), proc.returncode, proc.stdout.decode(errors="replace")[-3000:],
               proc.stderr.decode(errors="replace")[-3000:])
        )
    return proc


def push(source, daemon, ref, *extra):
    """skopeo copy --preserve-digests from C{source} (a transport:ref) to
    C{daemon}'s C{ref} (repo:tag or repo@digest)."""
    return skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", *extra, source,
                  "docker://%s/%s" % (daemon.host, ref))


def pull(daemon, ref, dest, *extra):
    return skopeo("copy", "--preserve-digests", "--src-tls-verify=false", *extra,
                  "docker://%s/%s" % (daemon.host, ref), dest)


def inspect(daemon, ref, *extra):
    """skopeo inspect output: bytes with --raw, else parsed JSON."""
    out = skopeo("inspect", "--tls-verify=false", *extra, "docker://%s/%s" % (daemon.host, ref)).stdout
    return out if "--raw" in extra else json.loads(out)


def listTags(daemon, repo):
    out = skopeo("list-tags", "--tls-verify=false", "docker://%s/%s" % (daemon.host, repo)).stdout
    return json.loads(out)


def delete(daemon, ref, check=True):
    return skopeo("delete", "--tls-verify=false", "docker://%s/%s" % (daemon.host, ref), check=check)


def request(daemon, path, method="GET", headers=None, data=None):
    """A plain HTTP request to C{daemon}; returns C{(status, headers, body)}
    whatever the status."""
    req = urllib.request.Request(daemon.url + path, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def getJSON(daemon, path):
    status, headers, body = request(daemon, path)
    assert status == 200, "GET %s: %s %r" % (path, status, body[:2000])
    return json.loads(body)


def assertTags(daemon, repo, expected):
    """GET /v2/<repo>/tags/list names exactly C{expected}.  The OCI
    Distribution Spec 1.1 wants the tags in lexical order; Distribution 2.8
    (the reference) lists them in directory order, so order is only
    checked for txregistry."""
    listed = getJSON(daemon, "/v2/%s/tags/list" % (repo,))
    assert listed["name"] == repo
    if getattr(daemon, "kind", None) == "txregistry":
        assert listed["tags"] == sorted(expected)
    else:
        assert sorted(listed["tags"]) == sorted(expected)
