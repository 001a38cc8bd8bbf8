"""Configuration in the classic docker-registry format.

A YAML file of flavors (``common``, ``local``, ``dev``, ``test``, ``prod``,
or your own), YAML anchors for inheritance, string values ``_env:VAR`` or
``_env:VAR:default`` (the default may contain colons; the value is parsed as
YAML).  The file is ``--config``, else ``DOCKER_REGISTRY_CONFIG``, else the
built-in one below; the flavor is ``--flavor``, else ``SETTINGS_FLAVOR``,
else ``dev``.  Precedence of a setting: command line, environment, file,
built-in default.
"""

import os
import re
import tempfile
from dataclasses import dataclass, field

import yaml

from txregistry import logs, names
from txregistry.limits import HTTPLimits, Limits, RegistryLimits, fromKeys, keyed  # noqa: F401 (re-exported)

DEFAULT_FLAVOR = "dev"
DEFAULT_STORAGE_PATH = "/tmp/registry"
LOGLEVELS = tuple(logs.LEVELS)
LOG_FORMATS = logs.FORMATS
STORAGES = ("local", "s3")
SEARCH_BACKENDS = ("sqlalchemy", "none")

BUILTIN = """
common: &common
    loglevel: _env:LOGLEVEL:info
    storage_path: _env:STORAGE_PATH:/tmp/registry
    search_backend: _env:SEARCH_BACKEND:sqlalchemy
    sqlalchemy_index_database: _env:SQLALCHEMY_INDEX_DATABASE
    # Error e-mails (as the classic registry's): off unless SMTP_HOST is set.
    email_exceptions:
        smtp_host: _env:SMTP_HOST
        smtp_port: _env:SMTP_PORT:25
        smtp_login: _env:SMTP_LOGIN
        smtp_password: _env:SMTP_PASSWORD
        smtp_secure: _env:SMTP_SECURE:false
        from_addr: _env:SMTP_FROM_ADDR:docker-registry@localdomain.local
        to_addr: _env:SMTP_TO_ADDR

local: &local
    <<: *common
    storage: local

dev: &dev
    <<: *local
    loglevel: _env:LOGLEVEL:debug

test:
    <<: *dev
    storage_path: _env:STORAGE_PATH:./tmp/test

prod:
    <<: *local
    storage_path: _env:STORAGE_PATH:/var/lib/txregistry

s3: &s3
    <<: *common
    storage: s3
    storage_path: _env:STORAGE_PATH:/registry
    storage_redirect: _env:STORAGE_REDIRECT:true
    s3_bucket: _env:AWS_BUCKET
    s3_access_key: _env:AWS_KEY
    s3_secret_key: _env:AWS_SECRET
    s3_region: _env:AWS_REGION
    s3_endpoint: _env:AWS_ENDPOINT
    boto_host: _env:AWS_HOST
    boto_port: _env:AWS_PORT
    s3_secure: _env:AWS_SECURE:true
    s3_encrypt: _env:AWS_ENCRYPT
"""

# Keys of the classic registry that we read now; others are accepted (old
# files carry many) and reported once at start.
KNOWN_KEYS = (
    "loglevel", "log_format", "storage", "storage_path", "search_backend", "sqlalchemy_index_database", "storage_redirect",
    "s3_bucket", "boto_bucket", "s3_access_key", "s3_secret_key", "s3_region", "s3_endpoint", "boto_host",
    "boto_port", "s3_secure", "s3_encrypt", "readonly", "limits", "auth", "server_header", "public_url",
    "debug_addr", "metrics_main_port", "health_timeout", "notifications", "email_exceptions", "smtp_host",
    "smtp_port", "smtp_login", "smtp_password", "smtp_secure", "from_addr", "to_addr", "email_interval",
    "upload_purging", "mirroring", "mirrors", "ui", "gc", "retention", "workers",
)
UPLOAD_PURGING_KEYS = ("enabled", "age", "interval", "dryrun")

# The limits: section's keys, defaults and minimums (txregistry.limits).
LIMIT_KEYS = tuple(key for key, _, _ in keyed())


class ConfigError(Exception):
    """Bad configuration: the message is the one line shown at start."""


@dataclass(frozen=True)
class Settings:
    flavor: str
    configFile: str
    loglevel: str
    storage: str
    storagePath: str
    logFormat: str = "text"
    searchBackend: str = "sqlalchemy"
    searchDatabase: str = ""
    s3: object = None  # S3Settings when storage is s3
    readonly: bool = False
    limits: Limits = field(default_factory=Limits)
    auth: object = None  # AuthSettings, or None: no authentication
    publicURL: str = ""  # "scheme://host[:port]" clients reach the registry at; "": each request's Host
    ignoredKeys: tuple = ()
    serverHeader: str = "txregistry"  # the Server response header; "": none
    metrics: object = None  # MetricsSettings
    notifications: object = None  # txregistry.notify.settings.NotifySettings, or None: no endpoint
    mail: object = None  # txregistry.mail.MailSettings, or None: no error mails
    uploadPurging: object = None  # UploadPurging
    mirror: object = None  # txregistry.mirror.settings.MirrorSettings, or None: no upstream
    ui: object = None  # txregistry.ui.UISettings (None: the defaults, pages on at /)
    gc: object = None  # txregistry.maintenance.settings.GCSettings
    workers: int = None  # worker processes asked for; None: auto (txregistry.workers)


@dataclass(frozen=True)
class UploadPurging:
    """Distribution's storage.maintenance.uploadpurging: uploads started
    more than C{age} seconds ago are removed every C{interval} seconds."""

    enabled: bool = True
    age: float = 168 * 3600.0
    interval: float = 24 * 3600.0
    dryrun: bool = False  # only log what would be removed


@dataclass(frozen=True)
class MetricsSettings:
    debugListen: str = ""  # strports description of the debug listener; "": none
    mainPort: bool = False  # /metrics on the main port too
    healthTimeout: float = 2.0  # seconds a health check may take


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    region: str
    endpoint: str  # "" for AWS itself
    accessKey: str
    secretKey: str
    rootDirectory: str
    secure: bool
    encrypt: bool
    redirect: bool


def _interpolate(value, environ):
    if isinstance(value, str) and value.startswith("_env:"):
        parts = value.split(":", 2)
        var = parts[1]
        if var in environ:
            raw = environ[var]
        elif len(parts) == 3:
            raw = parts[2]
        else:
            return None
        try:
            return yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            return raw
    if isinstance(value, dict):
        return {k: _interpolate(v, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, environ) for v in value]
    return value


def loadFlavor(text, flavor, source, environ):
    """The settings dict of C{flavor} in YAML C{text}, interpolated."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = " (line %d)" % (mark.line + 1,) if mark is not None else ""
        raise ConfigError("%s: invalid YAML%s: %s" % (source, where, getattr(e, "problem", e)))
    if not isinstance(doc, dict):
        raise ConfigError("%s: expected a mapping of flavors" % (source,))
    if flavor not in doc:
        raise ConfigError(
            "%s: unknown flavor %r (flavors here: %s)"
            % (source, flavor, ", ".join(sorted(str(k) for k in doc)) or "none")
        )
    section = doc[flavor] or {}
    if not isinstance(section, dict):
        raise ConfigError("%s: flavor %r is not a mapping" % (source, flavor))
    return _interpolate(section, environ)


def _flag(values, key, default, source):
    value = values.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.lower() in ("true", "yes", "on", "1")
    raise ConfigError("%s: %s must be true or false, not %r" % (source, key, value))


def debugEndpoint(value):
    """The strports description of C{debug_addr}: a bare port means that
    port on 127.0.0.1, C{HOST:PORT} (as Distribution's http.debug.addr)
    that address, C{:PORT} every interface; a description (C{tcp:...},
    C{ssl:...}, C{unix:...}) as it is.  C{None} if it is none of these."""
    value = str(value).strip()
    if value.isdigit():
        return "tcp:%s:interface=127.0.0.1" % (value,)
    if value.startswith(("tcp:", "tcp6:", "ssl:", "unix:")):
        return value
    host, _, port = value.rpartition(":")
    if port.isdigit() and (not host or host.strip("[]")) and "=" not in host:
        host = host.strip("[]")
        return "tcp:%s" % (port,) + (":interface=%s" % (host.replace(":", "\\:"),) if host else "")
    return None


def _metricsSettings(values, environ, debugPort, source):
    raw = debugPort or environ.get("DEBUG_ADDR") or values.get("debug_addr") or ""
    listen = ""
    if raw not in ("", None, False):
        listen = debugEndpoint(raw)
        if listen is None:
            raise ConfigError(
                "%s: debug_addr must be a port, HOST:PORT or a strports description, not %r" % (source, raw))
    timeout = values.get("health_timeout", 2)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 60:
        raise ConfigError("%s: health_timeout must be a number of seconds from 0 to 60, not %r" % (source, timeout))
    return MetricsSettings(
        debugListen=listen, mainPort=_flag(values, "metrics_main_port", False, source), healthTimeout=float(timeout))


def _uploadPurging(section, source):
    from txregistry.notify.settings import parseDuration

    if section is None:
        return UploadPurging()
    if not isinstance(section, dict):
        raise ConfigError("%s: upload_purging must be a mapping of %s" % (source, ", ".join(UPLOAD_PURGING_KEYS)))
    unknown = sorted(str(k) for k in section if k not in UPLOAD_PURGING_KEYS)
    if unknown:
        raise ConfigError("%s: unknown upload_purging keys: %s (known: %s)"
                          % (source, ", ".join(unknown), ", ".join(UPLOAD_PURGING_KEYS)))
    durations = {}
    for key, default in (("age", UploadPurging.age), ("interval", UploadPurging.interval)):
        value = section.get(key)
        seconds = default if value is None else parseDuration(value)
        if seconds is None or seconds <= 0:
            raise ConfigError("%s: upload_purging.%s must be a duration like 168h, 24h or 30m, not %r"
                              % (source, key, value))
        durations[key] = seconds
    return UploadPurging(enabled=_flag(section, "enabled", True, source + ": upload_purging"),
                         dryrun=_flag(section, "dryrun", False, source + ": upload_purging"), **durations)


def _serverHeader(value, source):
    """server_header: true (the default) says txregistry, without a version;
    false (or empty) sends none; a string sends that."""
    if value is None or value is True:
        return "txregistry"
    if value is False or value == "":
        return ""
    if isinstance(value, str) and value.isascii() and value.isprintable() and len(value) <= 200:
        return value.strip()
    raise ConfigError("%s: server_header must be true, false or a line of ASCII text, not %r" % (source, value))


def _limits(section, source):
    """The L{Limits} of the C{limits:} section."""
    if section is None:
        section = {}
    known = ", ".join(sorted(LIMIT_KEYS))
    if not isinstance(section, dict):
        raise ConfigError("%s: limits must be a mapping of %s" % (source, known))
    out = {}
    for key, default, minimum in keyed():
        value = section.get(key, default)
        if value is None:
            value = default
        if isinstance(value, bool) or not isinstance(value, int) or (value != 0 or minimum > 0) and value < minimum:
            raise ConfigError("%s: limits.%s must be an integer of at least %d, not %r" % (source, key, minimum, value))
        out[key] = value
    unknown = sorted(set(section) - set(LIMIT_KEYS))
    if unknown:
        raise ConfigError("%s: unknown limits: %s (known: %s)" % (source, ", ".join(unknown), known))
    if out["max_body_memory"] < out["max_manifest_size"]:
        raise ConfigError("%s: limits.max_body_memory (%d) must be at least limits.max_manifest_size (%d)" % (
            source, out["max_body_memory"], out["max_manifest_size"]))
    return fromKeys(out)


def _publicURL(value, source):
    """The public URL, normalised (C{scheme://host[:port]}), or "" when not
    set; L{ConfigError} unless it is an http(s) URL of a host alone."""
    if value in (None, ""):
        return ""
    problem = "must be http://HOST[:PORT] or https://HOST[:PORT] (no path, query or user)"
    if not isinstance(value, str):
        raise ConfigError("%s: public_url %s, not %r" % (source, problem, value))
    scheme, sep, rest = value.strip().partition("://")
    host = rest[:-1] if rest.endswith("/") else rest
    port = host.rpartition(":")[2] if not host.endswith("]") and ":" in host else ""
    # (A DNS name or an address: what the token realm may hold.)
    if (scheme.lower() not in ("http", "https") or not sep or not names.isValidHost(host)
            or not re.fullmatch(r"[A-Za-z0-9.\-:\[\]]+", host) or host.endswith(":")
            or (port and not 0 < int(port) < 65536)):
        raise ConfigError("%s: public_url %s, not %r" % (source, problem, value))
    return "%s://%s" % (scheme.lower(), host.lower())


def _s3Settings(values, environ, path, source):
    bucket = environ.get("AWS_BUCKET") or values.get("s3_bucket") or values.get("boto_bucket")
    if not bucket or not isinstance(bucket, str):
        raise ConfigError("%s: storage s3 needs s3_bucket (or AWS_BUCKET)" % (source,))
    secure = _flag(values, "s3_secure", True, source)
    endpoint = environ.get("AWS_ENDPOINT") or values.get("s3_endpoint") or ""
    host = values.get("boto_host")
    if not endpoint and host:
        port = values.get("boto_port")
        endpoint = "%s://%s%s" % ("https" if secure else "http", host, ":%s" % port if port else "")
    if endpoint and (not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://"))):
        raise ConfigError("%s: s3_endpoint must be an http:// or https:// URL, not %r" % (source, endpoint))
    accessKey = environ.get("AWS_KEY") or values.get("s3_access_key") or ""
    secretKey = environ.get("AWS_SECRET") or values.get("s3_secret_key") or ""
    if bool(accessKey) != bool(secretKey):
        raise ConfigError("%s: give both s3_access_key and s3_secret_key (AWS_KEY, AWS_SECRET), or neither" % (source,))
    return S3Settings(
        bucket=bucket,
        region=str(environ.get("AWS_REGION") or values.get("s3_region") or "us-east-1"),
        endpoint=endpoint.rstrip("/"),
        accessKey=str(accessKey),
        secretKey=str(secretKey),
        rootDirectory="/" + str(path).strip("/"),
        secure=secure,
        # Server-side encryption by default on AWS itself; S3-compatible
        # servers often lack it.
        encrypt=_flag(values, "s3_encrypt", not endpoint, source),
        redirect=_flag(values, "storage_redirect", True, source),
    )


def load(configFile=None, flavor=None, storagePath=None, environ=None, logFormat=None, debugPort=None):
    """Build L{Settings} from the command line values given, the
    environment and the file; raise L{ConfigError} with one clear line."""
    environ = os.environ if environ is None else environ
    configFile = configFile or environ.get("DOCKER_REGISTRY_CONFIG") or None
    flavor = flavor or environ.get("SETTINGS_FLAVOR") or DEFAULT_FLAVOR
    if configFile:
        try:
            with open(configFile, "r", encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError("cannot read config file %s: %s" % (configFile, getattr(e, "strerror", None) or e))
        source = configFile
    else:
        text, source = BUILTIN, "built-in configuration"
    values = loadFlavor(text, flavor, source, environ)

    loglevel = values.get("loglevel")
    if "LOGLEVEL" in environ:
        loglevel = environ["LOGLEVEL"]
    loglevel = "info" if loglevel is None else loglevel
    if not isinstance(loglevel, str) or loglevel.lower() not in LOGLEVELS:
        raise ConfigError("%s: loglevel must be one of %s, not %r" % (source, ", ".join(LOGLEVELS), loglevel))

    if logFormat is not None:
        formatSource = "--log-format"
    elif "LOG_FORMAT" in environ:
        logFormat, formatSource = environ["LOG_FORMAT"], "LOG_FORMAT"
    else:
        logFormat, formatSource = values.get("log_format"), source
    logFormat = "text" if logFormat in (None, "") else logFormat
    if not isinstance(logFormat, str) or logFormat.lower() not in LOG_FORMATS:
        raise ConfigError(
            "%s: log_format must be one of %s, not %r" % (formatSource, ", ".join(LOG_FORMATS), logFormat)
        )

    storage = values.get("storage", "local")
    storage = "local" if storage is None else storage
    if storage not in STORAGES:
        raise ConfigError("%s: storage must be one of %s, not %r" % (source, ", ".join(STORAGES), storage))

    path = storagePath or environ.get("STORAGE_PATH") or values.get("storage_path") or DEFAULT_STORAGE_PATH
    if not isinstance(path, str) or "\0" in path:
        raise ConfigError("%s: storage_path must be a directory path, not %r" % (source, path))
    s3 = _s3Settings(values, environ, path, source) if storage == "s3" else None

    backend = environ.get("SEARCH_BACKEND") or values.get("search_backend") or "sqlalchemy"
    if backend in ("", False):
        backend = "none"
    if not isinstance(backend, str) or backend.lower() not in SEARCH_BACKENDS:
        raise ConfigError(
            "%s: search_backend must be one of %s, not %r" % (source, ", ".join(SEARCH_BACKENDS), backend)
        )
    backend = backend.lower()
    database = environ.get("SQLALCHEMY_INDEX_DATABASE") or values.get("sqlalchemy_index_database") or ""
    if not isinstance(database, str):
        raise ConfigError("%s: sqlalchemy_index_database must be a database URL, not %r" % (source, database))
    if backend == "sqlalchemy" and not database:
        if s3 is None:
            database = "sqlite:///" + os.path.join(os.path.abspath(path), "txregistry", "search.db")
        else:
            # Storage is remote: the embedded index is a local cache of it,
            # rebuilt from the bucket when missing.
            database = "sqlite:///" + os.path.join(
                tempfile.gettempdir(), "txregistry-%s-%s" % (s3.bucket, s3.rootDirectory.strip("/").replace("/", "_")),
                "search.db",
            )
    if database:
        try:
            from sqlalchemy.engine import make_url

            make_url(database)
        except Exception as e:
            raise ConfigError("%s: sqlalchemy_index_database %r is not a database URL: %s" % (source, database, e))

    serverHeader = _serverHeader(values.get("server_header"), source)
    readonly = _flag({"readonly": environ.get("READONLY", values.get("readonly"))}, "readonly", False, source)
    limits = _limits(values.get("limits"), source)
    from txregistry.auth import AuthConfigError, parseAuth

    try:
        baseDir = os.path.dirname(os.path.abspath(configFile)) if configFile else os.getcwd()
        auth = parseAuth(values.get("auth"), source, baseDir)
    except AuthConfigError as e:
        raise ConfigError(str(e))

    metrics = _metricsSettings(values, environ, debugPort, source)
    publicSource = "REGISTRY_PUBLIC_URL" if environ.get("REGISTRY_PUBLIC_URL") else source
    publicURL = _publicURL(environ.get("REGISTRY_PUBLIC_URL") or values.get("public_url"), publicSource)

    from txregistry.notify.settings import NotifyConfigError, parseNotifications

    try:
        notifications = parseNotifications(values.get("notifications"), source, os.path.abspath(path), s3 is not None)
    except NotifyConfigError as e:
        raise ConfigError(str(e))
    from txregistry.mail import MailConfigError, parseMailSettings

    try:
        mail = parseMailSettings(values, source, environ)
    except MailConfigError as e:
        raise ConfigError(str(e))

    uploadPurging = _uploadPurging(values.get("upload_purging"), source)
    from txregistry.maintenance.settings import GCConfigError, parseGC
    from txregistry.mirror.settings import MirrorConfigError, parseMirror
    from txregistry.ui.settings import UIConfigError, parseUI

    mirror = _section(parseMirror, MirrorConfigError, values.get("mirrors"), values.get("mirroring"), source, baseDir)
    ui = _section(parseUI, UIConfigError, values.get("ui"), source)
    gc = _section(parseGC, GCConfigError, values.get("gc"), values.get("retention"), source)
    from txregistry.workers.settings import WorkersConfigError, parseWorkers

    workers = _section(parseWorkers, WorkersConfigError, environ.get("WORKERS") or values.get("workers"),
                       "WORKERS" if environ.get("WORKERS") else source)
    ignored = tuple(sorted(str(k) for k in values if k not in KNOWN_KEYS))
    return Settings(
        mirror=mirror,
        ui=ui,
        uploadPurging=uploadPurging,
        gc=gc,
        workers=workers,
        notifications=notifications,
        mail=mail,
        metrics=metrics,
        publicURL=publicURL,
        readonly=readonly,
        limits=limits,
        auth=auth,
        flavor=flavor,
        configFile=configFile or "",
        loglevel=loglevel.lower(),
        logFormat=logFormat.lower(),
        storage=storage,
        storagePath=os.path.abspath(path) if s3 is None else "/" + path.strip("/"),
        s3=s3,
        searchBackend=backend,
        searchDatabase=database,
        ignoredKeys=ignored,
        serverHeader=serverHeader,
    )


def _section(parse, error, *args):
    """C{parse(*args)}, a capability's own section of the configuration;
    its C{error} (one line naming the key) becomes a L{ConfigError}."""
    try:
        return parse(*args)
    except error as e:
        raise ConfigError(str(e))
