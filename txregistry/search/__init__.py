"""The SQL index behind ``docker search`` (/v1/search) and /v2/_catalog.

Storage is the source of truth; the index is derived from it, kept current on
every push and delete, and rebuilt from storage when empty."""
