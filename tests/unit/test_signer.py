"""Key loading, key hygiene and the `mm-agent keys` command."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.chain.signer import (
    DevKey,
    EnvKey,
    KeystoreKey,
    Signer,
    dev_account,
    keys_cli_main,
    load_signer,
)
from agent.errors import SignerError

PASSWORD = "correct horse battery staple"


def _keystore(tmp_path: Path) -> tuple[Path, Path, str, str]:
    acct = Account.create()
    path = tmp_path / "key.json"
    # A cheap scrypt work factor keeps the test fast; the CLI writes the strong default.
    path.write_text(json.dumps(acct.encrypt(PASSWORD, kdf="scrypt", iterations=2**10)))
    pw = tmp_path / "pw.txt"
    pw.write_text(PASSWORD + "\n")
    return path, pw, acct.address, acct.key.hex().removeprefix("0x")


def test_signing_uses_the_coincurve_backend() -> None:
    signer = load_signer(DevKey(5), 31337)
    assert signer.backend_name == "CoinCurveECCBackend"


def test_dev_keys_are_refused_off_anvil() -> None:
    with pytest.raises(SignerError, match="only allowed on a local anvil"):
        load_signer(DevKey(0), 1)
    with pytest.raises(SignerError):
        dev_account(0, chain_id=None)
    assert load_signer(DevKey(0), 31337).address == dev_account(0).address


def test_keystore_with_password_file_and_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, pw, address, _ = _keystore(tmp_path)
    assert load_signer(KeystoreKey(path, password_file=pw), 1).address == address
    monkeypatch.setenv("MM_PW", PASSWORD)
    assert load_signer(KeystoreKey(path, password_env="MM_PW"), 1).address == address


def test_wrong_password_and_missing_sources_say_what_to_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _, _, key_hex = _keystore(tmp_path)
    monkeypatch.setenv("MM_PW", "nope")
    with pytest.raises(SignerError, match="wrong password") as exc:
        load_signer(KeystoreKey(path, password_env="MM_PW"), 1)
    assert exc.value.__cause__ is None and exc.value.__suppress_context__
    with pytest.raises(SignerError, match="password file or a password env var"):
        load_signer(KeystoreKey(path), 1)
    with pytest.raises(SignerError, match="MM_MISSING"):
        load_signer(EnvKey("MM_MISSING"), 1)
    assert key_hex not in str(exc.value)


def _mangled(keyfile: dict[str, object], how: str) -> object:
    crypto = dict(keyfile["crypto"])  # type: ignore[call-overload]
    if how == "no_mac":
        del crypto["mac"]
        return {**keyfile, "crypto": crypto}
    if how == "unknown_kdf":
        return {**keyfile, "crypto": {**crypto, "kdf": "pbkdf9"}}
    return {"list": [keyfile], "address_only": {"address": keyfile["address"]}}[how]


@pytest.mark.parametrize(
    ("how", "error"),
    [
        ("address_only", r"is not an encrypted keystore .*signer\.keystore_path"),
        ("list", r"is not an encrypted keystore"),
        ("no_mac", r"^cannot decrypt keystore .*: corrupt or unsupported keystore file$"),
        ("unknown_kdf", r"^cannot decrypt keystore .*: corrupt or unsupported keystore file$"),
    ],
)
def test_a_json_file_that_is_no_keystore_is_one_named_error(
    tmp_path: Path, how: str, error: str
) -> None:
    # Each of these was a KeyError / TypeError traceback out of eth-account at `mm-agent run`.
    path, pw, _, key_hex = _keystore(tmp_path)
    path.write_text(json.dumps(_mangled(json.loads(path.read_text()), how)))
    with pytest.raises(SignerError, match=error) as exc:
        load_signer(KeystoreKey(path, password_file=pw), 1)
    assert exc.value.__cause__ is None and key_hex not in str(exc.value)


def test_bad_env_key_error_does_not_echo_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    secret_ish = "ab" * 31  # 31 bytes: invalid, but must still never be echoed
    monkeypatch.setenv("MM_KEY", secret_ish)
    with pytest.raises(SignerError) as exc:
        load_signer(EnvKey("MM_KEY"), 1)
    assert secret_ish not in str(exc.value)
    assert exc.value.__cause__ is None and exc.value.__suppress_context__


def test_signer_repr_and_pickle_hide_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    acct = Account.create()
    monkeypatch.setenv("MM_KEY", acct.key.hex())
    signer = load_signer(EnvKey("MM_KEY"), 10)
    key_hex = acct.key.hex().removeprefix("0x")
    assert repr(signer) == f"Signer(address={acct.address}, chain_id=10)"
    assert key_hex not in repr(signer) + str(signer)
    with pytest.raises(SignerError, match="cannot be pickled"):
        pickle.dumps(signer)
    signed = signer.sign(
        {
            "type": 2,
            "nonce": 0,
            "to": acct.address,
            "value": 0,
            "gas": 21000,
            "maxFeePerGas": 2,
            "maxPriorityFeePerGas": 1,
            "data": b"",
        }
    )
    assert Account.recover_transaction(signed.raw) == acct.address
    assert signed.tx_hash.startswith("0x") and len(signed.tx_hash) == 66


def test_keys_cli_new_address_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD)
    out = tmp_path / "ks" / "new.json"
    assert keys_cli_main(["new", "--out", str(out), "--password-file", str(pw)]) == 0
    assert out.stat().st_mode & 0o777 == 0o600
    signer = load_signer(KeystoreKey(out, password_file=pw), 1)
    printed = capsys.readouterr().out
    assert signer.address in printed
    assert keys_cli_main(["address", str(out)]) == 0
    assert capsys.readouterr().out.strip().lower() == signer.address.lower()
    # Refuses to overwrite without --force.
    assert keys_cli_main(["new", "--out", str(out), "--password-file", str(pw)]) == 1
    assert "exists" in capsys.readouterr().err

    acct = Account.create()
    key_hex = acct.key.hex().removeprefix("0x")
    monkeypatch.setenv("MM_IMPORT", key_hex)
    imported = tmp_path / "imp.json"
    rc = keys_cli_main(
        ["import", "--out", str(imported), "--password-file", str(pw), "--key-env", "MM_IMPORT"]
    )
    assert rc == 0
    assert load_signer(KeystoreKey(imported, password_file=pw), 1).address == acct.address
    cap = capsys.readouterr()
    assert key_hex not in cap.out + cap.err
    assert key_hex not in imported.read_text()


def test_keys_cli_new_asks_password_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = iter(["one", "two"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    out = tmp_path / "k.json"
    assert keys_cli_main(["new", "--out", str(out)]) == 1
    assert "do not match" in capsys.readouterr().err and not out.exists()
    answers = iter([PASSWORD, PASSWORD])
    assert keys_cli_main(["new", "--out", str(out)]) == 0
    assert out.exists()


@given(
    nonce=st.integers(0, 2**40),
    tip=st.integers(0, 10**12),
    extra=st.integers(0, 10**12),
    gas=st.integers(21_000, 30_000_000),
    value=st.integers(0, 2**128),
    data=st.binary(max_size=700),
    chain_id=st.sampled_from([1, 10, 31337, 421614]),
)
@settings(max_examples=60, deadline=None)
def test_fast_1559_path_is_byte_identical_to_eth_account(
    nonce: int, tip: int, extra: int, gas: int, value: int, data: bytes, chain_id: int
) -> None:
    acct = dev_account(6)
    signer = Signer(acct, chain_id)
    tx = {
        "type": 2,
        "nonce": nonce,
        "to": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "value": value,
        "data": data,
        "gas": gas,
        "maxFeePerGas": tip + extra,
        "maxPriorityFeePerGas": tip,
    }
    ours = signer.sign(tx)
    ref = acct.sign_transaction({**tx, "chainId": chain_id})
    assert ours.raw == bytes(ref.raw_transaction)
    assert ours.tx_hash == "0x" + ref.hash.hex()


@pytest.mark.parametrize("index", [0, 1, 9, 19])
def test_a_dev_key_is_refused_off_anvil_whatever_its_source(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_hex = dev_account(index).key.hex()
    monkeypatch.setenv("MM_KEY", key_hex)
    with pytest.raises(SignerError, match=r"\$MM_KEY holds anvil's public dev key .* chain id 10"):
        load_signer(EnvKey("MM_KEY"), 10)
    assert load_signer(EnvKey("MM_KEY"), 31337).address == dev_account(index).address
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(Account.encrypt(key_hex, "pw", iterations=2)))
    (tmp_path / "pw").write_text("pw")
    with pytest.raises(SignerError, match=r"keystore .*dev\.json holds anvil's public dev key"):
        load_signer(KeystoreKey(path, password_file=tmp_path / "pw"), 1)
