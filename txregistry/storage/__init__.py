"""Storage drivers: paths and bytes only (no digests, no repositories)."""

from txregistry.storage.interface import (  # noqa: F401
    ContentTooLarge,
    FileInfo,
    InvalidOffset,
    InvalidPath,
    IStorageDriver,
    PathNotFound,
    StorageError,
    StorageFull,
    StorageUnavailable,
)
