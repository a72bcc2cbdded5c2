"""Bearer-token authentication: OIDC JWTs checked against the issuer's JWKS, or a local signing key.

The embedded default keeps an ES256 key in the state dir (0600) and `hdc archive token` mints
development tokens with it. Expiry, not-before, audience and issuer are always checked.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .settings import ArchiveSettings

ALGORITHMS = ["RS256", "ES256"]


class Role(StrEnum):
    ARCHIVIST = "archivist"
    CLINICIAN = "clinician"
    AUDITOR = "auditor"
    ADMINISTRATOR = "administrator"


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[Role]
    facility: str | None

    def has(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))


class AuthError(Exception):
    """Missing, malformed, expired or untrusted token (HTTP 401)."""


def signing_key_path(settings: ArchiveSettings) -> Path:
    return settings.state_dir / "signing-key.pem"


def local_signing_key(settings: ArchiveSettings) -> ec.EllipticCurvePrivateKey:
    """The embedded issuer's key, created (0600) on first use."""
    path = signing_key_path(settings)
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise AuthError(f"{path}: not an EC private key")
        return key
    key = ec.generate_private_key(ec.SECP256R1())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return key


def local_kid(key: ec.EllipticCurvePrivateKey) -> str:
    import hashlib

    pub = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pub).hexdigest()[:16]


def local_jwks(settings: ArchiveSettings) -> dict[str, Any]:
    key = local_signing_key(settings)
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": local_kid(key), "use": "sig", "alg": "ES256"})
    return {"keys": [jwk]}


def mint_token(
    settings: ArchiveSettings,
    subject: str,
    roles: list[str],
    facility: str | None,
    ttl_seconds: int = 3600,
    **extra: Any,
) -> str:
    """A token from the local issuer (development and tests; production tokens come from the IdP)."""
    key = local_signing_key(settings)
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
        "jti": secrets.token_hex(8),
        settings.jwt_roles_claim: roles,
    }
    if facility:
        claims[settings.jwt_facility_claim] = facility
    claims.update(extra)
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": local_kid(key)})


class TokenVerifier:
    """Validates bearer tokens against the configured issuer."""

    def __init__(self, settings: ArchiveSettings) -> None:
        self.settings = settings
        self._jwks_client = (
            jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=300) if settings.jwks_url else None
        )
        self._local = None if settings.jwks_url else local_signing_key(settings).public_key()
        self._cache: dict[str, tuple[Principal, float]] = {}

    def verify(self, token: str) -> Principal:
        """Validate a token; a token already validated is served from a small cache until it expires."""
        hit = self._cache.get(token)
        if hit is not None and hit[1] > time.time():
            return hit[0]
        who, exp = self._verify(token)
        if len(self._cache) >= 4096:
            self._cache.clear()
        self._cache[token] = (who, exp)
        return who

    def _verify(self, token: str) -> tuple[Principal, float]:
        s = self.settings
        try:
            if self._jwks_client is not None:
                key: Any = self._jwks_client.get_signing_key_from_jwt(token).key
            else:
                key = self._local
            claims = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=s.jwt_audience,
                issuer=s.jwt_issuer,
                leeway=s.jwt_leeway_seconds,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("token not yet valid (nbf)") from None
        except jwt.InvalidAudienceError:
            raise AuthError(f"token audience is not {s.jwt_audience}") from None
        except jwt.InvalidIssuerError:
            raise AuthError(f"token issuer is not {s.jwt_issuer}") from None
        except jwt.PyJWKClientError as exc:
            raise AuthError(f"token signing key not found at the issuer: {exc}") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        raw_roles = claims.get(s.jwt_roles_claim, [])
        if isinstance(raw_roles, str):
            raw_roles = raw_roles.split()
        if not isinstance(raw_roles, list):  # an object's keys would grant roles nobody listed
            raise AuthError(f"invalid token: claim '{s.jwt_roles_claim}' must be a list of role names")
        roles = frozenset(Role(r) for r in raw_roles if isinstance(r, str) and r in Role._value2member_map_)
        facility = claims.get(s.jwt_facility_claim)
        return Principal(str(claims["sub"]), roles, str(facility) if facility else None), float(claims["exp"])
