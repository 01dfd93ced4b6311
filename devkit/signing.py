"""Sign events the way Canvas does (RS256 compact JWS with a ``kid``), for demos, tests and benchmarks.

Canvas holds the private key in production; this module exists so that the demo, the
benchmarks and the tests can produce real signed deliveries and the JWKS that verifies them,
without any key material checked into the repository. Keys are generated on the fly.
"""
from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from jwt.algorithms import RSAAlgorithm

_HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def b64url(data: bytes) -> bytes:
    """Unpadded base64url, as in a compact JWS."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _padding_for(alg: str) -> tuple[padding.AsymmetricPadding, hashes.HashAlgorithm]:
    family, bits = alg[:2], alg[2:]
    if bits not in _HASHES or family not in ("RS", "PS"):
        raise ValueError(f"DemoSigner signs with its RSA key only (RS256/384/512, PS256/384/512), not {alg!r}")
    digest = _HASHES[bits]()
    if family == "RS":
        return padding.PKCS1v15(), digest
    return padding.PSS(mgf=padding.MGF1(_HASHES[bits]()), salt_length=digest.digest_size), digest


class DemoSigner:
    """An RSA key that signs events like Canvas does (RS256 compact JWS with kid), for demos/tests/benchmarks."""

    def __init__(self, kid: str = "demo-key-1", *, key_size: int = 2048, private_key: rsa.RSAPrivateKey | None = None):
        self.kid = kid
        self.private_key = private_key or rsa.generate_private_key(public_exponent=65537, key_size=key_size)
        self.public_key = self.private_key.public_key()

    def sign(self, claims: dict[str, Any], *, headers: dict[str, Any] | None = None, alg: str = "RS256") -> bytes:
        """A compact JWS of ``claims`` signed with this key.

        The header is ``{"alg", "typ": "JWT", "kid"}`` updated with ``headers``; a header given
        the value None is removed (e.g. ``headers={"kid": None}`` for a token without kid).
        ``alg`` other than RS256 (RS384, PS256...) signs with the same RSA key under that
        algorithm, which a verifier that accepts RS256 only must refuse.
        """
        header: dict[str, Any] = {"alg": alg, "typ": "JWT", "kid": self.kid}
        for name, value in (headers or {}).items():
            if value is None:
                header.pop(name, None)
            else:
                header[name] = value
        pad, digest = _padding_for(alg)
        signing_input = b64url(orjson.dumps(header)) + b"." + b64url(orjson.dumps(claims))
        signature = self.private_key.sign(signing_input, pad, digest)
        return signing_input + b"." + b64url(signature)

    def public_jwk(self) -> dict[str, Any]:
        """The public key as a JWK, the way a Canvas JWKS lists it."""
        jwk = RSAAlgorithm.to_jwk(self.public_key, as_dict=True)
        return {"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256", "n": jwk["n"], "e": jwk["e"]}

    def jwks(self, *others: DemoSigner) -> dict[str, list[dict[str, Any]]]:
        """A JWK Set of this key and ``others``."""
        return {"keys": [signer.public_jwk() for signer in (self, *others)]}

    def write_jwks(self, path: str | os.PathLike[str], *others: DemoSigner) -> None:
        """Write the JWK Set of this key and ``others`` to ``path`` (atomically, so a reader never sees half)."""
        target = Path(path)
        tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
        tmp.write_bytes(orjson.dumps(self.jwks(*others), option=orjson.OPT_INDENT_2))
        os.replace(tmp, target)

    def __repr__(self) -> str:
        return f"DemoSigner(kid={self.kid!r}, key_size={self.private_key.key_size})"
