"""The sandbox Solana RPC, driven by solana-py's own AsyncClient over a loopback port."""

from __future__ import annotations

import base64

import httpx2
import pytest
from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.core import RPCException, TransactionExpiredBlockheightExceededError
from solana.rpc.models import TokenAccountOpts, TxOpts
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.token.state import TokenAccount
from solders.transaction import VersionedTransaction

from puppet_engine.clock import VirtualClock
from puppet_engine.errors import RateLimited, ServiceUnavailable
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.serving import BackgroundServer
from puppet_engine.solana.rpc import SolanaRpc
from puppet_engine.solana.tokens import TOKEN_2022_PROGRAM_ID, USDC_MINT, sandbox_mint

SOL = 1_000_000_000
GLITCH = sandbox_mint("GLITCH")


@pytest.fixture
async def node():
    sandbox = Sandbox(clock=VirtualClock())
    server = BackgroundServer(sandbox.app)
    await server.start()
    client = AsyncClient(f"{server.url}/solana")
    admin = httpx2.AsyncClient(base_url=server.url)
    try:
        yield server, client, admin
    finally:
        await client.close()
        await admin.aclose()
        await server.stop()


async def funded(client: AsyncClient, sol: float = 2.0) -> Keypair:
    kp = Keypair()
    resp = await client.request_airdrop(kp.pubkey(), int(sol * SOL))
    await client.confirm_transaction(resp.value, Confirmed, sleep_seconds=0)
    return kp


async def transfer_tx(client: AsyncClient, payer: Keypair, to: Pubkey, lamports: int):
    latest = (await client.get_latest_blockhash()).value
    ix = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to, lamports=lamports))
    msg = MessageV0.try_compile(payer.pubkey(), [ix], [], latest.blockhash)
    return VersionedTransaction(msg, [payer]), latest.last_valid_block_height


async def test_cluster_basics_and_airdrop(node):
    _, client, _ = node
    assert await client.is_connected()
    version = (await client.get_version()).value
    assert version.solana_core
    slot = (await client.get_slot()).value
    height = (await client.get_block_height()).value
    assert slot > height > 0
    kp = await funded(client, 2.5)
    assert (await client.get_balance(kp.pubkey())).value == int(2.5 * SOL)
    rent = (await client.get_minimum_balance_for_rent_exemption(165)).value
    assert rent == 2_039_280


async def test_sol_transfer_is_confirmed_and_recorded(node):
    _, client, _ = node
    payer = await funded(client)
    to = Pubkey.new_unique()
    tx, last_valid = await transfer_tx(client, payer, to, SOL // 4)
    sig = (await client.send_transaction(tx)).value
    statuses = await client.confirm_transaction(sig, Confirmed, sleep_seconds=0, last_valid_block_height=last_valid)
    assert statuses.value[0].err is None
    assert (await client.get_balance(to)).value == SOL // 4

    with pytest.raises(RPCException) as info:  # v0 needs maxSupportedTransactionVersion
        await client.get_transaction(sig, commitment=Confirmed)
    assert "maxSupportedTransactionVersion" in str(info.value)

    found = (await client.get_transaction(sig, commitment=Confirmed, max_supported_transaction_version=0)).value
    meta = found.transaction.meta
    assert meta.err is None and meta.fee == 5000
    assert meta.pre_balances[0] - meta.post_balances[0] == SOL // 4 + 5000
    assert meta.post_balances[1] == SOL // 4
    assert any("11111111111111111111111111111111 success" in line for line in meta.log_messages)
    as_b64 = (await client.get_transaction(sig, "base64", Confirmed, 0)).value
    assert as_b64.transaction.transaction.signatures[0] == sig


async def test_commitment_progresses_with_slots(node):
    _, client, _ = node
    payer = await funded(client)
    tx, _ = await transfer_tx(client, payer, Pubkey.new_unique(), SOL // 100)
    sig = (await client.send_raw_transaction(bytes(tx), TxOpts(skip_preflight=True))).value
    seen = []
    for _ in range(40):
        status = (await client.get_signature_statuses([sig])).value[0]
        seen.append(str(status.confirmation_status))
        if status.confirmations is None:
            break
    assert seen[0].endswith(("Processed", "Confirmed")) and seen[-1].endswith("Finalized")
    assert any(s.endswith("Confirmed") for s in seen) and len(seen) >= 32
    assert (await client.get_transaction(sig, max_supported_transaction_version=0)).value is not None


async def test_token_accounts_parsed_for_both_token_programs(node):
    _, client, admin = node
    owner = Keypair().pubkey()
    r1 = await admin.post("/sandbox/solana/mint", json={"owner": str(owner), "symbol": "USDC", "amount": 12.5})
    r2 = await admin.post("/sandbox/solana/mint", json={"owner": str(owner), "symbol": "GLITCH", "amount": 3})
    assert r1.status_code == r2.status_code == 200

    parsed = (await client.get_token_accounts_by_owner_json_parsed(
        owner, TokenAccountOpts(program_id=TOKEN_2022_PROGRAM_ID))).value
    assert len(parsed) == 1
    info = parsed[0].account.data.parsed["info"]
    assert info["mint"] == GLITCH and info["owner"] == str(owner)
    assert info["tokenAmount"] == {"amount": "300000000", "decimals": 8, "uiAmount": 3.0, "uiAmountString": "3"}
    assert parsed[0].account.data.program == "spl-token-2022"

    raw = (await client.get_token_accounts_by_owner(owner, TokenAccountOpts(mint=Pubkey.from_string(USDC_MINT)))).value
    state = TokenAccount.from_bytes(bytes(raw[0].account.data))
    assert state.amount == 12_500_000 and str(state.owner) == str(owner)
    balance = (await client.get_token_account_balance(raw[0].pubkey)).value
    assert (balance.amount, balance.decimals, balance.ui_amount_string) == ("12500000", 6, "12.5")

    mint = (await client.get_account_info_json_parsed(Pubkey.from_string(GLITCH))).value
    assert mint.data.parsed["type"] == "mint" and mint.data.parsed["info"]["decimals"] == 8
    with pytest.raises(RPCException, match="not a Token account"):
        await client.get_token_account_balance(Pubkey.from_string(GLITCH))
    with pytest.raises(RPCException, match="could not find account"):
        await client.get_token_account_balance(owner)


async def test_failed_transaction_preflight_and_on_chain(node):
    _, client, _ = node
    payer = await funded(client, 1.0)
    tx, last_valid = await transfer_tx(client, payer, Pubkey.new_unique(), 5 * SOL)
    with pytest.raises(RPCException) as info:
        await client.send_transaction(tx)
    failure = info.value.args[0]
    assert failure.message.startswith("Transaction simulation failed: Error processing Instruction 0: "
                                      "custom program error: 0x1")
    assert "InstructionError" in str(failure.data.err)
    assert any("insufficient lamports" in line for line in failure.data.logs)
    assert (await client.get_balance(payer.pubkey())).value == SOL  # nothing happened

    sig = (await client.send_raw_transaction(bytes(tx), TxOpts(skip_preflight=True))).value
    statuses = await client.confirm_transaction(sig, Confirmed, sleep_seconds=0, last_valid_block_height=last_valid)
    assert statuses.value[0].err is not None  # confirm_transaction does not raise: the caller must look
    assert (await client.get_balance(payer.pubkey())).value == SOL - 5000  # the fee is still charged


async def test_replay_is_already_processed_and_lands_once(node):
    _, client, _ = node
    payer = await funded(client)
    to = Pubkey.new_unique()
    tx, _ = await transfer_tx(client, payer, to, 1_000_000)
    first = (await client.send_transaction(tx)).value
    again = (await client.send_raw_transaction(bytes(tx), TxOpts(skip_preflight=True))).value
    assert again == first
    with pytest.raises(RPCException) as info:
        await client.send_transaction(tx)
    assert "already been processed" in info.value.args[0].message
    assert (await client.get_balance(to)).value == 1_000_000


async def test_blockhash_expires_after_150_blocks(node):
    _, client, admin = node
    payer = await funded(client)
    tx, last_valid = await transfer_tx(client, payer, Pubkey.new_unique(), SOL // 100)
    await admin.post("/sandbox/solana/advance", json={"seconds": 61})  # 152 slots at 400 ms
    assert (await client.get_block_height()).value > last_valid
    with pytest.raises(RPCException) as info:
        await client.send_transaction(tx)
    assert info.value.args[0].message == "Transaction simulation failed: Blockhash not found"
    sig = (await client.send_raw_transaction(bytes(tx), TxOpts(skip_preflight=True))).value
    with pytest.raises(TransactionExpiredBlockheightExceededError):
        await client.confirm_transaction(sig, Confirmed, sleep_seconds=0, last_valid_block_height=last_valid)


async def test_simulate_unsigned_and_replace_blockhash(node):
    _, client, _ = node
    payer = await funded(client)
    ix = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=Pubkey.new_unique(), lamports=SOL // 100))
    msg = MessageV0.try_compile(payer.pubkey(), [ix], [], (await client.get_latest_blockhash()).value.blockhash)
    unsigned = VersionedTransaction.populate(msg, [payer.sign_message(b"wrong")])
    sim = (await client.simulate_transaction(unsigned)).value
    assert sim.err is None and sim.units_consumed > 0
    assert (await client.simulate_transaction(unsigned, sig_verify=True)).value.err is not None
    replaced = (await client.simulate_transaction(unsigned, replace_recent_blockhash=True)).value
    assert replaced.err is None and replaced.replacement_blockhash is not None


async def test_envelope_batches_and_errors(node):
    _, _, admin = node
    batch = [{"jsonrpc": "2.0", "id": 1, "method": "getSlot"},
             {"jsonrpc": "2.0", "id": 2, "method": "noSuchMethod"},
             {"jsonrpc": "2.0", "id": 3, "method": "getBalance", "params": ["not-a-key"]},
             {"jsonrpc": "2.0", "id": 4, "method": "getHealth"}]
    resp = await admin.post("/solana", json=batch)
    assert resp.status_code == 200
    one, two, three, four = resp.json()
    assert four["result"] == "ok"
    assert isinstance(one["result"], int) and one["id"] == 1
    assert two["error"]["code"] == -32601
    assert three["error"]["code"] == -32602
    bad = await admin.post("/solana", content=b"{nope", headers={"content-type": "application/json"})
    assert bad.status_code == 200 and bad.json()["error"]["code"] == -32700
    wrong = await admin.post("/solana", json={"jsonrpc": "2.0", "id": 9, "method": "sendTransaction",
                                              "params": [base64.b64encode(b"\x01\x02").decode(),
                                                         {"encoding": "base64"}]})
    assert wrong.json()["error"]["code"] == -32602
    assert (await admin.get("/solana")).status_code == 405


async def test_injected_faults_reach_clients_as_provider_errors(node):
    server, client, admin = node
    await admin.post("/sandbox/faults", json={"service": "solana", "status": 429, "count": 1})
    with pytest.raises(SolanaRpcException):
        await client.get_slot()
    rpc = SolanaRpc(f"{server.url}/solana")
    try:
        await admin.post("/sandbox/faults", json={"service": "solana", "status": 429, "count": 1})
        with pytest.raises(RateLimited) as limited:
            await rpc.block_height()
        assert limited.value.retry_after == 1.0
        await admin.post("/sandbox/faults", json={"service": "solana", "status": 503, "count": 1})
        with pytest.raises(ServiceUnavailable):
            await rpc.lamports(Pubkey.new_unique())
        assert await rpc.block_height() > 0
    finally:
        await rpc.aclose()


async def test_snapshot_keeps_balances_and_statuses_across_restarts(tmp_path):
    path = tmp_path / "sandbox.json"
    first = Sandbox(SandboxConfig(snapshot_path=path), clock=VirtualClock())
    server = BackgroundServer(first.app)
    await server.start()
    client = AsyncClient(f"{server.url}/solana")
    async with httpx2.AsyncClient(base_url=server.url) as admin:
        payer = await funded(client)
        to = Pubkey.new_unique()
        tx, _ = await transfer_tx(client, payer, to, SOL // 10)
        sig = (await client.send_transaction(tx)).value
        await admin.post("/sandbox/solana/mint", json={"owner": str(to), "symbol": "GLITCH", "amount": 7})
        await admin.post("/sandbox/jupiter/tokens/WOOF/delist")
    slot = (await client.get_slot()).value
    await client.close()
    await server.stop()

    second = Sandbox(SandboxConfig(snapshot_path=path), clock=VirtualClock())
    server = BackgroundServer(second.app)
    await server.start()
    client = AsyncClient(f"{server.url}/solana")
    try:
        assert (await client.get_balance(to)).value == SOL // 10
        assert (await client.get_slot()).value >= slot
        status = (await client.get_signature_statuses([sig])).value[0]
        assert status is not None and status.err is None
        held = (await client.get_token_accounts_by_owner_json_parsed(
            to, TokenAccountOpts(program_id=TOKEN_2022_PROGRAM_ID))).value
        assert held[0].account.data.parsed["info"]["tokenAmount"]["uiAmountString"] == "7"
        async with httpx2.AsyncClient(base_url=server.url) as admin:
            tokens = {t["symbol"]: t for t in (await admin.get("/sandbox/solana/tokens")).json()["tokens"]}
        assert tokens["WOOF"]["listed"] is False
    finally:
        await client.close()
        await server.stop()
