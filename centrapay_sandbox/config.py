"""SandboxSettings: the sandbox's only reader of the environment (SANDBOX_* variables)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from centrapay_sandbox.errors import ConfigError

ENV_PREFIX = "SANDBOX_"

CommaList = Annotated[list[str], NoDecode]


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class SandboxSettings(BaseSettings):
    """Settings of the local Centrapay sandbox (``python -m centrapay_sandbox``)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8100, ge=0, le=65535)
    latency_ms: float = Field(default=0.0, ge=0)
    rate_limit: float = Field(default=0.0, ge=0, description="requests/second; 0 = unlimited")
    fault_5xx: float = Field(default=0.0, ge=0, le=1)
    fault_timeout: float = Field(default=0.0, ge=0, le=1)
    fault_drop: float = Field(default=0.0, ge=0, le=1)
    fault_429: float = Field(default=0.0, ge=0, le=1)
    rate_burst: int = Field(default=5, ge=1, description="requests a key may send at once")
    timeout_hold_seconds: float = Field(
        default=30.0, gt=0, description="how long a timeout fault withholds the answer"
    )
    page_size: int = Field(default=100, ge=1, le=1000, description="items per listing page")
    cards: Path | None = None
    time_scale: float = Field(default=1.0, gt=0)
    api_keys: CommaList = Field(default_factory=lambda: ["sandbox-key:sandbox-account"])
    list_order: Literal["newest", "oldest"] = Field(
        default="newest", description="order of every listing (Centrapay documents none)"
    )
    single_call: bool = Field(
        default=True, description="POST /api/external-assets may carry assetTransfer"
    )

    _split = field_validator("api_keys", mode="before")(_split_commas)


def describe(exc: ValidationError) -> str:
    """One line naming the SANDBOX_ variable a validation error is about."""
    first = exc.errors()[0]
    name = ENV_PREFIX + "_".join(str(part) for part in first["loc"]).upper()
    return f"setting {name} is invalid: {first['msg']}"


def get_sandbox_settings() -> SandboxSettings:
    """The sandbox's settings; ConfigError names a bad variable."""
    try:
        return SandboxSettings()
    except ValidationError as exc:
        raise ConfigError(describe(exc)) from None
