"""Byte and JSON shapes of the Solana RPC that LiteSVM does not produce itself.

SPL token accounts and mints parsed into ``jsonParsed`` form, transaction errors in
their RPC JSON form and in the human message a validator prints for them, and
base58 for instruction data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from solders.account import Account
from solders.pubkey import Pubkey
from solders.rpc.responses import RpcSimulateTransactionResult
from solders.token.state import Mint, TokenAccount

from puppet_engine.solana.tokens import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAMS, ui_amount_string

MINT_LEN = 82
ACCOUNT_LEN = 165
U64_MAX = 18446744073709551615  # rentEpoch of rent-exempt accounts
_ACCOUNT_TYPE_MINT, _ACCOUNT_TYPE_ACCOUNT = 1, 2
_IMMUTABLE_OWNER = 7
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    out = ""
    while number:
        number, rem = divmod(number, 58)
        out = _B58[rem] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def is_token_program(owner: Pubkey) -> bool:
    return owner in TOKEN_PROGRAMS


def token_account_bytes(state: TokenAccount, program_id: Pubkey) -> bytes:
    """Account data as the token program writes it (Token-2022 ATAs carry ImmutableOwner)."""
    base = bytes(state)
    if program_id == TOKEN_2022_PROGRAM_ID:
        return base + bytes([_ACCOUNT_TYPE_ACCOUNT]) + _IMMUTABLE_OWNER.to_bytes(2, "little") + b"\0\0"
    return base


def account_kind(account: Account | None) -> str | None:
    """``"mint"``, ``"account"`` or ``None`` for a non-token account."""
    if account is None or not is_token_program(account.owner):
        return None
    size = len(account.data)
    if size == MINT_LEN:
        return "mint"
    if size == ACCOUNT_LEN:
        return "account"
    if size > ACCOUNT_LEN:
        kind = account.data[ACCOUNT_LEN]
        return {_ACCOUNT_TYPE_MINT: "mint", _ACCOUNT_TYPE_ACCOUNT: "account"}.get(kind)
    return None


def parse_token_account(account: Account | None) -> TokenAccount | None:
    if account_kind(account) != "account":
        return None
    assert account is not None
    return TokenAccount.from_bytes(bytes(account.data[:ACCOUNT_LEN]))


def parse_mint(account: Account | None) -> Mint | None:
    if account_kind(account) != "mint":
        return None
    assert account is not None
    return Mint.from_bytes(bytes(account.data[:MINT_LEN]))


def token_amount_json(raw: int, decimals: int) -> dict[str, Any]:
    text = ui_amount_string(raw, decimals)
    return {"amount": str(raw), "decimals": decimals, "uiAmount": float(text), "uiAmountString": text}


def program_name(owner: Pubkey) -> str:
    return "spl-token-2022" if owner == TOKEN_2022_PROGRAM_ID else "spl-token"


def parsed_token_data(account: Account, decimals_of: Any) -> dict[str, Any] | None:
    """The ``data`` object of a jsonParsed token account or mint, or ``None`` if neither."""
    kind = account_kind(account)
    space = len(account.data)
    if kind == "mint":
        mint = parse_mint(account)
        assert mint is not None
        info: dict[str, Any] = {
            "decimals": mint.decimals, "freezeAuthority": _opt(mint.freeze_authority),
            "isInitialized": mint.is_initialized, "mintAuthority": _opt(mint.mint_authority),
            "supply": str(mint.supply),
        }
        return {"program": program_name(account.owner), "parsed": {"info": info, "type": "mint"}, "space": space}
    if kind == "account":
        state = parse_token_account(account)
        assert state is not None
        decimals = decimals_of(state.mint)
        info = {
            "isNative": state.is_native is not None, "mint": str(state.mint), "owner": str(state.owner),
            "state": "frozen" if int(state.state) == 2 else "initialized",
            "tokenAmount": token_amount_json(state.amount, decimals),
        }
        if state.delegate is not None:
            info["delegate"] = str(state.delegate)
            info["delegatedAmount"] = token_amount_json(state.delegated_amount, decimals)
        if state.is_native is not None:
            info["rentExemptReserve"] = token_amount_json(state.is_native, decimals)
        if state.close_authority is not None:
            info["closeAuthority"] = str(state.close_authority)
        if space > ACCOUNT_LEN:
            info["extensions"] = [{"extension": "immutableOwner"}]
        return {"program": program_name(account.owner), "parsed": {"info": info, "type": "account"}, "space": space}
    return None


def _opt(key: Pubkey | None) -> str | None:
    return str(key) if key is not None else None


# --------------------------------------------------------------------------- errors


def error_json(err: Any) -> Any:
    """A solders ``TransactionErrorType`` in its RPC JSON form (``"BlockhashNotFound"``, …)."""
    if err is None:
        return None
    return json.loads(RpcSimulateTransactionResult(err=err).to_json())["err"]


_FIELDLESS_MESSAGES = {
    "AccountInUse": "Account in use",
    "AccountLoadedTwice": "Account loaded twice",
    "AccountNotFound": "Attempt to debit an account but found no record of a prior credit.",
    "ProgramAccountNotFound": "Attempt to load a program that does not exist",
    "InsufficientFundsForFee": "Insufficient funds for fee",
    "InvalidAccountForFee": "This account may not be used to pay transaction fees",
    "AlreadyProcessed": "This transaction has already been processed",
    "BlockhashNotFound": "Blockhash not found",
    "SignatureFailure": "Transaction did not pass signature verification",
    "InvalidAccountIndex": "Transaction contains an invalid account reference",
    "SanitizeFailure": "Transaction failed to sanitize accounts offsets correctly",
    "WouldExceedMaxBlockCostLimit": "Transaction would exceed max Block Cost Limit",
}
_INSTRUCTION_MESSAGES = {
    "GenericError": "generic instruction error",
    "InvalidArgument": "invalid program argument",
    "InvalidInstructionData": "invalid instruction data",
    "InvalidAccountData": "invalid account data for instruction",
    "AccountDataTooSmall": "account data too small for instruction",
    "InsufficientFunds": "insufficient funds for instruction",
    "IncorrectProgramId": "incorrect program id for instruction",
    "MissingRequiredSignature": "missing required signature for instruction",
    "AccountAlreadyInitialized": "instruction requires an uninitialized account",
    "UninitializedAccount": "instruction requires an initialized account",
    "InvalidAccountOwner": "Invalid account owner",
    "IllegalOwner": "Provided owner is not allowed",
    "ComputationalBudgetExceeded": "Computational budget exceeded",
    "InvalidSeeds": "Provided seeds do not result in a valid address",
    "ExternalAccountLamportSpend": "instruction spent from the balance of an account it does not own",
    "ReadonlyLamportChange": "instruction changed the balance of a read-only account",
    "ReadonlyDataModified": "instruction modified data of a read-only account",
    "UnbalancedInstruction": "sum of account balances before and after instruction do not match",
}


def error_message(err: Any) -> str:
    """What a validator prints for a transaction error (used after ``Transaction simulation failed: ``)."""
    if isinstance(err, str):
        return _FIELDLESS_MESSAGES.get(err, _words(err))
    if isinstance(err, dict) and "InstructionError" in err:
        index, inner = err["InstructionError"]
        if isinstance(inner, dict) and "Custom" in inner:
            detail = f"custom program error: {inner['Custom']:#x}"
        elif isinstance(inner, str):
            detail = _INSTRUCTION_MESSAGES.get(inner, _words(inner).lower())
        else:
            detail = json.dumps(inner)
        return f"Error processing Instruction {index}: {detail}"
    if isinstance(err, dict) and "InsufficientFundsForRent" in err:
        return f"Transaction results in an account ({err['InsufficientFundsForRent']['account_index']}) " \
               "with insufficient funds for rent"
    return json.dumps(err)


def _words(name: str) -> str:
    out = "".join(" " + c.lower() if c.isupper() and i else c for i, c in enumerate(name))
    return out[:1].upper() + out[1:]


@dataclass(frozen=True)
class RpcError(Exception):
    """A JSON-RPC error object to return (HTTP 200) instead of a result."""

    code: int
    message: str
    data: Any = None

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error
