"""Who is calling the X emulator: OAuth 1.0a user context or an app-only bearer token.

OAuth 1.0a requests are verified like X does: known consumer key and access token
(issued together by the admin ``POST /accounts``), HMAC-SHA1 signature over the URL as
the client signed it (``SandboxConfig.x_public_base_url`` + path when set, so a client
pointed at ``https://api.x.com`` through a rewriting transport still verifies; else the
URL as reached), a timestamp within ``skew`` seconds of the sandbox clock, and a nonce
never seen before. Every failure is X's 401 body.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from puppet_engine.sandbox.x import problems as px
from puppet_engine.sandbox.x.oauth import OAuthRequest, parse_authorization, request_params
from puppet_engine.sandbox.x.state import Account, XState


@dataclass(frozen=True)
class Caller:
    """The authenticated party: ``user`` is None for app-only bearer calls."""

    app_id: str  # consumer key of the app
    user: Account | None

    @property
    def user_id(self) -> str | None:
        return self.user.user_id if self.user else None


class Authenticator:
    def __init__(self, state: XState, *, public_base_url: str = "", skew: float = 300.0) -> None:
        self.state = state
        self.public_base_url = public_base_url.rstrip("/")
        self.skew = skew
        self._nonces: dict[tuple[str, str, str], float] = {}

    def signed_url(self, request: Request) -> str:
        """The URL the client signed: the public base URL + the path below the mount, or as reached."""
        if self.public_base_url:
            root = request.scope.get("root_path", "")
            path = request.url.path
            if root and path.startswith(root):
                path = path[len(root):]
            return self.public_base_url + path
        return str(request.url.replace(query=""))

    async def authenticate(self, request: Request, now: float) -> Caller:
        header = request.headers.get("authorization", "")
        if header[:7].lower() == "bearer ":
            app_id = self.state.by_bearer.get(header[7:].strip())
            if app_id is None:
                raise px.unauthorized()
            return Caller(app_id=app_id, user=None)
        oauth = parse_authorization(header)
        if not oauth:
            raise px.unauthorized()
        body = await request.body()
        signed = OAuthRequest(request.method, self.signed_url(request), oauth,
                              request_params(request.url.query, body, request.headers.get("content-type", "")))
        owner_id = self.state.by_consumer.get(signed.consumer_key)
        user_id = self.state.by_token.get(signed.token)
        if owner_id is None or user_id is None or user_id != owner_id:
            raise px.unauthorized()
        account = self.state.accounts[user_id]
        if not signed.verify(account.consumer_secret, account.access_token_secret):
            raise px.unauthorized()
        try:
            timestamp = int(oauth.get("oauth_timestamp", ""))
        except ValueError:
            raise px.unauthorized() from None
        if abs(timestamp - now) > self.skew:
            raise px.unauthorized()
        self._remember_nonce(signed, oauth.get("oauth_nonce", ""), timestamp, now)
        return Caller(app_id=signed.consumer_key, user=account)

    def _remember_nonce(self, signed: OAuthRequest, nonce: str, timestamp: int, now: float) -> None:
        if not nonce:
            raise px.unauthorized()
        key = (signed.consumer_key, signed.token, f"{timestamp}:{nonce}")
        if key in self._nonces:
            raise px.unauthorized()
        if len(self._nonces) > 10_000:  # a nonce older than the skew can never be replayed
            self._nonces = {k: t for k, t in self._nonces.items() if now - t <= 2 * self.skew}
        self._nonces[key] = now
