"""KeyStore: which keys load, when sources fail, kid rotation with a real JWKS server, several sources."""
from __future__ import annotations

import json
import logging
import pickle
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from pipeline.core.errors import EventError
from pipeline.contract import VerifierSettings
from pipeline.core.jwks import JwksUnavailable, KeyStore, describe_source
from pipeline.core.verify import JwtVerifier
from pipeline.jwks_fetch import build_verifier, load_key_store
from devkit.signing import DemoSigner, b64url
from devkit.loopback import JwksServer
from tests.support.jwks import ManualClock, closed_port_url

NOW = 1_700_000_000


def fixed_now() -> float:
    return NOW


def _verifier(store: KeyStore) -> JwtVerifier:
    return JwtVerifier(store, clock=fixed_now)


def _unknown_kid(store: KeyStore, kid: str) -> bool:
    with pytest.raises(EventError) as info:
        store.get(kid)
    return info.value.error_type == "unknown_kid"


# --- loading ---------------------------------------------------------------------------------


def test_file_source_loads_its_keys(jwks_file: Path, signer: DemoSigner) -> None:
    store = load_key_store([str(jwks_file)])
    assert store.kids == {"k1"}
    assert store.get("k1").public_numbers() == signer.public_key.public_numbers()


def test_file_url_source_loads(jwks_file: Path) -> None:
    assert load_key_store([jwks_file.as_uri()]).kids == {"k1"}


def test_only_rs256_signing_keys_are_loaded(tmp_path: Path, signer: DemoSigner) -> None:
    good = signer.public_jwk()
    ec_jwk = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key()))
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    small_jwk = DemoSigner("small", private_key=small).public_jwk()
    private_jwk = json.loads(RSAAlgorithm.to_jwk(signer.private_key))
    jwks = {
        "keys": [
            good,
            {**ec_jwk, "kid": "ec"},
            {"kty": "oct", "kid": "hmac", "k": b64url(b"secret").decode()},
            {**good, "kid": "enc", "use": "enc"},
            {**good, "kid": "rs384", "alg": "RS384"},
            {k: v for k, v in good.items() if k != "kid"},
            {**small_jwk},
            {**private_jwk, "kid": "with-private-members"},
            {k: v for k, v in {**good, "kid": "no-use-no-alg"}.items() if k not in ("use", "alg")},
            {"kty": "RSA", "kid": "broken", "n": "AQAB", "e": "not base64!"},
            "not an object",
        ]
    }
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(jwks))
    store = load_key_store([str(path)])
    assert store.kids == {"k1", "with-private-members", "no-use-no-alg"}
    # Private members are never kept: the store hands out public keys only.
    assert isinstance(store.get("with-private-members"), RSAPublicKey)
    kept = [jwk for jwks in store.__getstate__()["jwks_by_source"] for jwk in jwks]
    assert len(kept) == 3 and not any({"d", "p", "q"} & set(jwk) for jwk in kept)


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"SECRET-CONTENT not json", "not valid JSON"),
        (b'["SECRET-CONTENT"]', "not a JWK Set"),
        (b'{"keys": {"SECRET-CONTENT": 1}}', "not a JWK Set"),
        (b'{"keys": []}', "no usable RS256 key"),
        (b'{"keys": [{"kty": "oct", "kid": "SECRET-CONTENT", "k": "c2VjcmV0"}]}', "no usable RS256 key"),
    ],
)
def test_unusable_file_raises_jwks_unavailable_without_content(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(JwksUnavailable) as info:
        load_key_store([str(path)])
    assert str(path) in str(info.value) and reason in str(info.value)
    assert "SECRET-CONTENT" not in str(info.value)


def test_missing_file_raises_jwks_unavailable(tmp_path: Path) -> None:
    with pytest.raises(JwksUnavailable, match="missing.json"):
        load_key_store([str(tmp_path / "missing.json")])


def test_unreachable_url_at_startup_raises_jwks_unavailable() -> None:
    url = closed_port_url()
    with pytest.raises(JwksUnavailable) as info:
        load_key_store([url], timeout=5)
    assert url in str(info.value)


def test_http_error_status_at_startup_raises_jwks_unavailable(jwks_server: JwksServer) -> None:
    jwks_server.status = 404
    with pytest.raises(JwksUnavailable, match="HTTP 404"):
        load_key_store([jwks_server.url])
    assert jwks_server.requests == 1


@pytest.mark.parametrize("url", ["http://example.com/jwks.json", "http://10.0.0.1/jwks.json", "ftp://127.0.0.1/jwks.json"])
def test_clear_text_or_odd_scheme_to_remote_host_is_refused_before_any_request(url: str) -> None:
    with pytest.raises(JwksUnavailable, match="https://|scheme"):
        load_key_store([url])


def test_redirects_are_followed_on_loopback_but_never_to_clear_text_remote(
    jwks_server: JwksServer, signer: DemoSigner
) -> None:
    jwks_server.document = signer.jwks()
    jwks_server.redirect_to = "/moved/jwks.json"
    assert load_key_store([jwks_server.url]).kids == {"k1"}
    assert jwks_server.paths == ["/jwks.json", "/moved/jwks.json"]
    jwks_server.redirect_to = "http://example.com/jwks.json"
    with pytest.raises(JwksUnavailable, match="redirect to a non-https URL refused"):
        load_key_store([jwks_server.url])
    assert jwks_server.requests == 3


def test_one_bad_source_among_good_ones_fails_startup(jwks_file: Path, tmp_path: Path) -> None:
    with pytest.raises(JwksUnavailable, match="nope.json"):
        load_key_store([str(jwks_file), str(tmp_path / "nope.json")])


def test_error_messages_never_show_url_credentials_or_query(jwks_server: JwksServer) -> None:
    jwks_server.status = 500
    secret_url = jwks_server.url.replace("http://", "http://user:hunter2@") + "?token=hunter2"
    with pytest.raises(JwksUnavailable) as info:
        load_key_store([secret_url])
    assert "hunter2" not in str(info.value)
    assert describe_source(secret_url) == jwks_server.url


def test_store_needs_a_source() -> None:
    with pytest.raises(ValueError):
        load_key_store([])


# --- kid rotation over HTTP ---------------------------------------------------------------


def test_kid_rotation_refetches_at_most_once_per_interval(
    jwks_server: JwksServer, signer: DemoSigner, other_signer: DemoSigner, manual_clock: ManualClock
) -> None:
    jwks_server.document = signer.jwks()
    store = load_key_store([jwks_server.url], min_refetch_interval=60, clock=manual_clock)
    verifier = _verifier(store)
    assert jwks_server.requests == 1
    token_k2 = other_signer.sign({"metadata": {}, "body": {}})

    # Startup counts as a fetch: an unknown kid right after it does not refetch.
    with pytest.raises(EventError) as info:
        verifier.verify(token_k2)
    assert info.value.error_type == "unknown_kid"
    assert jwks_server.requests == 1

    jwks_server.document = signer.jwks(other_signer)  # Canvas publishes the next key
    manual_clock.advance(59)
    assert _unknown_kid(store, "k2") and _unknown_kid(store, "k2")
    assert jwks_server.requests == 1  # still inside the interval

    manual_clock.advance(1)
    assert verifier.verify(token_k2).kid == "k2"
    assert jwks_server.requests == 2
    assert store.kids == {"k1", "k2"}

    # A flood of random kids right after the refetch costs no further request.
    for i in range(20):
        assert _unknown_kid(store, f"random-{i}")
    assert jwks_server.requests == 2
    manual_clock.advance(60)
    assert _unknown_kid(store, "random-again")
    assert jwks_server.requests == 3
    # Known kids never fetch.
    assert verifier.verify(token_k2).kid == "k2" and jwks_server.requests == 3


def test_concurrent_unknown_kids_trigger_a_single_refetch(
    jwks_server: JwksServer, signer: DemoSigner, other_signer: DemoSigner, manual_clock: ManualClock
) -> None:
    jwks_server.document = signer.jwks()
    store = load_key_store([jwks_server.url], clock=manual_clock)
    jwks_server.document = signer.jwks(other_signer)
    manual_clock.advance(61)
    barrier = threading.Barrier(8)
    results: list[object] = []

    def lookup() -> None:
        barrier.wait()
        results.append(store.get("k2"))

    threads = [threading.Thread(target=lookup) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 8 and all(isinstance(key, RSAPublicKey) for key in results)
    assert jwks_server.requests == 2


def test_failing_refetch_keeps_previous_keys_and_logs_without_content(
    jwks_server: JwksServer, signer: DemoSigner, manual_clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    jwks_server.document = signer.jwks()
    store = load_key_store([jwks_server.url], clock=manual_clock)
    jwks_server.status = 503
    jwks_server.document = b"SECRET-CONTENT"
    manual_clock.advance(120)
    with caplog.at_level(logging.WARNING, logger="pipeline.core.jwks"):
        assert _unknown_kid(store, "k9")
    assert jwks_server.requests == 2
    assert store.kids == {"k1"}
    assert _verifier(store).verify(signer.sign({"metadata": {}, "body": {}})).kid == "k1"
    assert "keeping 1 previous key" in caplog.text and "HTTP 503" in caplog.text
    assert "SECRET-CONTENT" not in caplog.text


def test_keys_removed_from_the_jwks_are_dropped_on_refetch(
    jwks_server: JwksServer, signer: DemoSigner, other_signer: DemoSigner, manual_clock: ManualClock
) -> None:
    jwks_server.document = signer.jwks(other_signer)
    store = load_key_store([jwks_server.url], clock=manual_clock)
    jwks_server.document = other_signer.jwks()
    manual_clock.advance(60)
    assert _unknown_kid(store, "k3")
    assert store.kids == {"k2"}


# --- several sources ------------------------------------------------------------------------


def test_live_url_plus_archive_file_verifies_old_key_tokens(
    jwks_server: JwksServer, jwks_dir: Path, signer: DemoSigner, other_signer: DemoSigner
) -> None:
    old = DemoSigner("2024-01-old", private_key=signer.private_key)  # any key; only the kid and source matter here
    archive = jwks_dir / "archive.json"
    old.write_jwks(archive)
    jwks_server.document = other_signer.jwks()  # the live JWKS no longer lists the old key
    verifier = build_verifier(VerifierSettings((jwks_server.url, str(archive))), clock=lambda: NOW)
    assert verifier is not None
    assert verifier.keys.kids == {"k2", "2024-01-old"}
    assert verifier.verify(old.sign({"metadata": {}, "body": {}})).kid == "2024-01-old"
    assert verifier.verify(other_signer.sign({"metadata": {}, "body": {}})).kid == "k2"


def test_same_kid_with_different_keys_first_source_wins(
    tmp_path: Path, signer: DemoSigner, attacker_key: DemoSigner, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    signer.write_jwks(first)
    DemoSigner("k1", private_key=attacker_key.private_key).write_jwks(second)
    with caplog.at_level(logging.WARNING, logger="pipeline.core.jwks"):
        store = load_key_store([str(first), str(second)])
    assert store.get("k1").public_numbers() == signer.public_key.public_numbers()
    assert "first listed wins" in caplog.text


# --- pickling (Beam ships DoFns pickled) ----------------------------------------------------


def test_pickled_store_keeps_keys_without_fetching(jwks_server: JwksServer, signer: DemoSigner) -> None:
    jwks_server.document = signer.jwks()
    store = load_key_store([jwks_server.url])
    copy = pickle.loads(pickle.dumps(_verifier(store)))
    assert jwks_server.requests == 1
    assert copy.keys.kids == {"k1"}
    assert copy.verify(signer.sign({"metadata": {}, "body": {}})).kid == "k1"
    # The copy's first unknown kid may refetch at once (a new process's clock means nothing).
    assert _unknown_kid(copy.keys, "k7") and jwks_server.requests == 2


# --- build_verifier -----------------------------------------------------------------------


@pytest.mark.parametrize("sources", [None, [], "", " , "])
def test_build_verifier_without_sources_is_none(sources: object) -> None:
    assert build_verifier(VerifierSettings(sources)) is None  # type: ignore[arg-type]


def test_build_verifier_splits_a_comma_separated_string_and_routes_options(
    jwks_file: Path, jwks_dir: Path, other_signer: DemoSigner
) -> None:
    second = jwks_dir / "k2.json"
    other_signer.write_jwks(second)
    verifier = build_verifier(
        VerifierSettings(f"{jwks_file}, {second}", issuer=None, leeway_seconds=5, verify_exp=False),  # type: ignore[arg-type]
        min_refetch_interval=300,
    )
    assert verifier is not None
    assert verifier.keys.sources == (str(jwks_file), str(second))
    assert verifier.keys.kids == {"k1", "k2"}
    assert (verifier.issuer, verifier.leeway_seconds, verifier.verify_exp) == (None, 5.0, False)


def test_build_verifier_rejects_unknown_options(jwks_file: Path) -> None:
    with pytest.raises(TypeError, match="leeway"):
        build_verifier(VerifierSettings((str(jwks_file),)), leeway=5)  # type: ignore[call-arg]


# --- the store is pure: documents come from the injected fetch --------------------------------


def test_store_takes_its_documents_from_the_injected_fetch(
    signer: DemoSigner, other_signer: DemoSigner, manual_clock: ManualClock
) -> None:
    documents = {"live": json.dumps(signer.jwks()).encode()}
    fetched: list[str] = []

    def fetch(source: str) -> bytes:
        fetched.append(source)
        if source not in documents:
            raise JwksUnavailable(f"JWKS source {source}: gone")
        return documents[source]

    store = KeyStore(["live"], fetch=fetch, min_refetch_interval=60, clock=manual_clock)
    assert store.kids == {"k1"} and fetched == ["live"]
    documents["live"] = json.dumps(other_signer.jwks()).encode()
    assert _unknown_kid(store, "k2") and fetched == ["live"]  # within the interval: no fetch
    manual_clock.advance(61)
    assert store.get("k2").public_numbers() == other_signer.public_key.public_numbers()
    assert fetched == ["live", "live"] and store.last_refresh_ok
    with pytest.raises(JwksUnavailable, match="gone"):
        KeyStore(["elsewhere"], fetch=fetch)


def test_the_core_does_no_io_of_its_own() -> None:
    """Fetching is at the edge (pipeline/jwks_fetch.py): no core module imports a network,
    file or cloud client."""
    import ast

    io_modules = {"urllib.request", "urllib.error", "http", "http.client", "socket", "pathlib", "requests",
                  "google", "pipeline.gcs", "pipeline.jwks_fetch", "apache_beam", "io", "os", "shutil"}
    core = Path(__file__).resolve().parents[2] / "pipeline" / "core"
    found = []
    for path in sorted(core.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.name}: {n}" for n in names if n in io_modules or n.split(".")[0] in {"google", "apache_beam"}]
    assert found == []
