"""Key sets for JWT signatures (https://www.rfc-editor.org/rfc/rfc7517).

The service signs its access tokens with one private key (RS256 RSA or ES384 P-384
JWK, kept in a file that ``fhir-service auth generate-key`` writes) and trusts the
public keys of a local key set file, of a JWKS URL (an external authorization server)
and of its own signing key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from joserfc.jwk import ECKey, KeySet, RSAKey

ALGORITHMS = ["RS256", "RS384", "ES256", "ES384"]
"""Signature algorithms accepted anywhere; never ``none`` nor any HMAC (HS*) algorithm."""

SigningAlgorithm = Literal["RS256", "ES384"]


class KeyFileError(ValueError):
    """A key file is missing or does not hold a usable key."""


def generate_signing_key(path: Path, algorithm: SigningAlgorithm = "ES384") -> dict[str, Any]:
    """Write a new private signing JWK to ``path`` (mode 0600); return its public half."""
    key: RSAKey | ECKey
    if algorithm == "RS256":
        key = RSAKey.generate_key(2048, parameters={"alg": "RS256", "use": "sig"})
    else:
        key = ECKey.generate_key("P-384", parameters={"alg": "ES384", "use": "sig"})
    key.ensure_kid()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(key.as_dict(private=True), handle)
    return dict(key.as_dict(private=False))


def load_signing_key(path: Path) -> RSAKey | ECKey:
    """The private signing key in ``path`` (a JWK with ``alg`` RS256 or ES384)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot read the signing key {path}: {type(exc).__name__}") from None
    if data.get("alg") not in ("RS256", "ES384"):
        raise KeyFileError(f"the signing key {path} must have alg RS256 or ES384")
    key: RSAKey | ECKey = (
        RSAKey.import_key(data) if data.get("kty") == "RSA" else ECKey.import_key(data)
    )
    if not key.is_private:
        raise KeyFileError(f"the signing key {path} holds no private key")
    key.ensure_kid()
    return key


def public_jwks(keys: list[RSAKey | ECKey]) -> dict[str, Any]:
    """A JWKS document of the public halves of ``keys``."""
    return {"keys": [dict(key.as_dict(private=False)) for key in keys]}


def key_set(document: Any) -> KeySet:
    """A KeySet of the public asymmetric keys of a JWKS document (oct keys are dropped)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise KeyFileError("a JWKS must be a JSON object with a 'keys' array")
    usable = [
        {k: v for k, v in item.items() if k != "d"}
        for item in document["keys"]
        if isinstance(item, dict) and item.get("kty") in ("RSA", "EC")
    ]
    try:
        keys = KeySet.import_key_set({"keys": usable})
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"the JWKS holds an unusable key: {type(exc).__name__}") from None
    for key in keys:
        key.ensure_kid()
    return keys


def read_key_set(path: Path) -> KeySet:
    """The key set stored in the JWKS file ``path``."""
    try:
        return key_set(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        if isinstance(exc, KeyFileError):
            raise
        raise KeyFileError(f"cannot read the key set {path}: {type(exc).__name__}") from None
