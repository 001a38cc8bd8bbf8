"""HTTP: the Klein app, the error envelope, and the streaming plumbing."""
