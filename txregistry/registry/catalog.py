"""Walking the repositories of a storage (Distribution's layout)."""

from txregistry import names
from txregistry.registry import layout
from txregistry.storage import PathNotFound


async def repositoryDirs(driver):
    """C{[(name, {layout.MANIFESTS, layout.LAYERS, layout.UPLOADS, ...})]} for every
    repository directory, in Distribution's layout.  Directories whose name
    could not be part of a repository name (stray files, other tools' data,
    names that are not UTF-8) are passed over."""
    found = []

    async def walk(path, prefix):
        try:
            children = await driver.list(path)
        except PathNotFound:
            return
        marks = set()
        for child in children:
            base = layout.baseName(child)
            if layout.isRepositoryOwn(base):
                marks.add(base)
            elif names.isValidName(base):
                await walk(child, prefix + base + "/")
        if marks and prefix:
            found.append((prefix.rstrip("/"), marks))

    await walk(layout.repositoriesRoot(), "")
    return found


async def catalog(driver):
    """Every repository name (sorted): as Distribution counts them, a
    directory holding ``_layers`` (or ``_manifests``): L{layout.LISTED}."""
    return sorted(name for name, marks in await repositoryDirs(driver) if marks & layout.LISTED)
