"""The container image's HEALTHCHECK: exit 0 if the registry's liveness
endpoint (/health, no login needed) answers 200, else 1.  The port is
$REGISTRY_PORT's (a number or a strports description: tcp:5000,
ssl:5443:..., checked over https without verifying the certificate)."""

import os
import re
import ssl
import sys
import urllib.request

port = os.environ.get("REGISTRY_PORT") or "5000"
number = re.search(r"(?:^|:)(\d+)(?::|$)", port)
scheme = "https" if port.startswith("ssl:") else "http"
context = ssl._create_unverified_context() if scheme == "https" else None
url = "%s://127.0.0.1:%s/health" % (scheme, number.group(1) if number else "5000")
try:
    with urllib.request.urlopen(url, timeout=5, context=context) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as e:
    print("%s: %s" % (url, e), file=sys.stderr)
    sys.exit(1)
