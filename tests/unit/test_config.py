import json
import os

import pytest

from txregistry import config

SAMPLE = """
common: &common
    loglevel: _env:LOGLEVEL:info
    storage_path: _env:STORAGE_PATH:/srv/registry
    search_backend: _env:SEARCH_BACKEND
    secret: _env:SECRET:a:b:c
local: &local
    <<: *common
    storage: local
dev:
    <<: *local
    loglevel: debug
mine:
    <<: *local
    storage_path: /data/mine
    number: _env:NUMBER:42
"""


@pytest.fixture
def sample(tmp_path):
    p = tmp_path / "config.yml"
    p.write_text(SAMPLE)
    return str(p)


def test_builtinDefaults():
    s = config.load(environ={})
    assert (s.flavor, s.storage, s.storagePath, s.loglevel) == ("dev", "local", "/tmp/registry", "debug")


def test_flavorFromFileWithAnchors(sample):
    s = config.load(configFile=sample, flavor="mine", environ={})
    assert s.storagePath == "/data/mine"
    assert s.loglevel == "info"
    assert "number" in s.ignoredKeys


def test_envInterpolation():
    env = {"NUMBER": "7", "SECRET": "x"}
    values = config.loadFlavor(SAMPLE, "mine", "t", env)
    assert values["number"] == 7  # parsed as YAML
    values = config.loadFlavor(SAMPLE, "mine", "t", {})
    assert values["number"] == 42
    assert values["secret"] == "a:b:c"  # default keeps its colons
    assert values["search_backend"] is None


def test_precedence(sample):
    env = {"DOCKER_REGISTRY_CONFIG": sample, "SETTINGS_FLAVOR": "mine", "STORAGE_PATH": "/from/env"}
    s = config.load(environ=env)
    assert (s.flavor, s.storagePath) == ("mine", "/from/env")
    s = config.load(storagePath="/from/cli", environ=env)
    assert s.storagePath == "/from/cli"
    s = config.load(flavor="dev", environ=env)
    assert s.flavor == "dev" and s.storagePath == "/from/env"


def test_storagePathMadeAbsolute(sample):
    s = config.load(storagePath="rel/dir", environ={})
    assert s.storagePath == os.path.abspath("rel/dir")


@pytest.mark.parametrize(
    "kwargs,env,fragment",
    [
        ({"flavor": "nope"}, {}, "unknown flavor 'nope'"),
        ({"configFile": "/no/such/file.yml"}, {}, "cannot read config file /no/such/file.yml"),
        ({}, {"LOGLEVEL": "loud"}, "loglevel must be one of"),
    ],
)
def test_errorsAreOneLine(kwargs, env, fragment):
    with pytest.raises(config.ConfigError) as e:
        config.load(environ=env, **kwargs)
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_badYaml(tmp_path):
    p = tmp_path / "bad.yml"
    p.write_text("dev: [unclosed\n")
    with pytest.raises(config.ConfigError) as e:
        config.load(configFile=str(p), environ={})
    assert "invalid YAML" in str(e.value)


def test_badStorage(tmp_path):
    p = tmp_path / "c.yml"
    p.write_text("dev:\n  storage: floppy\n")
    with pytest.raises(config.ConfigError) as e:
        config.load(configFile=str(p), environ={})
    assert "storage must be one of" in str(e.value)


def test_sampleShipped():
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sample = os.path.join(here, "config", "config_sample.yml")
    for flavor in ("dev", "local", "test", "prod"):
        s = config.load(configFile=sample, flavor=flavor, environ={})
        assert s.storage == "local"


def test_devFlavorAgreesEverywhere(tmp_path):
    # The README's example, the shipped sample and the built-in dev flavor
    # (the default one) say the same about logging.
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(here, "README.md")) as f:
        readme = f.read()
    example = readme.split("```yaml\ncommon: &common\n", 1)[1].split("```", 1)[0]
    (tmp_path / "readme.yml").write_text("common: &common\n" + example)
    files = [None, str(tmp_path / "readme.yml"), os.path.join(here, "config", "config_sample.yml")]
    loaded = [config.load(configFile=f, flavor="dev", storagePath=str(tmp_path), environ={}) for f in files]
    assert {(s.loglevel, s.logFormat) for s in loaded} == {("debug", "text")}


@pytest.mark.parametrize("text,expected", [("", "txregistry"), ("server_header: true", "txregistry"),
                                           ("server_header: false", ""), ("server_header: acme", "acme")])
def test_serverHeader(tmp_path, text, expected):
    p = tmp_path / "c.yml"
    p.write_text("dev:\n  storage: local\n  %s\n" % (text,))
    assert config.load(configFile=str(p), environ={}).serverHeader == expected


def test_badServerHeader(tmp_path):
    p = tmp_path / "c.yml"
    p.write_text('dev:\n  server_header: "a\\r\\nX-Evil: 1"\n')
    with pytest.raises(config.ConfigError) as e:
        config.load(configFile=str(p), environ={})
    assert "server_header must be" in str(e.value)


def test_limitsAndReadonly(tmp_path):
    p = tmp_path / "c.yml"
    p.write_text("dev:\n  readonly: true\n  limits:\n    max_blob_size: 1000000\n    idle_timeout: 30\n")
    s = config.load(configFile=str(p), environ={})
    assert s.readonly is True
    assert s.limits.registry.maxBlobSize == 1000000 and s.limits.http.idleTimeout == 30
    assert s.limits.registry.maxManifestSize == 4 * 1024 * 1024
    assert config.load(environ={"READONLY": "false"}).readonly is False


def test_slowClientLimits(tmp_path):
    s = config.load(environ={})
    assert (s.limits.http.headerTimeout, s.limits.http.minBodyRate, s.limits.http.bodyRateWindow,
            s.limits.http.sendTimeout) == (30, 1024, 30, 60)
    p = tmp_path / "c.yml"
    p.write_text("dev:\n  limits:\n    header_timeout: 0\n    min_body_rate: 0\n    send_timeout: 5\n")
    s = config.load(configFile=str(p), environ={})
    assert (s.limits.http.headerTimeout, s.limits.http.minBodyRate, s.limits.http.sendTimeout) == (0, 0, 5)


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("dev:\n  limits:\n    max_blob_size: -1\n", "limits.max_blob_size must be an integer"),
        ("dev:\n  limits:\n    idle_timeout: soon\n", "limits.idle_timeout must be an integer"),
        ("dev:\n  limits:\n    max_speed: 3\n", "unknown limits: max_speed"),
        ("dev:\n  limits:\n    header_timeout: -1\n", "limits.header_timeout must be an integer of at least 0"),
        ("dev:\n  limits:\n    min_body_rate: 1.5\n", "limits.min_body_rate must be an integer"),
        ("dev:\n  limits:\n    body_rate_window: 0\n", "limits.body_rate_window must be an integer of at least 1"),
        ("dev:\n  limits:\n    send_timeout: never\n", "limits.send_timeout must be an integer"),
        ("dev:\n  readonly: perhaps\n", "readonly must be true or false"),
    ],
)
def test_badLimits(tmp_path, text, fragment):
    p = tmp_path / "c.yml"
    p.write_text(text)
    with pytest.raises(config.ConfigError) as e:
        config.load(configFile=str(p), environ={})
    assert fragment in str(e.value)


def test_defaultConnectionLimitsReachTheSite(tmp_path):
    # (The default idle timeout, 300 s, is too long to wait for in a test;
    # tests/hostile/test_timeouts runs the same code with short limits.)
    from twisted.internet import reactor

    from txregistry.service import RegistryService

    settings = config.load(storagePath=str(tmp_path / "data"), environ={"SEARCH_BACKEND": "none"})
    site = RegistryService(settings, "tcp:0:interface=127.0.0.1", reactor).site
    assert site.timeOut == 300
    assert (site.headerTimeout, site.minBodyRate, site.bodyRateWindow, site.sendTimeout) == (30, 1024, 30, 60)


def test_publicURL(tmp_path):
    assert config.load(environ={}).publicURL == ""
    p = tmp_path / "c.yml"
    p.write_text("dev:\n  public_url: https://Registry.Example.com:5443/\n")
    assert config.load(configFile=str(p), environ={}).publicURL == "https://registry.example.com:5443"
    s = config.load(configFile=str(p), environ={"REGISTRY_PUBLIC_URL": "http://[::1]:5000"})
    assert s.publicURL == "http://[::1]:5000"
    assert "public_url" not in s.ignoredKeys


@pytest.mark.parametrize("value", [
    "registry.example", "ftp://registry.example", "https://registry.example/v2", "https://u:p@registry.example",
    "https://registry.example?x=1", "https://registry.example#f", "https://", "https://a b", "https://x:0",
    "https://x:70000", "https://x:", "https://a_b", "https://x%41", "5000", 5000,
])
def test_badPublicURL(tmp_path, value):
    p = tmp_path / "c.yml"
    p.write_text("dev:\n  public_url: %s\n" % (json.dumps(value),))
    with pytest.raises(config.ConfigError) as e:
        config.load(configFile=str(p), environ={})
    assert str(e.value).startswith(str(p) + ": public_url must be http://HOST[:PORT]")
    assert "\n" not in str(e.value)
    with pytest.raises(config.ConfigError) as e:
        config.load(environ={"REGISTRY_PUBLIC_URL": value})
    assert str(e.value).startswith("REGISTRY_PUBLIC_URL: public_url must be")


@pytest.mark.parametrize("given,expected", [
    ("5001", "tcp:5001:interface=127.0.0.1"),
    ("localhost:5001", "tcp:5001:interface=localhost"),
    (":5001", "tcp:5001"),
    ("[::1]:5001", "tcp:5001:interface=\\:\\:1"),
    ("tcp:5001:interface=0.0.0.0", "tcp:5001:interface=0.0.0.0"),
    ("five", None),
    ("host:", None),
])
def test_debug_addr_forms(given, expected):
    assert config.debugEndpoint(given) == expected


def test_debug_addr_sources(tmp_path):
    p = tmp_path / "c.yml"
    p.write_text("dev:\n    debug_addr: 127.0.0.1:6001\n    metrics_main_port: true\n    health_timeout: 0.5\n")
    s = config.load(configFile=str(p), environ={})
    assert s.metrics == config.MetricsSettings("tcp:6001:interface=127.0.0.1", True, 0.5)
    s = config.load(configFile=str(p), environ={"DEBUG_ADDR": "7001"})
    assert s.metrics.debugListen == "tcp:7001:interface=127.0.0.1"
    s = config.load(configFile=str(p), environ={"DEBUG_ADDR": "7001"}, debugPort="8001")
    assert s.metrics.debugListen == "tcp:8001:interface=127.0.0.1"
    assert config.load(environ={}).metrics == config.MetricsSettings()


@pytest.mark.parametrize("line", ["debug_addr: nowhere", "health_timeout: 0", "health_timeout: yes",
                                  "metrics_main_port: maybe"])
def test_bad_metrics_settings_are_one_line(tmp_path, line):
    p = tmp_path / "c.yml"
    p.write_text("dev:\n    %s\n" % (line,))
    with pytest.raises(config.ConfigError) as e:
        config.load(configFile=str(p), environ={})
    assert line.split(":")[0] in str(e.value) and "\n" not in str(e.value)


def test_upload_purging(tmp_path):
    assert config.load(environ={}).uploadPurging == config.UploadPurging(True, 168 * 3600.0, 24 * 3600.0, False)
    p = tmp_path / "c.yml"
    p.write_text("dev:\n    upload_purging: {enabled: true, age: 30m, interval: 1h30m, dryrun: true}\n")
    assert config.load(configFile=str(p), environ={}).uploadPurging == config.UploadPurging(True, 1800.0, 5400.0, True)
    p.write_text("dev:\n    upload_purging: {enabled: false}\n")
    assert config.load(configFile=str(p), environ={}).uploadPurging.enabled is False


@pytest.mark.parametrize("section", ["{age: 168}", "{interval: soon}", "{age: 0s}", "{enabled: maybe}",
                                     "{dryrun: 3}", "{every: 1h}", "24h"])
def test_bad_upload_purging_is_one_line(tmp_path, section):
    p = tmp_path / "c.yml"
    p.write_text("dev:\n    upload_purging: %s\n" % (section,))
    with pytest.raises(config.ConfigError) as e:
        config.load(configFile=str(p), environ={})
    assert "upload_purging" in str(e.value) and "\n" not in str(e.value)
