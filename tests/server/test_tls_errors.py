"""Unusable TLS files are reported as what they are, naming the file and the fix: not as
"cannot listen for OTLP/gRPC ... choose another port". Checked on ``tls_files`` and on a
real ``chainmap serve`` that refuses to start with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chainmap_otel.server.http.auth import tls_files
from tests.support.processes import free_port

CHAINMAP = str(Path(sys.executable).parent / "chainmap")


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}-cert.pem", directory / f"{name}-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = self_signed(directory, "a")
    _, other_key = self_signed(directory, "b")
    encrypted = directory / "encrypted-key.pem"
    subprocess.run(
        ["openssl", "pkey", "-in", str(key), "-aes256", "-passout", "pass:x", "-out", str(encrypted)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    garbage = directory / "garbage.pem"
    garbage.write_text("not a certificate\n")
    return {"cert": cert, "key": key, "other_key": other_key, "encrypted": encrypted,
            "garbage": garbage}  # fmt: skip


def test_a_matching_pair_is_accepted(pem: dict[str, Path]) -> None:
    files = tls_files(str(pem["cert"]), str(pem["key"]))
    assert files is not None and files.cert == str(pem["cert"])


@pytest.mark.parametrize(
    ("cert", "key", "says"),
    [
        ("cert", "other_key", "CHAINMAP_TLS_KEY_FILE={key} is not the private key of "
         "CHAINMAP_TLS_CERT_FILE={cert} (key values mismatch); use the key the certificate "
         "was issued for"),
        ("garbage", "key", "CHAINMAP_TLS_CERT_FILE={cert}: not a PEM certificate"),
        ("key", "key", "CHAINMAP_TLS_CERT_FILE={cert}: not a PEM certificate"),
        ("cert", "garbage", "CHAINMAP_TLS_KEY_FILE={key}: not a PEM private key"),
        ("cert", "encrypted", "CHAINMAP_TLS_KEY_FILE={key}: the private key is encrypted"),
    ],
)  # fmt: skip
def test_a_bad_file_is_named_with_the_fix(
    pem: dict[str, Path], cert: str, key: str, says: str
) -> None:
    with pytest.raises(ValueError) as caught:
        tls_files(str(pem[cert]), str(pem[key]))
    assert str(caught.value).startswith(says.format(cert=pem[cert], key=pem[key])), caught.value
    assert "port" not in str(caught.value)


def test_serve_refuses_a_mismatched_key_on_one_line(pem: dict[str, Path], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHAINMAP_", "OTEL_"))}
    env.update(
        CHAINMAP_TLS_CERT_FILE=str(pem["cert"]),
        CHAINMAP_TLS_KEY_FILE=str(pem["other_key"]),
        CHAINMAP_REGISTRY_URL="off",
    )
    done = subprocess.run(
        [CHAINMAP, "serve", "--store", f"chdb://{tmp_path / 'store'}", "--http-port", "0",
         "--grpc-port", str(free_port())],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert f"CHAINMAP_TLS_KEY_FILE={pem['other_key']} is not the private key" in done.stderr
    assert "choose another port" not in done.stderr + done.stdout
