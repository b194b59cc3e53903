"""The Centrapay API client: one typed method per call the service makes.

Every request first takes a token from the shared bucket; a 429 pauses that bucket for
everyone. Answers that are not successes become the exceptions of ``distributor.errors``
here, and nowhere else. Every answer (or its absence) is counted here too: in the process's
metrics, and in the answer log for the batch the call serves. Request bodies (which carry
PINs) and the API key are never logged.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx

from distributor import metrics
from distributor.answer_log import AnswerLog
from distributor.constants import CATEGORY_GIFTCARD
from distributor.errors import (
    CentrapayBadRequest,
    CentrapayConnectionError,
    CentrapayError,
    CentrapayForbidden,
    CentrapayNotFound,
    CentrapayRateLimited,
    CentrapayRejected,
    CentrapayServerError,
    CentrapayTimeout,
    CentrapayUnauthorized,
    TokenWaitTooLong,
)
from distributor.ratelimit import TokenBucket, acquire

logger = logging.getLogger(__name__)


class _NoQueryInRequestLogs(logging.Filter):
    """httpx logs every request's URL (INFO); a card lookup carries the card number in its
    query (``externalId``), so the query is dropped from the line, at any level."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                arg.copy_with(query=None) if isinstance(arg, httpx.URL) else arg
                for arg in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_NoQueryInRequestLogs())

DEFAULT_RETRY_AFTER_SECONDS = 1.0


@dataclass(frozen=True, kw_only=True)
class Asset:
    """A giftcard asset held by an account."""

    id: str
    account_id: str
    external_id: str | None
    asset_type: str
    status: str | None


@dataclass(frozen=True, kw_only=True)
class Transfer:
    """An asset transfer and where it stands."""

    id: str
    asset_id: str | None
    status: str
    created_at: str | None = None


@dataclass(frozen=True, kw_only=True)
class TransferOrder:
    """Who a card goes to, and what the recipient's SMS or email says."""

    recipient_alias: str
    message: str | None
    sender_name: str | None
    description: str | None
    notify_url: str | None


@dataclass(frozen=True, kw_only=True)
class Loaded:
    """The answer to a load: the asset, and the transfer when one was asked for and made."""

    asset: Asset
    transfer: Transfer | None


@dataclass(frozen=True, kw_only=True)
class TransfersPage:
    """One page of the account's sent-transfers listing."""

    transfers: list[Transfer]
    next_page_key: str | None


def _asset(body: dict[str, Any]) -> Asset:
    return Asset(
        id=str(body["id"]),
        account_id=str(body.get("accountId", "")),
        external_id=body.get("externalId"),
        asset_type=str(body.get("type", "")),
        status=body.get("status"),
    )


def _transfer(body: dict[str, Any], *, asset_id: str | None = None) -> Transfer:
    return Transfer(
        id=str(body["id"]),
        asset_id=body.get("assetId", asset_id),
        status=str(body.get("status", "created")),
        created_at=body.get("createdAt"),
    )


def _present(fields: dict[str, str | None]) -> dict[str, str]:
    return {key: value for key, value in fields.items() if value}


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return DEFAULT_RETRY_AFTER_SECONDS


def error_for(response: httpx.Response) -> CentrapayError:
    """The typed exception for a Centrapay answer that is not a success."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = str(body.get("message") or response.reason_phrase)
    status = response.status_code
    if status == 400:
        return CentrapayBadRequest(message, status=400)
    if status == 401:
        return CentrapayUnauthorized(message, status=401)
    if status == 403:
        return CentrapayForbidden(message, code=message, body=body)
    if status == 404:
        return CentrapayNotFound(message, status=404)
    if status == 429:
        return CentrapayRateLimited(message, retry_after=_retry_after(response))
    if status >= 500:
        return CentrapayServerError(message, status=status)
    return CentrapayRejected(message, status=status, code=f"HTTP_{status}")


class CentrapayClient:
    """A connection-pooling client for one Centrapay credential and account.

    Thread-safe: a worker process shares one instance between its threads. ``answers``,
    when given, counts each answer for the batch the call serves, and is closed with the
    client (its last counts written).
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        account_id: str,
        bucket: TokenBucket,
        timeout_seconds: float,
        token_wait_max_seconds: float,
        max_connections: int = 32,
        answers: AnswerLog | None = None,
    ) -> None:
        self.account_id = account_id
        self._bucket = bucket
        self._answers = answers
        self._token_wait_max_seconds = token_wait_max_seconds
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"X-Api-Key": api_key, "Accept": "application/json"},
            timeout=httpx.Timeout(timeout_seconds),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    def close(self) -> None:
        """Close the pooled connections and the answer log."""
        self._http.close()
        if self._answers is not None:
            self._answers.close()

    def load_giftcard(
        self,
        *,
        asset_type: str,
        issuer: str,
        card_number: str,
        pin: str | None,
        description: str | None,
        transfer: TransferOrder | None = None,
    ) -> Loaded:
        """POST /api/external-assets: load a card into our account, and send it on if asked.

        With ``transfer`` it is seed 004's single call: the load carries ``assetTransfer``
        and the answer holds the transfer's id. ``notifyUrl`` and ``description`` ride in
        ``assetTransfer`` too (the transfer's own fields).
        """
        body: dict[str, Any] = {
            "accountId": self.account_id,
            "category": CATEGORY_GIFTCARD,
            "type": asset_type,
            "issuer": issuer,
            "externalId": card_number,
        }
        body.update(_present({"pin": pin, "description": description}))
        if transfer is not None:
            body["assetTransfer"] = {"recipientAlias": transfer.recipient_alias} | _present(
                {
                    "message": transfer.message,
                    "senderName": transfer.sender_name,
                    "notifyUrl": transfer.notify_url,
                }
            )
        answer = self._request("POST", "/api/external-assets", json=body)
        asset = _asset(answer)
        made = answer.get("assetTransfer")
        if not isinstance(made, dict) or not made.get("id"):
            return Loaded(asset=asset, transfer=None)
        return Loaded(asset=asset, transfer=_transfer(made, asset_id=asset.id))

    def get_asset(self, asset_id: str) -> Asset:
        """GET /api/assets/{id}."""
        return _asset(self._request("GET", f"/api/assets/{asset_id}"))

    def find_asset(self, *, card_number: str, asset_type: str) -> Asset | None:
        """Our account's asset for this card (active, or held in a pending transfer), if any.

        One call: the listing's documented ``externalId`` filter, whatever the account holds.
        """
        answer = self._request(
            "GET", f"/api/accounts/{self.account_id}/assets", params={"externalId": card_number}
        )
        for item in answer.get("items", []):
            if item.get("externalId") == card_number and item.get("type") == asset_type:
                return _asset(item)
        return None

    def create_transfer(self, *, asset_id: str, order: TransferOrder) -> Transfer:
        """POST /api/asset-transfers: send a loaded card to its recipient."""
        body: dict[str, Any] = {"assetId": asset_id, "recipientAlias": order.recipient_alias}
        body.update(
            _present(
                {
                    "message": order.message,
                    "senderName": order.sender_name,
                    "description": order.description,
                    "notifyUrl": order.notify_url,
                }
            )
        )
        return _transfer(self._request("POST", "/api/asset-transfers", json=body))

    def get_transfer(self, transfer_id: str) -> Transfer:
        """GET /api/asset-transfers/{id}."""
        return _transfer(self._request("GET", f"/api/asset-transfers/{transfer_id}"))

    def cancel_transfer(self, transfer_id: str) -> Transfer:
        """POST /api/asset-transfers/{id}/cancel: take back a ``created`` or ``sent`` transfer.

        Raises CentrapayForbidden with code INVALID_ASSET_TRANSFER_STATUS when the transfer
        is past cancelling (claimed, expired, returned, cancelled).
        """
        return _transfer(self._request("POST", f"/api/asset-transfers/{transfer_id}/cancel"))

    def sent_transfers_page(self, page_key: str | None = None) -> TransfersPage:
        """One page of GET /api/asset-transfers?senderAccountId=ours (order undocumented)."""
        params = {"senderAccountId": self.account_id}
        if page_key:
            params["pageKey"] = page_key
        answer = self._request("GET", "/api/asset-transfers", params=params)
        items = [item for item in answer.get("items", []) if isinstance(item, dict)]
        return TransfersPage(
            transfers=[_transfer(item) for item in items if item.get("id")],
            next_page_key=answer.get("nextPageKey") or None,
        )

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        reservation = acquire(self._bucket, max_wait_seconds=self._token_wait_max_seconds)
        if not reservation.granted:
            # Come back when a token is within reach, not after the whole wait: by then
            # the reservation succeeds and the bucket stays busy.
            raise TokenWaitTooLong(reservation.wait_seconds - self._token_wait_max_seconds)
        metrics.BUCKET_WAIT.observe(reservation.wait_seconds)
        endpoint = path.split("/")[2] if path.count("/") >= 2 else path
        started = time.monotonic()
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.TimeoutException as exc:
            self._answered(endpoint, "timeout", None)
            raise CentrapayTimeout(f"{method} {path}: no answer in time") from exc
        except httpx.TransportError as exc:
            self._answered(endpoint, "connection", None)
            raise CentrapayConnectionError(f"{method} {path}: {type(exc).__name__}") from exc
        elapsed_ms = (time.monotonic() - started) * 1000
        self._answered(endpoint, str(response.status_code), response.status_code)
        logger.debug("%s %s -> %s in %.0f ms", method, path, response.status_code, elapsed_ms)
        if response.is_success:
            answer = response.json()
            return answer if isinstance(answer, dict) else {}
        error = error_for(response)
        if isinstance(error, CentrapayRateLimited):
            self._bucket.pause_for(error.retry_after)
        raise error

    def _answered(self, endpoint: str, label: str, status: int | None) -> None:
        """Count one answer (``status`` None: none came): in the metrics, and in memory for
        the answer log (no I/O here; the log writes from its own thread)."""
        metrics.CENTRAPAY_CALLS.labels(endpoint=endpoint, status=label).inc()
        if self._answers is not None:
            self._answers.count(status)
