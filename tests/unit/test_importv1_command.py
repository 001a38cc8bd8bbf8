"""import-v1's command: its options, the classic settings of the source
(an env file), the classic search database, progress and summary."""

import io
import sqlite3

import pytest
from twisted.python import usage

from tests.support.v1store import classicSearchDatabase
from txregistry.importv1 import command
from txregistry.importv1.importer import Layer, Report
from txregistry.importv1.source import SearchDatabaseError, readDescriptions


def options(*argv):
    o = command.ImportV1Options()
    o.parseOptions(list(argv))
    return o


def test_sourceIsADirectoryOrAnEnvFile():
    assert options("/tmp/registry")["source"] == "/tmp/registry"
    assert options("--source-env", "x.env")["source"] is None
    with pytest.raises(usage.UsageError, match="options before it"):
        options("/tmp/registry", "--dry-run")
    for argv in ((), ("--source-env", "x.env", "/tmp/registry")):
        with pytest.raises(usage.UsageError):
            options(*argv)


def test_envFile(tmp_path):
    path = tmp_path / "classic.env"
    path.write_text("# the classic registry\n\nexport SETTINGS_FLAVOR=s3\nAWS_BUCKET='acme'\n"
                    'STORAGE_PATH="/registry"\nAWS_KEY=AK\nAWS_SECRET=se=cret\nAWS_ENDPOINT=http://127.0.0.1:9000\n'
                    "SQLALCHEMY_INDEX_DATABASE=sqlite:////tmp/docker-registry.db\n")
    settings, url = command.sourceSettings(options("--source-env", str(path)))
    assert (settings.s3.bucket, settings.s3.rootDirectory, settings.s3.endpoint) == ("acme", "/registry",
                                                                                     "http://127.0.0.1:9000")
    assert (settings.s3.accessKey, settings.s3.secretKey) == ("AK", "se=cret")
    assert url == "sqlite:////tmp/docker-registry.db"
    # the option wins over the file's database
    _, url = command.sourceSettings(options("--source-env", str(path), "--v1-search-db", "sqlite:///other.db"))
    assert url == "sqlite:///other.db"


def test_envFileWithTheClassicConfigFile(tmp_path):
    config = tmp_path / "config.yml"
    config.write_text("common: &common\n  sqlalchemy_index_database: sqlite:////srv/index.db\n"
                      "prod:\n  <<: *common\n  storage: local\n  storage_path: /srv/registry\n")
    path = tmp_path / "classic.env"
    path.write_text("DOCKER_REGISTRY_CONFIG=%s\nSETTINGS_FLAVOR=prod\n" % (config,))
    settings, url = command.sourceSettings(options("--source-env", str(path)))
    assert (settings.s3, settings.storagePath, url) == (None, "/srv/registry", "sqlite:////srv/index.db")


def test_badEnvFileIsOneLine(tmp_path):
    path = tmp_path / "classic.env"
    path.write_text("SETTINGS_FLAVOR=s3\nnot a setting\n")
    with pytest.raises(SystemExit) as e:
        command.sourceSettings(options("--source-env", str(path)))
    assert str(e.value) == "txregistry import-v1: --source-env: %s:2: not KEY=VALUE" % (path,)
    path.write_text("SETTINGS_FLAVOR=s3\n")  # no bucket
    with pytest.raises(SystemExit) as e:
        command.sourceSettings(options("--source-env", str(path)))
    assert "AWS_BUCKET" in str(e.value) and "\n" not in str(e.value)


def test_classicSearchDatabase(tmp_path):
    url = classicSearchDatabase(tmp_path / "old.db", {"library/app": "The app", "team/x": "", "team/y": "Y"})
    assert readDescriptions(url) == {"library/app": "The app", "team/y": "Y"}


def test_notAClassicSearchDatabase(tmp_path):
    with pytest.raises(SearchDatabaseError, match="no such database file"):
        readDescriptions("sqlite:///%s/missing.db" % (tmp_path,))
    assert not (tmp_path / "missing.db").exists()
    conn = sqlite3.connect(str(tmp_path / "other.db"))
    conn.execute("CREATE TABLE things (a)")
    conn.close()
    with pytest.raises(SearchDatabaseError, match="no repository table"):
        readDescriptions("sqlite:///%s/other.db" % (tmp_path,))


def test_plainProgress():
    out = io.StringIO()
    p = command.PlainProgress(out)
    p.planned(2)
    p.tagStarted(0, "library/app:latest")
    size = 100 * 1024 * 1024
    p.layerStarted("abc", size)
    for done in range(0, size + 1, 1024 * 1024):
        p.layerProgress("abc", done, size)
    p.layerDone("abc", Layer("sha256:" + "1" * 64, 5, "sha256:" + "2" * 64, True, size), False)
    p.skipped("team/x:1", "image y: no layer")
    lines = out.getvalue().splitlines()
    assert lines[:3] == ["2 tag(s) to import", "[1/2] library/app:latest", "  layer abc: 100.0 MiB"]
    tenths = [line for line in lines if "%" in line]
    assert [line.split()[2] for line in tenths] == ["%d%%" % (10 * i,) for i in range(1, 10)]
    assert lines[-2] == "  layer abc -> sha256:%s (5 bytes)" % ("1" * 64,)
    assert lines[-1] == "skipped team/x:1: image y: no layer"
    quiet = io.StringIO()
    p = command.PlainProgress(quiet, quiet=True)
    p.planned(2)
    p.skipped("team/x:1", "why")
    assert quiet.getvalue() == "skipped team/x:1: why\n"


def test_terminalProgressRewritesOneLine():
    out = io.StringIO()
    p = command.TerminalProgress(out)
    p.planned(1)
    p.tagStarted(0, "team/app:1")
    p.layerStarted("abcdef0123456789", 10)
    p.skipped("team/x:1", "why")
    p.finish()
    text = out.getvalue()
    assert "\r\x1b[K[1/1] team/app:1: layer abcdef012345 0/10 bytes" in text
    assert "\r\x1b[Kskipped team/x:1: why\n" in text
    assert text.endswith("\r\x1b[K")


def test_summary():
    r = Report(imported=["app:1"], unchanged=["app:2"], skipped=[("team/x:1", "why")], stored=2,
               storedBytes=3 * 1024 * 1024, reused=1, repositories={"app"})
    assert command.summary(r, False).splitlines() == [
        "1 tag(s) imported, 1 already up to date (1 repositories); 2 layer blob(s) stored (3.0 MiB), "
        "1 already imported; 1 skipped",
        "  skipped team/x:1: why",
    ]
    assert command.summary(Report(planned=["a:1"]), True) == "dry run: 1 tag(s) would be imported, 0 up to date, 0 skipped"
