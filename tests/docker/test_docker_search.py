"""``docker search`` (and ``podman search``) against txregistry's V1
search endpoint, through the real CLIs: ranking, descriptions, ``--limit``,
what the CLI prints, and the catalog fallback when search is off."""

import json
import urllib.parse
import urllib.request

from tests.docker import images

LONG = "Team web frontend, with a description long enough that docker search truncates it"

# Pushed in this order (oldest first): repository, annotation, label.
SEEDED = (
    ("web", "Exact match for web", None),
    ("cobweb", "Spider things", None),
    ("team/web", None, LONG),  # pushed by docker push: the label is the description
    ("tools/httpd", "A small Web server for static files", None),
    ("webserver", None, "Prefix match, from the config label"),
    ("other/web", None, None),
    ("unrelated/db", "A database", None),
)

# What q=web must answer: exact name, name prefix, path component (the
# newer push first), substring, description.
RANKED = (
    ("web", "Exact match for web"),
    ("webserver", "Prefix match, from the config label"),
    ("other/web", ""),
    ("team/web", LONG),
    ("cobweb", "Spider things"),
    ("tools/httpd", "A small Web server for static files"),
)


def searchAPI(registry, term, n=100):
    query = urllib.parse.urlencode({"q": term, "n": n})
    with urllib.request.urlopen("%s/v1/search?%s" % (registry.url, query), timeout=10) as response:
        return json.loads(response.read())


def seed(cli, registry, tmp_path, entries=SEEDED, term="web", expected=len(RANKED)):
    """Push C{entries}: with skopeo (the OCI manifest keeps its annotation),
    except C{team/web}, which goes through C{docker tag} + C{docker push}
    (podman writes a Docker manifest: only the config label survives).
    Then the index answers C{term} with C{expected} results at once."""
    for i, (name, annotation, label) in enumerate(entries):
        built = images.buildImage(tmp_path / ("seed-%d" % i), tag="src", layers=1, layerSize=2048,
                                  annotation=annotation, label=label)
        if name == "team/web":
            cli.loadLayout(built.layout, "src", "localhost/seed-team-web:1")
            cli.docker("tag", "localhost/seed-team-web:1", "%s/%s:1" % (registry.host, name))
            cli.docker("push", "%s/%s:1" % (registry.host, name))
        else:
            cli.skopeo("copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false",
                       "oci:%s:src" % (built.layout,), "docker://%s/%s:1" % (registry.host, name))
    if expected is None:
        return
    # The index is current once the manifest PUT has been answered.
    answer = searchAPI(registry, term)
    assert answer["num_results"] == expected, answer


def searchRows(cli, *args):
    fmt = "{{.Name}}\t{{.Description}}\t{{.StarCount}}"
    out = cli.docker("search", "--no-trunc", "--format", fmt, *args).stdout
    return [tuple(line.split("\t")) for line in out.splitlines() if line.strip()]


def searches(registry, since=0):
    return [(urllib.parse.urlsplit(path).path, urllib.parse.parse_qs(urllib.parse.urlsplit(path).query), status)
            for method, path, status in registry.access.requests(since)
            if method == "GET" and (path.startswith("/v1/") or path.startswith("/v2/_catalog"))]


def test_searchRankedWithDescriptions(cli, registry, tmp_path):
    seed(cli, registry, tmp_path)
    mark = registry.access.mark()

    rows = searchRows(cli, "%s/web" % (registry.host,))
    assert rows == [("%s/%s" % (registry.host, name), description, "0") for name, description in RANKED]
    # docker search goes to the V1 endpoint once, and needs no catalog.
    assert searches(registry, mark) == [("/v1/search", {"q": ["web"], "n": ["25"]}, 200)]

    # The term is matched case-insensitively, names and descriptions.
    assert searchRows(cli, "%s/WEB" % (registry.host,)) == rows
    assert [r[0] for r in searchRows(cli, "%s/STATIC" % (registry.host,))] == ["%s/tools/httpd" % (registry.host,)]

    # An unqualified term searches the registries.conf's
    # unqualified-search-registries: the test registry.
    assert searchRows(cli, "web") == rows

    # The JSON the CLI renders carries the same.
    out = cli.docker("search", "--no-trunc", "--format", "{{json .}}", "%s/webserver" % (registry.host,)).stdout
    found = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert [(f["Name"], f["Description"]) for f in found] == [
        ("%s/webserver" % (registry.host,), "Prefix match, from the config label")]


def test_searchTableAndLimit(cli, registry, tmp_path):
    seed(cli, registry, tmp_path)
    host = registry.host

    lines = cli.docker("search", "%s/web" % (host,)).stdout.splitlines()
    header = lines[0].split()
    assert header[:4] == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"], lines[0]
    names = [line.split()[0] for line in lines[1:]]
    assert names == ["%s/%s" % (host, name) for name, _ in RANKED]
    byName = dict(zip(names, lines[1:]))
    assert "Exact match for web" in byName["%s/web" % (host,)]
    # A long description is cut short in the table, whole with --no-trunc.
    team = byName["%s/team/web" % (host,)]
    assert LONG[:40] in team and LONG not in team
    assert "…" in team or "..." in team
    noTrunc = cli.docker("search", "--no-trunc", "%s/web" % (host,)).stdout
    assert LONG in noTrunc

    # --limit is sent as n= and the registry answers that many, best first.
    mark = registry.access.mark()
    rows = searchRows(cli, "--limit", "2", "%s/web" % (host,))
    assert [r[0] for r in rows] == ["%s/web" % (host,), "%s/webserver" % (host,)]
    assert searches(registry, mark) == [("/v1/search", {"q": ["web"], "n": ["2"]}, 200)]

    # No match: the registry answers an empty list.  A Docker engine prints
    # the header alone; podman's Docker API (4.3) answers "image not known"
    # instead, which the CLI prints as an error.
    mark = registry.access.mark()
    proc = cli.docker("search", "%s/nothing-like-it" % (host,), check=False)
    if proc.returncode == 0:
        assert [line for line in proc.stdout.splitlines() if line.strip()] == [lines[0].rstrip()]
    else:
        assert "not known" in proc.stderr, proc.stderr
    assert searches(registry, mark) == [("/v1/search", {"q": ["nothing-like-it"], "n": ["25"]}, 200)]
    assert searchAPI(registry, "nothing-like-it")["results"] == []


def test_podmanSearch(cli, registry, tmp_path):
    seed(cli, registry, tmp_path)
    host = registry.host
    mark = registry.access.mark()

    out = cli.podman("search", "--no-trunc", "--format", "json", "%s/web" % (host,)).stdout
    found = json.loads(out)
    assert [(f["Name"], f["Description"]) for f in found] == [("%s/%s" % (host, n), d) for n, d in RANKED]
    assert {f["Index"] for f in found} == {host}
    assert searches(registry, mark) == [("/v1/search", {"q": ["web"], "n": ["25"]}, 200)]

    out = cli.podman("search", "--limit", "3", "--format", "{{.Name}}", "%s/web" % (host,)).stdout
    assert out.split() == ["%s/%s" % (host, n) for n, _ in RANKED[:3]]

    out = cli.podman("search", "--no-trunc", "%s/web" % (host,)).stdout.splitlines()
    assert out[0].split()[:2] == ["NAME", "DESCRIPTION"]
    assert [line.split()[0] for line in out[1:]] == ["%s/%s" % (host, n) for n, _ in RANKED]
    assert any(LONG in line for line in out)


def test_searchOffFallsBackToCatalog(cli, registries, tmp_path):
    """With search turned off, /v1/search answers an error and the client
    falls back to /v2/_catalog: docker search still lists the names."""
    registry = registries.start("storage-search-off", env={"SEARCH_BACKEND": "none"})
    seed(cli, registry, tmp_path, SEEDED[:3], expected=None)
    mark = registry.access.mark()

    rows = searchRows(cli, "%s/web" % (registry.host,))
    assert sorted(r[0] for r in rows) == sorted("%s/%s" % (registry.host, n) for n, _, _ in SEEDED[:3])
    got = searches(registry, mark)
    assert [(path, status) for path, _, status in got] == [("/v1/search", 404), ("/v2/_catalog", 200)]
