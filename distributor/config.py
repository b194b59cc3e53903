"""Settings: the only place that reads the environment (and a ``.env`` file); the sandbox,
``centrapay_sandbox``, reads its own SANDBOX_ variables.

Each field's name is its environment variable, upper-cased. ``get_settings()`` turns a
missing or malformed value into a ``ConfigError`` whose message names the variable, so
every entry point can print one clear line instead of a traceback.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from distributor.constants import ASSET_TYPES, DEFAULT_ASSET_TYPE, DEFAULT_ISSUER, ISSUERS
from distributor.errors import ConfigError

CommaList = Annotated[list[str], NoDecode]


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Every setting of the service; see the table in README.md."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/distributor"
    redis_url: str = "redis://127.0.0.1:6379/0"

    centrapay_base_url: str | None = None
    centrapay_api_key: SecretStr | None = None
    centrapay_account_id: str | None = None
    centrapay_timeout_seconds: float = Field(default=10.0, gt=0)
    centrapay_rate_per_second: float = Field(default=10.0, gt=0)
    centrapay_burst: int = Field(default=10, ge=1)
    centrapay_notify_url: str | None = None
    centrapay_single_call: bool = True

    distributor_secret_key: SecretStr | None = None
    distributor_previous_secret_keys: CommaList = Field(default_factory=list)
    distributor_api_tokens: CommaList = Field(default_factory=list)
    """Bootstrap admin tokens (the user ``bootstrap``): to create the first users."""
    distributor_user: str | None = None
    """Whom the CLI acts as (``--as NAME`` overrides it); unset, the bootstrap admin."""
    approval_required_above_rows: int | None = Field(default=None, ge=0)
    """A batch with more rows to send waits for an approver; unset: never; 0: always."""

    default_asset_type: str = DEFAULT_ASSET_TYPE
    default_issuer: str = DEFAULT_ISSUER
    pin_required: bool = True

    max_auto_retries: int = Field(default=5, ge=0)
    retry_backoff_seconds: float = Field(default=1.0, gt=0)
    retry_backoff_max_seconds: float = Field(default=60.0, gt=0)
    lease_seconds: float = Field(default=15.0, ge=1)
    token_wait_max_seconds: float = Field(default=5.0, ge=0)
    sweep_interval_seconds: float = Field(default=5.0, gt=0)
    transfer_poll_interval_seconds: float = Field(default=300.0, gt=0)
    transfer_id_sync_interval_seconds: float = Field(default=10.0, gt=0)

    worker_concurrency: int = Field(default=16, ge=1)
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    worker_metrics_host: str = "127.0.0.1"
    flower_basic_auth: SecretStr | None = None
    flower_port: int = Field(default=5555, ge=1, le=65535)
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)

    upload_max_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    upload_max_rows: int = Field(default=200_000, ge=1)

    dashboard_url: str | None = None
    # Before the URL: its validator reads the secret.
    batch_notify_secret: SecretStr | None = None
    batch_notify_url: str | None = None

    _split = field_validator(
        "distributor_previous_secret_keys", "distributor_api_tokens", mode="before"
    )(_split_commas)

    @field_validator("default_asset_type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in ASSET_TYPES:
            raise ValueError(f"must be one of {', '.join(ASSET_TYPES)}")
        return value

    @field_validator("default_issuer")
    @classmethod
    def _known_issuer(cls, value: str) -> str:
        if value not in ISSUERS:
            raise ValueError(f"must be one of {', '.join(ISSUERS)}")
        return value

    @field_validator("distributor_secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @field_validator("dashboard_url", "batch_notify_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("batch_notify_url")
    @classmethod
    def _signed(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Checked here, not when the first batch ends: a receiver must never get an
        # unsigned notification, and the operator learns it at start-up.
        if value is not None and info.data.get("batch_notify_secret") is None:
            raise ValueError("needs BATCH_NOTIFY_SECRET, the key its notifications are signed with")
        return value

    def public_dashboard_url(self) -> str:
        """Where people reach the dashboard: DASHBOARD_URL, else where ``serve`` listens."""
        base = self.dashboard_url or f"http://{self.api_host}:{self.api_port}"
        return base.rstrip("/")

    def require(self, *names: str) -> None:
        """Raise ConfigError naming the first of ``names`` that is not set."""
        for name in names:
            if getattr(self, name) in (None, "", []):
                raise ConfigError(f"{name.upper()} is not set; see README.md, Settings")


def _describe(exc: ValidationError, prefix: str) -> str:
    first = exc.errors()[0]
    name = prefix + "_".join(str(part) for part in first["loc"]).upper()
    return f"setting {name} is invalid: {first['msg']}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once; ConfigError names a bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(_describe(exc, "")) from None
