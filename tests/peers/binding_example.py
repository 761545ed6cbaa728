"""Reproduces the request-binding example of docs/PROTOCOL.md from its inputs,
with nothing but the standard library: prints htm, htu, query_sha256 and
body_sha256."""
import base64
import hashlib
import json
from urllib.parse import urlsplit

method = "POST"
url = "https://Service-B.internal:443/v1/orders?dry_run=1"
body = b'{"sku":"A-1","qty":2}'

parts = urlsplit(url)
scheme = parts.scheme.lower()
host = parts.hostname.lower()  # urlsplit lower-cases the host too
default_port = {"http": 80, "https": 443}[scheme]
authority = host if parts.port in (None, default_port) else f"{host}:{parts.port}"
htu = f"{scheme}://{authority}{parts.path or '/'}"


def b64_sha256(data):
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


# The query exactly as it appears in the URL: not decoded, not reordered.
query_sha256 = b64_sha256(parts.query.encode())
body_sha256 = b64_sha256(body)
print(json.dumps({"htm": method, "htu": htu, "query_sha256": query_sha256, "body_sha256": body_sha256}))
