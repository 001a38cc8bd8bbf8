"""How many worker processes: C{--workers N}, C{$WORKERS}, the config
file's C{workers:} (a number or C{auto}), else C{auto}: one per core, at
most L{MAX_AUTO_WORKERS}."""

MAX_AUTO_WORKERS = 8  # beyond that, one reactor each rarely pays for its memory
MAX_WORKERS = 64


class WorkersConfigError(ValueError):
    """A bad C{workers} setting: the message is the one line shown."""


def parseWorkers(value, source):
    """The number of workers asked for (an int of 1 or more), or C{None}
    for C{auto} (or nothing said)."""
    if value is None or value == "" or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    if isinstance(value, bool):
        raise WorkersConfigError("%s: workers must be a number or auto, not %r" % (source, value))
    try:
        number = int(str(value).strip())
    except ValueError:
        raise WorkersConfigError("%s: workers must be a number or auto, not %r" % (source, value))
    if not 1 <= number <= MAX_WORKERS:
        raise WorkersConfigError("%s: workers must be between 1 and %d, not %d" % (source, MAX_WORKERS, number))
    return number


def choose(requested, cores, settings):
    """C{(count, reason)}: how many workers to run for the C{requested}
    number (C{None}: auto) on a machine of C{cores}, with C{settings} (a
    L{txregistry.config.Settings}); L{WorkersConfigError} when what was
    asked cannot work."""
    single = _singleOnly(settings)
    if requested is None:
        if single:
            return 1, "auto: 1, as %s" % (single,)
        count = max(1, min(cores or 1, MAX_AUTO_WORKERS))
        return count, "auto: %d core(s)%s" % (cores or 1, ", capped" if (cores or 1) > count else "")
    if requested > 1 and single:
        raise WorkersConfigError("--workers %d: %s; run one worker" % (requested, single))
    return requested, "asked for"


def _singleOnly(settings):
    """Why only one process can serve these settings, or C{None}."""
    if settings.notifications is not None:
        # Each process would keep a journal of its own in one directory.
        return "notifications keep one durable journal per daemon"
    return None
