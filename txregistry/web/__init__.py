"""HTTP: the app and its route table (C{app}, C{routes}), the handlers by
concern (C{blobs}, C{manifests}, C{uploads}, C{listing}, C{v1}, C{token}),
who calls and what they may do (C{access}), errors as answers (C{errors}),
and the streaming plumbing (C{ingest}, C{bodies}, C{bodyrouter},
C{producer})."""
