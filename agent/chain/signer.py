"""Key material: the only module that loads or holds private keys.

A key never appears in a log line, a repr, an exception message, a config dump or the journal.
"""

from __future__ import annotations

from eth_account import Account
from eth_account.signers.local import LocalAccount

from agent.errors import SignerError

__all__ = ["ANVIL_CHAIN_ID", "DEV_MNEMONIC", "dev_account"]

ANVIL_CHAIN_ID = 31337
# anvil's well-known development mnemonic: public knowledge, worthless off a dev chain.
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
            f"on a local anvil (chain id {ANVIL_CHAIN_ID}); configure a keystore or a key env "
            "var instead"
        )
    if index not in _dev_cache:
        _dev_cache[index] = Account.from_mnemonic(
            DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}"
        )
    return _dev_cache[index]
