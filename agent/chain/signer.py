"""Key material: the only module that loads or holds private keys.

A key never appears in a log line, a repr, an exception message, a config dump or the journal:

- :class:`Signer` wraps the account privately; its repr shows the address only and it refuses to be
  pickled or copied into another process.
- Key sources are *references* (a keystore path plus a password file or env var name, a key env var
  name, a dev-account index), so configs and dumps hold names, never secrets.
- Errors raised while parsing key material are re-raised without their cause (``from None``): the
  underlying library may quote the input in its message or traceback.

Key sources, in the order a production deployment should prefer them:

======================  =========================================================================
``KeystoreKey``         encrypted JSON keystore (scrypt); password from a file or an env var
``EnvKey``              raw hex key in a named environment variable (for CI / containers)
``DevKey``              anvil's well-known dev keys; refused unless the chain id is 31337
======================  =========================================================================

Whatever the source, a key that *is* one of the public dev keys (say one pasted into an env var or
imported into a keystore) is refused on every chain but 31337: anyone can sign with it.
"""

from __future__ import annotations

import argparse
import functools
import getpass
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import rlp  # type: ignore[import-untyped]  # no stubs; a transitive dep of eth-account
from coincurve import PrivateKey as CoincurveKey
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from agent.errors import SignerError

__all__ = [
    "ANVIL_CHAIN_ID",
    "DEV_MNEMONIC",
    "DevKey",
    "EnvKey",
    "KeySource",
    "KeystoreKey",
    "SignedTx",
    "Signer",
    "dev_account",
    "is_dev_address",
    "keys_cli_main",
    "load_signer",
]

ANVIL_CHAIN_ID = 31337
# anvil's and hardhat's well-known dev mnemonic: public knowledge, worthless off a dev chain.
DEV_MNEMONIC = "test test test test test test test test test test test junk"

Account.enable_unaudited_hdwallet_features()
_dev_cache: dict[int, LocalAccount] = {}


def dev_account(index: int, chain_id: int | None = ANVIL_CHAIN_ID) -> LocalAccount:
    """Return anvil's well-known development account `index`.

    Parameters
    ----------
    index
        Account index in the dev mnemonic (anvil funds 0-9 by default).
    chain_id
        The chain the key will sign for; anything but 31337 is refused, so a dev key can never be
        used on a real network by accident.
    """
    if chain_id != ANVIL_CHAIN_ID:
        raise SignerError(
            f"refusing anvil's public dev key on chain id {chain_id}: dev keys are only allowed "
            f"on a local anvil (chain id {ANVIL_CHAIN_ID}); configure a keystore or a key env var"
        )
    if index not in _dev_cache:
        _dev_cache[index] = Account.from_mnemonic(
            DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}"
        )
    return _dev_cache[index]


# anvil funds 10 accounts of the dev mnemonic by default, hardhat 20: refuse all 20 off anvil.
_DEV_ACCOUNTS_CHECKED = 20


@functools.cache
def _dev_addresses() -> frozenset[str]:
    return frozenset(
        Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").address.lower()
        for i in range(_DEV_ACCOUNTS_CHECKED)
    )


def is_dev_address(address: str) -> bool:
    """Return whether ``address`` belongs to one of the public dev-mnemonic keys (indices 0-19)."""
    return address.lower() in _dev_addresses()


def _refuse_dev_key(account: LocalAccount, chain_id: int, where: str) -> LocalAccount:
    if chain_id != ANVIL_CHAIN_ID and is_dev_address(account.address):
        raise SignerError(
            f"{where} holds anvil's public dev key {account.address}: refused on chain id "
            f"{chain_id} (anyone can sign with it; dev keys are only allowed on chain id "
            f"{ANVIL_CHAIN_ID}); use a key of your own (mm-agent keys new)"
        )
    return account


# -- key sources (references only) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeystoreKey:
    """An encrypted keystore file; the password comes from `password_file` or `password_env`."""

    path: Path
    password_file: Path | None = None
    password_env: str | None = None


@dataclass(frozen=True, slots=True)
class EnvKey:
    """A raw hex private key held in the environment variable named `env_var`."""

    env_var: str


@dataclass(frozen=True, slots=True)
class DevKey:
    """Anvil's dev account `index`; only allowed on chain id 31337."""

    index: int


KeySource = KeystoreKey | EnvKey | DevKey


@dataclass(frozen=True, slots=True)
class SignedTx:
    """A signed transaction: the exact bytes to broadcast and their hash (0x-hex)."""

    raw: bytes
    tx_hash: str


_FAST_FIELDS = frozenset(
    {"type", "nonce", "to", "value", "data", "gas", "maxFeePerGas", "maxPriorityFeePerGas"}
)


class Signer:
    """Signs transactions for one account on one chain; never exposes the key.

    Parameters
    ----------
    account
        The loaded account (kept private).
    chain_id
        The chain this signer signs for; every transaction is stamped with it.
    """

    __slots__ = ("_account", "_cc_key", "address", "chain_id")

    def __init__(self, account: LocalAccount, chain_id: int) -> None:
        self._account = account
        self._cc_key = CoincurveKey(bytes(account.key))
        self.address: str = account.address
        self.chain_id = chain_id

    def sign(self, tx: dict[str, Any]) -> SignedTx:
        """Sign a transaction dict (``chainId`` is set here) and return bytes and hash.

        EIP-1559 transactions without an access list (every order the agent sends) take a
        direct path: RLP-encode and sign the hash with coincurve, about 10x cheaper than
        eth-account's validating dict pipeline, and byte-identical to it (RFC 6979 nonces; a
        test compares the two). Anything else goes through eth-account.
        """
        if tx.get("type") == 2 and set(tx) <= _FAST_FIELDS:
            return self._sign_1559(tx)
        signed = self._account.sign_transaction({**tx, "chainId": self.chain_id})
        return SignedTx(raw=bytes(signed.raw_transaction), tx_hash="0x" + signed.hash.hex())

    def _sign_1559(self, tx: dict[str, Any]) -> SignedTx:
        to = tx.get("to") or b""
        fields = [
            self.chain_id,
            tx["nonce"],
            tx["maxPriorityFeePerGas"],
            tx["maxFeePerGas"],
            tx["gas"],
            bytes.fromhex(to[2:]) if isinstance(to, str) else bytes(to),
            tx.get("value", 0),
            bytes(tx.get("data", b"")),
            [],
        ]
        digest = keccak(b"\x02" + rlp.encode(fields))
        sig = self._cc_key.sign_recoverable(digest, hasher=None)
        r, s, y_parity = int.from_bytes(sig[:32]), int.from_bytes(sig[32:64]), sig[64]
        raw = b"\x02" + rlp.encode([*fields, y_parity, r, s])
        return SignedTx(raw=raw, tx_hash="0x" + keccak(raw).hex())

    @property
    def backend_name(self) -> str:
        """Class name of the ECC backend that signs (``CoinCurveECCBackend`` is the fast one)."""
        key_obj = getattr(self._account, "_key_obj", None)
        backend = getattr(key_obj, "backend", None)
        return type(backend).__name__ if backend is not None else "unknown"

    def __repr__(self) -> str:
        return f"Signer(address={self.address}, chain_id={self.chain_id})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        # Pickling would copy the key into whatever reads the pickle (a process pool, a cache).
        raise SignerError("a Signer cannot be pickled: load the key in the process that signs")


def load_signer(source: KeySource, chain_id: int) -> Signer:
    """Load the key a `source` refers to and return a :class:`Signer` for `chain_id`.

    Raises
    ------
    SignerError
        The key is missing, unreadable, the password is wrong, or it is a public dev key (from
        any source) on a chain other than anvil's. The message never contains key material.
    """
    if isinstance(source, DevKey):
        return Signer(dev_account(source.index, chain_id), chain_id)
    if isinstance(source, EnvKey):
        raw = os.environ.get(source.env_var)
        if not raw:
            raise SignerError(f"environment variable {source.env_var} is not set or empty")
        where = f"${source.env_var}"
        return Signer(
            _refuse_dev_key(_account_from_hex(raw.strip(), where), chain_id, where), chain_id
        )
    # The keystore first: a missing key file is the fault to report, not its password file.
    try:
        keyfile = json.loads(source.path.read_text())
    except OSError as exc:
        raise SignerError(
            f"cannot read keystore {source.path}: {exc.strerror} (fix the path, or create one "
            "with `mm-agent keys new --out PATH`)"
        ) from None
    except ValueError:
        raise SignerError(f"keystore {source.path} is not valid JSON") from None
    if not (isinstance(keyfile, dict) and "version" in keyfile and _crypto(keyfile)):
        raise SignerError(
            f"{source.path} is not an encrypted keystore (JSON with version and crypto): point "
            "signer.keystore_path at one written by `mm-agent keys new` or `keys import`"
        )
    password = _read_password(source)
    try:
        key = Account.decrypt(keyfile, password)
    except ValueError:
        raise SignerError(
            f"cannot decrypt keystore {source.path}: wrong password or corrupt file"
        ) from None
    except (KeyError, TypeError, NotImplementedError):  # a field missing or of the wrong shape
        raise SignerError(
            f"cannot decrypt keystore {source.path}: corrupt or unsupported keystore file"
        ) from None
    account = _refuse_dev_key(Account.from_key(key), chain_id, f"keystore {source.path}")
    return Signer(account, chain_id)


def _crypto(keyfile: dict[str, Any]) -> bool:
    # Version-3 keystores name the section "crypto"; some writers capitalise it.
    return isinstance(keyfile.get("crypto", keyfile.get("Crypto")), dict)


def _account_from_hex(raw: str, where: str) -> LocalAccount:
    try:
        account: LocalAccount = Account.from_key(raw)
    # Any parse failure: the library's message (or traceback) may quote the input.
    except Exception:
        raise SignerError(
            f"{where} does not hold a valid private key (expected 32 bytes of hex)"
        ) from None
    return account


def _read_password(source: KeystoreKey) -> str:
    if source.password_file is not None:
        try:
            # Only the trailing newline an editor adds is stripped; spaces are part of a password.
            return source.password_file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise SignerError(
                f"cannot read password file {source.password_file}: {exc.strerror}"
            ) from None
    if source.password_env is not None:
        pw = os.environ.get(source.password_env)
        if pw is None:
            raise SignerError(f"environment variable {source.password_env} is not set")
        return pw
    raise SignerError(f"keystore {source.path}: set a password file or a password env var")


# -- `mm-agent keys` --------------------------------------------------------------------------


def keys_cli_main(argv: list[str]) -> int:
    """Run ``mm-agent keys new | import | address``; return the process exit code.

    ``new`` creates a random key and writes it as an encrypted keystore; ``import`` encrypts an
    existing key read from an env var or a hidden prompt; ``address`` prints a keystore's address.
    No sub-command ever prints key material.
    """
    parser = argparse.ArgumentParser(prog="mm-agent keys", description=keys_cli_main.__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name, helptext in (
        ("new", "create a new key in an encrypted keystore"),
        ("import", "encrypt an existing key into a keystore"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--out", type=Path, required=True, help="keystore file to write")
        p.add_argument("--password-file", type=Path, help="read the password from this file")
        p.add_argument("--force", action="store_true", help="overwrite an existing file")
        if name == "import":
            p.add_argument("--key-env", help="env var holding the hex key (default: prompt)")
    p = sub.add_parser("address", help="print the address of a keystore")
    p.add_argument("keystore", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "address":
            return _cli_address(args.keystore)
        return _cli_write(args)
    except SignerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _cli_address(path: Path) -> int:
    try:
        address = json.loads(path.read_text())["address"]
    except (OSError, ValueError, KeyError):
        raise SignerError(f"{path} is not a readable keystore with an address field") from None
    print("0x" + str(address).removeprefix("0x"))
    return 0


def _cli_write(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.exists() and not args.force:
        raise SignerError(f"{out} exists: pass --force to overwrite it")
    if args.cmd == "new":
        account: LocalAccount = Account.create()
    elif args.key_env:
        raw = os.environ.get(args.key_env)
        if not raw:
            raise SignerError(f"environment variable {args.key_env} is not set or empty")
        account = _account_from_hex(raw.strip(), f"${args.key_env}")
    else:
        account = _account_from_hex(getpass.getpass("private key (hidden): ").strip(), "input")
    if args.password_file is not None:
        password = _read_password(KeystoreKey(out, password_file=args.password_file))
    else:
        password = getpass.getpass("keystore password: ")
        if getpass.getpass("repeat password: ") != password:
            raise SignerError("passwords do not match; nothing written")
    if not password:
        raise SignerError("refusing an empty keystore password")
    keyfile = account.encrypt(password, kdf="scrypt")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Create with 0600 from the start: a chmod after writing leaves a readable window.
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(keyfile, fh)
    print(f"wrote {out} for address {account.address}")
    return 0
