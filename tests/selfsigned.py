"""A throw-away self-signed certificate for 127.0.0.1, for tests of TLS servers on loopback."""

from __future__ import annotations

import subprocess
from pathlib import Path


def self_signed(tmp: Path, name: str = "server") -> tuple[Path, Path]:
    """(certificate, key) in `tmp`: P-256, one day, subjectAltName IP:127.0.0.1."""
    cert, key = tmp / f"{name}.crt", tmp / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key
