"""The Solana JSON-RPC methods the sandbox answers, one function per method.

Each handler takes the ledger and the request's ``params`` list and returns the
``result`` value (already JSON-shaped) or raises :class:`RpcError`. Results are
built with solders' own response types where they match the wire format, so
solana-py (which parses every reply with solders) is guaranteed to read them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from solders.account_decoder import UiTokenAmount
from solders.hash import Hash
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.rpc.responses import (
    GetBalanceResp,
    GetLatestBlockhashResp,
    GetSignatureStatusesResp,
    GetTransactionResp,
    GetVersionResp,
    RpcBlockhash,
    RpcResponseContext,
    RpcSimulateTransactionResult,
    RpcVersionInfo,
    SimulateTransactionResp,
)
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from solders.transaction_status import (
    EncodedConfirmedTransactionWithStatusMeta,
    EncodedTransactionWithStatusMeta,
    TransactionConfirmationStatus,
    TransactionStatus,
    UiCompiledInstruction,
    UiInnerInstructions,
    UiLoadedAddresses,
    UiRawMessage,
    UiTransaction,
    UiTransactionStatusMeta,
    UiTransactionTokenBalance,
)

from puppet_engine.sandbox.chain.encoding import (
    U64_MAX,
    RpcError,
    account_kind,
    b58encode,
    error_json,
    error_message,
    parse_mint,
    parse_token_account,
    parsed_token_data,
    token_amount_json,
)
from puppet_engine.sandbox.chain.ledger import FINALIZED_DEPTH, Ledger, Simulation, TokenBalance
from puppet_engine.solana.tokens import TOKEN_PROGRAMS, ui_amount_string
from puppet_engine.solana.wallet import b58decode

SOLANA_CORE_VERSION = "2.2.16"
FEATURE_SET = 3073396398
MAX_AIRDROP_LAMPORTS = 1_000 * 10**9

Handler = Callable[[Ledger, list[Any]], Any]
METHODS: dict[str, Handler] = {}


def method(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        METHODS[name] = fn
        return fn
    return register


# --------------------------------------------------------------------------- helpers


def _result(resp: Any) -> Any:
    """The ``result`` member of a solders response (they serialise a whole envelope)."""
    return json.loads(resp.to_json())["result"]


def _ctx(ledger: Ledger) -> RpcResponseContext:
    return RpcResponseContext(ledger.slot, SOLANA_CORE_VERSION)


def _contextful(ledger: Ledger, value: Any) -> dict[str, Any]:
    return {"context": {"slot": ledger.slot, "apiVersion": SOLANA_CORE_VERSION}, "value": value}


def _config(params: list[Any], index: int) -> dict[str, Any]:
    value = params[index] if len(params) > index else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RpcError(-32602, f"Invalid params: expected a config object at position {index}")
    return value


def _pubkey(value: Any) -> Pubkey:
    if not isinstance(value, str):
        raise RpcError(-32602, "Invalid params: expected a base58 public key string")
    try:
        return Pubkey.from_string(value)
    except ValueError:
        raise RpcError(-32602, "Invalid param: WrongSize" if _b58_ok(value) else "Invalid param: Invalid") from None


def _b58_ok(text: str) -> bool:
    return all(c in "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz" for c in text)


def _signature(value: Any) -> Signature:
    try:
        return Signature.from_string(value)
    except (ValueError, TypeError):
        raise RpcError(-32602, "Invalid param: Invalid") from None


def _decode_tx(params: list[Any], encoding: str) -> VersionedTransaction:
    if not params or not isinstance(params[0], str):
        raise RpcError(-32602, "Invalid params: missing transaction")
    try:
        raw = base64.b64decode(params[0], validate=True) if encoding == "base64" else b58decode(params[0])
    except ValueError as exc:
        raise RpcError(-32602, f"invalid {encoding} encoding: {exc}") from None
    try:
        tx = VersionedTransaction.from_bytes(raw)
    except ValueError:
        raise RpcError(-32602, "failed to deserialize solana_transaction::versioned::VersionedTransaction: "
                               "io error: failed to fill whole buffer") from None
    try:
        tx.sanitize()
    except Exception:  # solders raises its own SanitizeError type
        raise RpcError(-32602, "invalid transaction: Transaction failed to sanitize accounts offsets correctly") \
            from None
    return tx


def account_json(ledger: Ledger, account: Any, encoding: str) -> dict[str, Any]:
    """One account in the RPC's ``UiAccount`` shape for the requested encoding."""
    data: Any
    parsed = parsed_token_data(account, ledger.decimals_of) if encoding == "jsonParsed" else None
    if parsed is not None:
        data = parsed
    else:
        data = [base64.b64encode(bytes(account.data)).decode(), "base64"]
    return {"data": data, "executable": account.executable, "lamports": account.lamports,
            "owner": str(account.owner), "rentEpoch": U64_MAX, "space": len(account.data)}


def _encoding(config: dict[str, Any], default: str = "base64") -> str:
    encoding = config.get("encoding") or default
    if encoding not in ("base64", "base58", "jsonParsed", "json", "base64+zstd"):
        raise RpcError(-32602, f"Invalid params: unknown variant `{encoding}`")
    return "base64" if encoding == "base64+zstd" else encoding


# --------------------------------------------------------------------------- cluster


@method("getHealth")
def get_health(ledger: Ledger, params: list[Any]) -> Any:
    return "ok"


@method("getVersion")
def get_version(ledger: Ledger, params: list[Any]) -> Any:
    return _result(GetVersionResp(RpcVersionInfo(SOLANA_CORE_VERSION, FEATURE_SET)))


@method("getSlot")
def get_slot(ledger: Ledger, params: list[Any]) -> Any:
    return ledger.slot


@method("getBlockHeight")
def get_block_height(ledger: Ledger, params: list[Any]) -> Any:
    return ledger.block_height


@method("getEpochInfo")
def get_epoch_info(ledger: Ledger, params: list[Any]) -> Any:
    slot, per_epoch = ledger.slot, 432_000
    return {"absoluteSlot": slot, "blockHeight": ledger.block_height, "epoch": slot // per_epoch,
            "slotIndex": slot % per_epoch, "slotsInEpoch": per_epoch, "transactionCount": len(ledger.records)}


@method("getLatestBlockhash")
def get_latest_blockhash(ledger: Ledger, params: list[Any]) -> Any:
    blockhash, last_valid = ledger.latest_blockhash()
    return _result(GetLatestBlockhashResp(RpcBlockhash(blockhash, last_valid), _ctx(ledger)))


@method("isBlockhashValid")
def is_blockhash_valid(ledger: Ledger, params: list[Any]) -> Any:
    try:
        blockhash = Hash.from_string(params[0])
    except (ValueError, IndexError, TypeError):
        raise RpcError(-32602, "Invalid param: Invalid") from None
    return _contextful(ledger, ledger.blockhash_valid(blockhash))


@method("getMinimumBalanceForRentExemption")
def get_minimum_balance(ledger: Ledger, params: list[Any]) -> Any:
    size = params[0] if params else None
    if not isinstance(size, int) or size < 0:
        raise RpcError(-32602, "Invalid params: expected a data length (usize)")
    return ledger.rent(size)


# --------------------------------------------------------------------------- accounts


@method("getBalance")
def get_balance(ledger: Ledger, params: list[Any]) -> Any:
    key = _pubkey(params[0] if params else None)
    return _result(GetBalanceResp(ledger.balance(key), _ctx(ledger)))


@method("getAccountInfo")
def get_account_info(ledger: Ledger, params: list[Any]) -> Any:
    key = _pubkey(params[0] if params else None)
    encoding = _encoding(_config(params, 1), "base58")
    account = ledger.account(key)
    if account is None or account.lamports == 0:
        return _contextful(ledger, None)
    return _contextful(ledger, account_json(ledger, account, encoding))


@method("getMultipleAccounts")
def get_multiple_accounts(ledger: Ledger, params: list[Any]) -> Any:
    keys = params[0] if params and isinstance(params[0], list) else None
    if keys is None:
        raise RpcError(-32602, "Invalid params: expected a list of public keys")
    encoding = _encoding(_config(params, 1), "base64")
    values = []
    for text in keys:
        account = ledger.account(_pubkey(text))
        values.append(None if account is None or account.lamports == 0 else account_json(ledger, account, encoding))
    return _contextful(ledger, values)


@method("getTokenAccountsByOwner")
def get_token_accounts_by_owner(ledger: Ledger, params: list[Any]) -> Any:
    owner = _pubkey(params[0] if params else None)
    selector = _config(params, 1)
    encoding = _encoding(_config(params, 2), "base64")
    if "mint" in selector:
        mint = _pubkey(selector["mint"])
        mint_account = ledger.account(mint)
        if account_kind(mint_account) != "mint":
            raise RpcError(-32602, "Invalid param: could not find mint")
        found = ledger.token_accounts(owner, mint=mint)
    elif "programId" in selector:
        program = _pubkey(selector["programId"])
        if program not in TOKEN_PROGRAMS:
            raise RpcError(-32602, "Invalid param: unrecognized Token program id")
        found = ledger.token_accounts(owner, program_id=program)
    else:
        raise RpcError(-32602, "Invalid params: expected {\"mint\": …} or {\"programId\": …}")
    return _contextful(ledger, [{"pubkey": str(address), "account": account_json(ledger, account, encoding)}
                                for address, account in found])


@method("getTokenAccountBalance")
def get_token_account_balance(ledger: Ledger, params: list[Any]) -> Any:
    account = ledger.account(_pubkey(params[0] if params else None))
    if account is None:
        raise RpcError(-32602, "Invalid param: could not find account")
    state = parse_token_account(account)
    if state is None:
        raise RpcError(-32602, "Invalid param: not a Token account")
    return _contextful(ledger, token_amount_json(state.amount, ledger.decimals_of(state.mint)))


@method("getTokenSupply")
def get_token_supply(ledger: Ledger, params: list[Any]) -> Any:
    mint = parse_mint(ledger.account(_pubkey(params[0] if params else None)))
    if mint is None:
        raise RpcError(-32602, "Invalid param: not a Token mint")
    return _contextful(ledger, token_amount_json(mint.supply, mint.decimals))


# --------------------------------------------------------------------------- transactions


@method("requestAirdrop")
def request_airdrop(ledger: Ledger, params: list[Any]) -> Any:
    key = _pubkey(params[0] if params else None)
    lamports = params[1] if len(params) > 1 else None
    if not isinstance(lamports, int) or lamports <= 0:
        raise RpcError(-32602, "Invalid params: expected lamports (u64)")
    if lamports > MAX_AIRDROP_LAMPORTS:
        raise RpcError(-32603, "Internal error")  # what devnet answers for a too-large airdrop
    outcome = ledger.airdrop(key, lamports)
    return str(outcome.signature)


def simulation_result(sim: Simulation, *, accounts: list[Any] | None = None,
                      replacement: RpcBlockhash | None = None, inner: bool = False) -> RpcSimulateTransactionResult:
    return RpcSimulateTransactionResult(
        err=sim.err, logs=sim.logs, accounts=accounts, units_consumed=sim.units,
        inner_instructions=_ui_inner(sim.inner_instructions) if inner else None,
        replacement_blockhash=replacement, fee=sim.fee if sim.err is None else None,
    )


@method("sendTransaction")
def send_transaction(ledger: Ledger, params: list[Any]) -> Any:
    config = _config(params, 1)
    tx = _decode_tx(params, config.get("encoding") or "base58")
    if not config.get("skipPreflight", False):
        if not all(tx.verify_with_results()):
            raise RpcError(-32003, "Transaction signature verification failure")
        sim = ledger.simulate(tx, sig_verify=False)
        if sim.err is not None:
            data = json.loads(simulation_result(sim).to_json())
            raise RpcError(-32002, f"Transaction simulation failed: {error_message(error_json(sim.err))}", data)
    outcome = ledger.process(tx)
    return str(outcome.signature)


@method("simulateTransaction")
def simulate_transaction(ledger: Ledger, params: list[Any]) -> Any:
    config = _config(params, 1)
    tx = _decode_tx(params, config.get("encoding") or "base58")
    sig_verify = bool(config.get("sigVerify", False))
    replacement = None
    if config.get("replaceRecentBlockhash"):
        if sig_verify:
            raise RpcError(-32602, "sigVerify may not be used with replaceRecentBlockhash")
        blockhash, last_valid = ledger.latest_blockhash()
        tx = _with_blockhash(tx, blockhash)
        replacement = RpcBlockhash(blockhash, last_valid)
    sim = ledger.simulate(tx, sig_verify=sig_verify)
    accounts = None
    wanted = config.get("accounts") or None
    if wanted:
        accounts = [sim.post_accounts.get(key) or ledger.account(key)
                    for key in (_pubkey(a) for a in wanted.get("addresses", []))]
    value = simulation_result(sim, accounts=accounts, replacement=replacement,
                              inner=bool(config.get("innerInstructions")))
    return _result(SimulateTransactionResp(value, _ctx(ledger)))  # type: ignore[call-arg]


def _with_blockhash(tx: VersionedTransaction, blockhash: Hash) -> VersionedTransaction:
    msg = tx.message
    new: Message | MessageV0
    if isinstance(msg, MessageV0):
        new = MessageV0(msg.header, msg.account_keys, blockhash, msg.instructions, msg.address_table_lookups)
    else:
        header = msg.header
        new = Message.new_with_compiled_instructions(
            header.num_required_signatures, header.num_readonly_signed_accounts,
            header.num_readonly_unsigned_accounts, msg.account_keys, blockhash, msg.instructions)
    return VersionedTransaction.populate(new, tx.signatures)


@method("getSignatureStatuses")
def get_signature_statuses(ledger: Ledger, params: list[Any]) -> Any:
    sigs = params[0] if params and isinstance(params[0], list) else None
    if sigs is None or len(sigs) > 256:
        raise RpcError(-32602, "Invalid params: expected a list of at most 256 signatures")
    ledger.nudge()  # the cluster keeps producing blocks while clients poll, even under a frozen clock
    values: list[TransactionStatus | None] = []
    for text in sigs:
        found = ledger.status(_signature(text))
        if found is None:
            values.append(None)
            continue
        record, depth = found
        if depth >= FINALIZED_DEPTH:
            level, confirmations = TransactionConfirmationStatus.Finalized, None
        else:
            level = TransactionConfirmationStatus.Confirmed if depth >= 1 else TransactionConfirmationStatus.Processed
            confirmations = depth
        values.append(TransactionStatus(record.slot, confirmations, record.err, record.err, level))
    return _result(GetSignatureStatusesResp(values, _ctx(ledger)))


@method("getTransaction")
def get_transaction(ledger: Ledger, params: list[Any]) -> Any:
    signature = _signature(params[0] if params else None)
    config = params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
    encoding = config.get("encoding") or (params[1] if len(params) > 1 and isinstance(params[1], str) else "json")
    commitment = config.get("commitment") or "finalized"
    if commitment == "processed":
        raise RpcError(-32602, "Method does not support commitment below `confirmed`")
    found = ledger.status(signature)
    if found is None:
        return None
    record, depth = found
    if depth < 1 or (commitment == "finalized" and depth < FINALIZED_DEPTH):
        return None
    version = record.tx.version()
    if isinstance(version, int) and config.get("maxSupportedTransactionVersion") is None:
        raise RpcError(-32015, f"Transaction version ({version}) is not supported by the requesting client. "
                               "Please try the request again with the following configuration parameter: "
                               "\"maxSupportedTransactionVersion\": 0")
    encoded: Any = record.tx if encoding in ("base64", "base58") else _ui_transaction(record.tx)
    meta = UiTransactionStatusMeta(
        record.err, record.fee, record.pre_balances, record.post_balances,
        inner_instructions=_ui_inner(record.inner_instructions), log_messages=record.logs,
        pre_token_balances=[_ui_token_balance(b) for b in record.pre_token],
        post_token_balances=[_ui_token_balance(b) for b in record.post_token],
        rewards=[], loaded_addresses=UiLoadedAddresses([], []), compute_units_consumed=record.units,
    )
    value = EncodedConfirmedTransactionWithStatusMeta(
        record.slot, EncodedTransactionWithStatusMeta(encoded, meta, version), record.block_time)
    result = _result(GetTransactionResp(value))
    ej = error_json(record.err)
    result["meta"]["status"] = {"Err": ej} if ej is not None else {"Ok": None}
    if encoding == "base58":
        result["transaction"] = [b58encode(bytes(record.tx)), "base58"]
    return result


def _ui_transaction(tx: VersionedTransaction) -> UiTransaction:
    msg = tx.message
    instructions = [UiCompiledInstruction(ix.program_id_index, bytes(ix.accounts), b58encode(bytes(ix.data)), None)
                    for ix in msg.instructions]
    lookups: list[Any] | None = [] if isinstance(msg, MessageV0) else None
    raw = UiRawMessage(msg.header, msg.account_keys, msg.recent_blockhash, instructions, lookups)
    return UiTransaction(tx.signatures, raw)


def _ui_inner(inner: list[Any]) -> list[UiInnerInstructions]:
    out = []
    for index, group in enumerate(inner):
        if not group:
            continue
        items = []
        for inner_ix in group:
            ix = inner_ix.instruction()
            items.append(UiCompiledInstruction(ix.program_id_index, bytes(ix.accounts), b58encode(bytes(ix.data)),
                                               inner_ix.stack_height()))
        out.append(UiInnerInstructions(index, items))
    return out


def _ui_token_balance(balance: TokenBalance) -> UiTransactionTokenBalance:
    text = ui_amount_string(balance.amount, balance.decimals)
    amount = UiTokenAmount(float(text), balance.decimals, str(balance.amount), text)
    return UiTransactionTokenBalance(balance.account_index, balance.mint, amount, balance.owner, balance.program_id)
