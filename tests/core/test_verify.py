"""JWT verification: every attack and every valid case through both paths (fast and PyJWT), which must agree.

Each case is run through JwtVerifier.verify (cryptography + orjson) and verify_with_pyjwt (PyJWT),
and both outcomes must equal the expected one: the same error_type, or the same claims.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.decode import decode_delivery
from pipeline.core.errors import EventError
from pipeline.core.identity import canonical_json
from pipeline.core.jwks import KeyStore
from pipeline.jwks_fetch import load_key_store
from devkit.reference_verify import PyJwtVerifier, verify_with_pyjwt
from pipeline.contract import DEFAULT_ISSUER
from pipeline.core.verify import JwtVerifier
from tests.support.corpus import corpus_payloads
from devkit.signing import DemoSigner, b64url
from devkit.loopback import JwksServer
from tests.support.jwks import ManualClock

NOW = 1_700_000_000
EVENT = {"metadata": {"event_name": "logged_in", "user_id": "1"}, "body": {"redirect_url": None}}
Outcome = tuple[str, Any]  # ("ok", claims) or ("error", error_type)


@pytest.fixture(scope="module")
def store(jwks_file: Path) -> KeyStore:
    # A clock that never moves: unknown kids never refetch in these tests.
    return load_key_store([str(jwks_file)], clock=ManualClock(0.0))


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def run_fast(token: bytes | str, store: KeyStore, **options: Any) -> Outcome:
    try:
        return ("ok", JwtVerifier(store, clock=lambda: NOW, **options).verify(token).claims)
    except EventError as exc:
        return ("error", exc.error_type)


def run_pyjwt(token: bytes | str, store: KeyStore, **options: Any) -> Outcome:
    try:
        return ("ok", verify_with_pyjwt(token, store, now=NOW, **options).claims)
    except EventError as exc:
        return ("error", exc.error_type)


def outcomes(token: bytes | str, store: KeyStore, **options: Any) -> tuple[Outcome, Outcome]:
    return run_fast(token, store, **options), run_pyjwt(token, store, **options)


# --- token forging helpers --------------------------------------------------------------------


def segment(value: Any) -> bytes:
    return b64url(value if isinstance(value, bytes) else orjson.dumps(value))


def forge(header: Any, claims: Any, signature: bytes = b"") -> bytes:
    return segment(header) + b"." + segment(claims) + b"." + b64url(signature)


def hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> bytes:
    signing_input = segment(header) + b"." + segment(claims)
    return signing_input + b"." + b64url(hmac.new(secret, signing_input, hashlib.sha256).digest())


def es256(header: dict[str, Any], claims: dict[str, Any], key: ec.EllipticCurvePrivateKey) -> bytes:
    signing_input = segment(header) + b"." + segment(claims)
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return signing_input + b"." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def replace_segment(token: bytes, index: int, new: bytes) -> bytes:
    parts = token.split(b".")
    parts[index] = new
    return b".".join(parts)


def signature_bytes(token: bytes) -> bytes:
    sig = token.split(b".")[2]
    return base64.urlsafe_b64decode(sig + b"=" * (-len(sig) % 4))


# --- the cases --------------------------------------------------------------------------------


@dataclass
class Ctx:
    signer: DemoSigner
    other: DemoSigner
    attacker: DemoSigner
    ec_key: ec.EllipticCurvePrivateKey


@dataclass
class Case:
    build: Callable[[Ctx], bytes | str]
    expected: str  # an error_type, or "ok"
    options: dict[str, Any] = field(default_factory=dict)


def _claims(**extra: Any) -> dict[str, Any]:
    return {**EVENT, **extra}


def _pem(ctx: Ctx, fmt: serialization.PublicFormat) -> bytes:
    return ctx.signer.public_key.public_bytes(serialization.Encoding.PEM, fmt)


def _signed_payload(payload: bytes) -> Callable[[Any], bytes]:
    """A case building a correctly signed token whose payload segment is exactly ``payload``."""
    return lambda c: _sign_raw(c.signer, segment(H) + b"." + b64url(payload))


H = {"alg": "RS256", "typ": "JWT", "kid": "k1"}

CASES: dict[str, Case] = {
    # valid tokens
    "valid": Case(lambda c: c.signer.sign(_claims()), "ok"),
    "valid_with_registered_claims": Case(
        lambda c: c.signer.sign(_claims(iss=DEFAULT_ISSUER, iat=NOW - 5, nbf=NOW - 5, exp=NOW + 300)), "ok"
    ),
    "valid_str_token": Case(lambda c: c.signer.sign(_claims()).decode(), "ok"),
    "valid_without_typ": Case(lambda c: c.signer.sign(_claims(), headers={"typ": None}), "ok"),
    "valid_aud_is_ignored": Case(lambda c: c.signer.sign(_claims(aud="someone")), "ok"),
    # alg confusion
    "alg_none_no_signature": Case(lambda c: forge({**H, "alg": "none"}, _claims()), "alg_not_allowed"),
    "alg_none_with_signature": Case(
        lambda c: forge({**H, "alg": "none"}, _claims(), signature_bytes(c.signer.sign(_claims()))), "alg_not_allowed"
    ),
    "alg_None_capitalised": Case(lambda c: forge({**H, "alg": "None"}, _claims()), "alg_not_allowed"),
    "alg_missing": Case(lambda c: forge({"kid": "k1"}, _claims(), b"x"), "alg_not_allowed"),
    "alg_not_a_string": Case(lambda c: forge({**H, "alg": ["RS256"]}, _claims(), b"x"), "alg_not_allowed"),
    "hs256_public_pem_spki_as_secret": Case(
        lambda c: hs256({**H, "alg": "HS256"}, _claims(), _pem(c, serialization.PublicFormat.SubjectPublicKeyInfo)),
        "alg_not_allowed",
    ),
    "hs256_public_pem_pkcs1_as_secret": Case(
        lambda c: hs256({**H, "alg": "HS256"}, _claims(), _pem(c, serialization.PublicFormat.PKCS1)), "alg_not_allowed"
    ),
    "hs256_public_jwk_as_secret": Case(
        lambda c: hs256({**H, "alg": "HS256"}, _claims(), orjson.dumps(c.signer.public_jwk())), "alg_not_allowed"
    ),
    "rs384_right_key": Case(lambda c: c.signer.sign(_claims(), alg="RS384"), "alg_not_allowed"),
    "rs512_right_key": Case(lambda c: c.signer.sign(_claims(), alg="RS512"), "alg_not_allowed"),
    "ps256_right_key": Case(lambda c: c.signer.sign(_claims(), alg="PS256"), "alg_not_allowed"),
    "es256": Case(lambda c: es256({**H, "alg": "ES256"}, _claims(), c.ec_key), "alg_not_allowed"),
    # kid
    "missing_kid": Case(lambda c: c.signer.sign(_claims(), headers={"kid": None}), "missing_kid"),
    "empty_kid": Case(lambda c: c.signer.sign(_claims(), headers={"kid": ""}), "missing_kid"),
    "kid_not_a_string": Case(lambda c: c.signer.sign(_claims(), headers={"kid": 1}), "malformed_jwt"),
    "unknown_kid": Case(lambda c: DemoSigner("nobody", private_key=c.signer.private_key).sign(_claims()), "unknown_kid"),
    "kid_of_a_key_in_another_jwks": Case(lambda c: c.other.sign(_claims()), "unknown_kid"),
    "attacker_key_with_our_kid": Case(
        lambda c: DemoSigner("k1", private_key=c.attacker.private_key).sign(_claims()), "bad_signature"
    ),
    # keys offered by the token itself are ignored
    "jwk_header_with_attacker_key": Case(
        lambda c: DemoSigner("k1", private_key=c.attacker.private_key).sign(
            _claims(), headers={"jwk": c.attacker.public_jwk()}
        ),
        "bad_signature",
    ),
    "jwk_header_attacker_kid": Case(
        lambda c: c.attacker.sign(_claims(), headers={"jwk": c.attacker.public_jwk()}), "unknown_kid"
    ),
    "x5c_header_with_our_kid": Case(
        lambda c: DemoSigner("k1", private_key=c.attacker.private_key).sign(
            _claims(), headers={"x5c": [base64.b64encode(b"not really a certificate").decode()]}
        ),
        "bad_signature",
    ),
    "jku_header_attacker_kid": Case(
        lambda c: c.attacker.sign(_claims(), headers={"jku": "http://127.0.0.1:9/attacker.json"}), "unknown_kid"
    ),
    "x5u_header_with_our_kid": Case(
        lambda c: DemoSigner("k1", private_key=c.attacker.private_key).sign(
            _claims(), headers={"x5u": "http://127.0.0.1:9/cert.pem"}
        ),
        "bad_signature",
    ),
    # tampering
    "tampered_payload": Case(
        lambda c: replace_segment(c.signer.sign(_claims()), 1, segment(_claims(admin=True))), "bad_signature"
    ),
    "tampered_header": Case(
        lambda c: replace_segment(c.signer.sign(_claims()), 0, segment({**H, "typ": "JOSE"})), "bad_signature"
    ),
    "truncated_signature": Case(
        lambda c: replace_segment(c.signer.sign(_claims()), 2, b64url(signature_bytes(c.signer.sign(_claims()))[:-1])),
        "bad_signature",
    ),
    "flipped_signature_bit": Case(
        lambda c: replace_segment(
            c.signer.sign(_claims()), 2, b64url(bytes([signature_bytes(c.signer.sign(_claims()))[0] ^ 1]) + signature_bytes(c.signer.sign(_claims()))[1:])
        ),
        "bad_signature",
    ),
    "empty_signature": Case(lambda c: replace_segment(c.signer.sign(_claims()), 2, b""), "bad_signature"),
    "signature_of_other_token": Case(
        lambda c: replace_segment(c.signer.sign(_claims()), 2, c.signer.sign(_claims(x=1)).split(b".")[2]), "bad_signature"
    ),
    # structure
    "empty": Case(lambda c: b"", "malformed_jwt"),
    "one_segment": Case(lambda c: segment(H), "malformed_jwt"),
    "two_segments": Case(lambda c: segment(H) + b"." + segment(_claims()), "malformed_jwt"),
    "four_segments": Case(lambda c: c.signer.sign(_claims()) + b".AAAA", "malformed_jwt"),
    "payload_with_extra_dot_segment": Case(
        lambda c: replace_segment(c.signer.sign(_claims()), 1, segment(_claims()) + b".e30"), "malformed_jwt"
    ),
    "garbage_segments": Case(lambda c: b"!!!.***.???", "malformed_jwt"),
    "junk_in_signature": Case(lambda c: c.signer.sign(_claims())[:-4] + b"!!!!", "malformed_jwt"),
    "padded_segments": Case(lambda c: c.signer.sign(_claims()) + b"==", "malformed_jwt"),
    "standard_base64_alphabet": Case(
        lambda c: c.signer.sign(_claims()).replace(b"-", b"+").replace(b"_", b"/") + b"+/", "malformed_jwt"
    ),
    "whitespace_inside": Case(lambda c: c.signer.sign(_claims()).replace(b".", b". ", 1), "malformed_jwt"),
    "non_ascii_str": Case(lambda c: c.signer.sign(_claims()).decode() + "é", "malformed_jwt"),
    "length_mod_4_is_1": Case(lambda c: segment(H) + b"A." + segment(_claims()) + b".", "malformed_jwt"),
    "non_canonical_base64": Case(
        # 'e30' is b64url('{}'); 'e31' decodes to the same bytes with a non-zero unused bit.
        lambda c: b"e31." + segment(_claims()) + b".", "malformed_jwt"
    ),
    "empty_header_segment": Case(lambda c: b"." + segment(_claims()) + b".AAAA", "malformed_jwt"),
    "empty_payload_segment": Case(lambda c: segment(H) + b"..AAAA", "malformed_jwt"),
    "header_not_json": Case(lambda c: forge(b"not json", _claims(), b"x"), "malformed_jwt"),
    "header_json_array": Case(lambda c: forge([H], _claims(), b"x"), "malformed_jwt"),
    "header_nan": Case(lambda c: forge(b'{"alg":"RS256","kid":"k1","x":NaN}', _claims(), b"x"), "malformed_jwt"),
    "payload_not_base64": Case(lambda c: segment(H) + b".A." + b64url(b"x"), "malformed_jwt"),
    "crit_header": Case(lambda c: c.signer.sign(_claims(), headers={"crit": ["exp"], "exp": 1}), "malformed_jwt"),
    "crit_b64_detached": Case(
        lambda c: c.signer.sign(_claims(), headers={"crit": ["b64"], "b64": False}), "malformed_jwt"
    ),
    "b64_false_without_crit": Case(lambda c: c.signer.sign(_claims(), headers={"b64": False}), "malformed_jwt"),
    "signed_payload_is_a_list": Case(lambda c: c.signer.sign([EVENT]), "malformed_jwt"),  # type: ignore[arg-type]
    "signed_payload_not_json": Case(
        _signed_payload(b"{not json"), "malformed_jwt"
    ),
    # JSON edge cases in a correctly signed payload: both paths read the same, numbers exactly
    "signed_payload_big_int": Case(
        _signed_payload(b'{"metadata":{},"body":{"n":123456789012345678901234567890}}'),
        "ok",
    ),
    "signed_payload_nan": Case(
        _signed_payload(b'{"metadata":{},"body":{"n":NaN}}'), "malformed_jwt"
    ),
    "signed_payload_overflowing_float": Case(
        _signed_payload(b'{"metadata":{},"body":{"n":1e400}}'), "malformed_jwt"
    ),
    "signed_payload_lone_surrogate": Case(
        _signed_payload(b'{"metadata":{},"body":{"s":"\\ud800"}}'),
        "malformed_jwt",
    ),
    "signed_payload_with_bom": Case(
        _signed_payload(b'\xef\xbb\xbf{"metadata":{},"body":{}}'), "malformed_jwt"
    ),
    "signed_payload_not_utf8": Case(
        _signed_payload(b'{"metadata":{},"body":"\xff"}'), "malformed_jwt"
    ),
    "header_with_bom": Case(lambda c: forge(b'\xef\xbb\xbf{"alg":"RS256","kid":"k1"}', _claims(), b"x"), "malformed_jwt"),
    # time claims
    "expired": Case(lambda c: c.signer.sign(_claims(exp=NOW - 120)), "expired"),
    "expired_at_leeway_edge": Case(lambda c: c.signer.sign(_claims(exp=NOW - 60)), "expired"),
    "expired_within_leeway": Case(lambda c: c.signer.sign(_claims(exp=NOW - 30)), "ok"),
    "expired_within_leeway_but_no_leeway": Case(
        lambda c: c.signer.sign(_claims(exp=NOW - 30)), "expired", {"leeway_seconds": 0}
    ),
    "expired_float_exp": Case(lambda c: c.signer.sign(_claims(exp=NOW - 59.5)), "expired"),
    "expired_long_ago_with_verify_exp_off": Case(
        lambda c: c.signer.sign(_claims(exp=NOW - 400 * 86400)), "ok", {"verify_exp": False}
    ),
    "exp_not_a_number": Case(lambda c: c.signer.sign(_claims(exp=str(NOW + 100))), "malformed_jwt"),
    "exp_boolean": Case(lambda c: c.signer.sign(_claims(exp=True)), "malformed_jwt"),
    "exp_not_a_number_unchecked": Case(lambda c: c.signer.sign(_claims(exp="soon")), "ok", {"verify_exp": False}),
    "nbf_in_future": Case(lambda c: c.signer.sign(_claims(nbf=NOW + 120)), "not_yet_valid"),
    "nbf_in_future_with_verify_exp_off": Case(
        lambda c: c.signer.sign(_claims(nbf=NOW + 120)), "not_yet_valid", {"verify_exp": False}
    ),
    "nbf_within_leeway": Case(lambda c: c.signer.sign(_claims(nbf=NOW + 30)), "ok"),
    "nbf_not_a_number": Case(lambda c: c.signer.sign(_claims(nbf=None)), "malformed_jwt"),
    "iat_in_future": Case(lambda c: c.signer.sign(_claims(iat=NOW + 3600)), "not_yet_valid"),
    # issuer
    "bad_issuer": Case(lambda c: c.signer.sign(_claims(iss="https://evil.example")), "bad_issuer"),
    "issuer_not_a_string": Case(lambda c: c.signer.sign(_claims(iss=["https://live-events.canvas.instructure.com"])), "bad_issuer"),
    "issuer_missing_is_accepted": Case(lambda c: c.signer.sign(_claims()), "ok", {"issuer": DEFAULT_ISSUER}),
    "issuer_check_disabled": Case(lambda c: c.signer.sign(_claims(iss="https://other.example")), "ok", {"issuer": None}),
    "custom_issuer": Case(
        lambda c: c.signer.sign(_claims(iss="https://canvas.example.edu")), "ok", {"issuer": "https://canvas.example.edu"}
    ),
}


def _sign_raw(signer: DemoSigner, signing_input: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric import padding

    return signing_input + b"." + b64url(signer.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256()))


@pytest.fixture(scope="module")
def ctx(signer: DemoSigner, other_signer: DemoSigner, attacker_key: DemoSigner, ec_key: ec.EllipticCurvePrivateKey) -> Ctx:
    return Ctx(signer, other_signer, attacker_key, ec_key)


@pytest.mark.parametrize("name", list(CASES))
def test_both_paths_give_the_expected_outcome(name: str, ctx: Ctx, store: KeyStore) -> None:
    case = CASES[name]
    token = case.build(ctx)
    fast, reference = outcomes(token, store, **case.options)
    assert fast == reference, f"paths disagree: fast={fast[:1] + (fast[1] if fast[0] == 'error' else 'claims',)} pyjwt={reference[:1]}"
    if case.expected == "ok":
        assert fast[0] == "ok", f"rejected: {fast[1]}"
        raw = token.encode() if isinstance(token, str) else token
        payload = raw.split(b".")[1]
        sent = base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4))
        # the claims as sent, numbers exact (a >64-bit integer is not rounded to a float)
        assert canonical_json(fast[1]) == canonical_json(json.loads(sent))
    else:
        assert fast == ("error", case.expected)


def test_every_rejection_of_the_verifier_is_covered() -> None:
    expected = {case.expected for case in CASES.values()}
    assert expected >= {
        "ok", "alg_not_allowed", "missing_kid", "unknown_kid", "bad_signature",
        "expired", "not_yet_valid", "bad_issuer", "malformed_jwt",
    }


def test_verified_token_carries_the_kid(signer: DemoSigner, store: KeyStore) -> None:
    token = signer.sign(_claims())
    assert JwtVerifier(store, clock=lambda: NOW).verify(token).kid == "k1"
    assert verify_with_pyjwt(token, store, now=NOW).kid == "k1"


def test_clock_is_read_per_call(signer: DemoSigner, store: KeyStore) -> None:
    clock = ManualClock(NOW)
    verifier = JwtVerifier(store, clock=clock, leeway_seconds=0)
    token = signer.sign(_claims(exp=NOW + 10))
    assert verifier.verify(token).claims["exp"] == NOW + 10
    clock.advance(10)
    with pytest.raises(EventError) as info:
        verifier.verify(token)
    assert info.value.error_type == "expired"


def test_rejection_messages_hold_no_token_content(signer: DemoSigner, store: KeyStore, attacker_key: DemoSigner) -> None:
    secret_claims = _claims(secret="SECRET-CLAIM-VALUE", iss="SECRET-ISS", exp=NOW - 1000)
    tokens = [
        DemoSigner("k1", private_key=attacker_key.private_key).sign(secret_claims),
        signer.sign(secret_claims),
        signer.sign({**secret_claims, "exp": NOW + 100}),
        forge({**H, "alg": "none"}, secret_claims),
    ]
    for token in tokens:
        for verify in (JwtVerifier(store, clock=lambda: NOW).verify, PyJwtVerifier(store, clock=lambda: NOW).verify):
            with pytest.raises(EventError) as info:
                verify(token)
            assert "SECRET" not in info.value.message
            assert token.decode()[:40] not in info.value.message


def test_header_key_urls_are_never_fetched(
    jwks_server: JwksServer, signer: DemoSigner, attacker_key: DemoSigner, store: KeyStore
) -> None:
    """jku/x5u pointing at an attacker's JWKS (served for real) is ignored: no request, no key used."""
    jwks_server.document = attacker_key.jwks(DemoSigner("k1", private_key=attacker_key.private_key))
    own_kid = DemoSigner("k1", private_key=attacker_key.private_key)
    cases = [
        (attacker_key.sign(_claims(), headers={"jku": jwks_server.url}), "unknown_kid"),
        (own_kid.sign(_claims(), headers={"jku": jwks_server.url}), "bad_signature"),
        (own_kid.sign(_claims(), headers={"x5u": jwks_server.url}), "bad_signature"),
        (attacker_key.sign(_claims(), headers={"x5u": jwks_server.url}), "unknown_kid"),
    ]
    refetching = load_key_store([str(store.sources[0])], min_refetch_interval=0)  # refetches on every unknown kid
    for token, expected in cases:
        for keys in (store, refetching):
            assert outcomes(token, keys) == (("error", expected), ("error", expected))
    assert jwks_server.requests == 0


def test_invalid_verifier_options() -> None:
    with pytest.raises(ValueError):
        JwtVerifier(None, leeway_seconds=-1)  # type: ignore[arg-type]


# --- decode_delivery end to end -------------------------------------------------------------


@pytest.fixture(params=["fast", "pyjwt"])
def verifier(request: pytest.FixtureRequest, store: KeyStore) -> JwtVerifier:
    cls = JwtVerifier if request.param == "fast" else PyJwtVerifier
    return cls(store, clock=lambda: NOW)


def _decoded(raw: bytes, **kwargs: Any) -> Any:
    try:
        return [(e.event, e.source_format, e.envelope) for e in decode_delivery(raw, **kwargs)]
    except EventError as exc:
        return exc.error_type


@pytest.mark.parametrize("fmt", ["canvas", "caliper"])
def test_signed_corpus_decodes_like_unsigned(fmt: str, signer: DemoSigner, verifier: JwtVerifier) -> None:
    payloads = corpus_payloads(fmt)
    assert payloads
    decoded_ok = 0
    for payload in payloads:
        signed = signer.sign({**payload, "iss": DEFAULT_ISSUER, "iat": NOW, "exp": NOW + 300})
        plain = _decoded(orjson.dumps(payload), verifier=None, allow_unsigned=True)
        assert _decoded(signed, verifier=verifier, allow_unsigned=False) == plain
        if isinstance(plain, list):
            decoded_ok += 1
            events = decode_delivery(signed, verifier=verifier, allow_unsigned=False)
            assert all(e.signed and e.kid == "k1" and e.source_format == fmt for e in events)
            assert not any(e.signed for e in decode_delivery(orjson.dumps(payload), verifier=None, allow_unsigned=True))
    assert decoded_ok >= len(payloads) * 0.9


def test_signed_caliper_envelope_splits_into_its_events(signer: DemoSigner, verifier: JwtVerifier) -> None:
    envelope = next(p for p in corpus_payloads("caliper") if isinstance(p.get("data"), list) and p["data"])
    events = decode_delivery(signer.sign(envelope), verifier=verifier, allow_unsigned=False)
    assert [e.event for e in events] == envelope["data"]
    assert all(e.envelope == {k: v for k, v in envelope.items() if k != "data"} for e in events)


@pytest.mark.parametrize(
    "name, expected",
    [("alg_none_no_signature", "alg_not_allowed"), ("attacker_key_with_our_kid", "bad_signature"), ("expired", "expired")],
)
def test_decode_delivery_passes_rejections_through(name: str, expected: str, ctx: Ctx, verifier: JwtVerifier) -> None:
    token = CASES[name].build(ctx)
    assert _decoded(b"\r\n " + token + b"\n", verifier=verifier, allow_unsigned=True) == expected


def test_oversized_and_empty_deliveries(signer: DemoSigner, verifier: JwtVerifier) -> None:
    token = signer.sign(_claims(padding="x" * 2000))
    assert _decoded(token, verifier=verifier, allow_unsigned=False, max_bytes=len(token) - 1) == "oversized"
    assert isinstance(_decoded(token, verifier=verifier, allow_unsigned=False, max_bytes=len(token)), list)
    assert _decoded(b"", verifier=verifier, allow_unsigned=False) == "empty_body"
    assert _decoded(b"  \n", verifier=verifier, allow_unsigned=False) == "empty_body"


# --- properties -----------------------------------------------------------------------------

_FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_FUZZ
@given(raw=st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_event_error(raw: bytes, store: KeyStore) -> None:
    verifier = JwtVerifier(store, clock=lambda: NOW)
    with pytest.raises(EventError):
        verifier.verify(raw)
    try:
        decode_delivery(raw, verifier=verifier, allow_unsigned=True)
    except EventError:
        pass


@_FUZZ
@given(text=st.text(max_size=300))
def test_arbitrary_text_raises_only_event_error(text: str, store: KeyStore) -> None:
    with pytest.raises(EventError):
        JwtVerifier(store, clock=lambda: NOW).verify(text)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)
_headers = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from(["RS256", "none", "HS256", "RS384", 1]),
        "kid": st.sampled_from(["k1", "k2", "", 7]),
        "crit": st.just(["b64"]),
        "b64": st.booleans(),
        "typ": st.just("JWT"),
    },
)


@_FUZZ
@given(
    header=_headers | _json_values,
    claims=_json_values,
    signature=st.binary(max_size=300),
)
def test_structured_forgeries_agree_and_raise_only_event_error(
    header: Any, claims: Any, signature: bytes, store: KeyStore
) -> None:
    token = forge(header, claims, signature)
    fast, reference = outcomes(token, store)
    assert fast[0] == "error" and fast == reference


@_FUZZ
@given(data=st.data())
def test_single_character_mutations_agree(data: st.DataObject, signer: DemoSigner, store: KeyStore) -> None:
    token = bytearray(signer.sign(_claims(exp=NOW + 100, iss=DEFAULT_ISSUER)))
    position = data.draw(st.integers(0, len(token) - 1))
    action = data.draw(st.sampled_from(["replace", "delete", "insert"]))
    char = data.draw(st.sampled_from(b"AQgwE-_.=+/ \x00\xff"))
    if action == "replace":
        token[position] = char
    elif action == "delete":
        del token[position]
    else:
        token.insert(position, char)
    fast, reference = outcomes(bytes(token), store)
    assert fast == reference
