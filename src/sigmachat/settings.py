"""The one settings object. Every configurable value lives here (env prefix ``SIGMACHAT_``)."""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SIGMACHAT_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # --- service ---
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # How long an idle keep-alive connection stays open (serve and sim). Longer than the idle timeouts of the
    # clients and proxies that reuse connections (nginx's upstream keepalive_timeout is 60 s,
    # httpx's 5 s): when the server closed first, at uvicorn's default 5 s, a request sent on
    # the connection as it closed failed (a POST is not retried: a 502 or a reset).
    http_keep_alive_s: int = Field(default=75, ge=1)
    var_dir: Path = Path("./var")
    log_level: str = "INFO"
    log_json: bool = True

    # --- database ---
    database_url: str = "sqlite+aiosqlite:///./var/sigmachat.db"
    # Connections kept open per process, and how many more a burst may open (closed again when
    # returned). Every answer checks a connection out a dozen times; with SQLAlchemy's default
    # of 5 kept, 200 concurrent answers opened a new one every other answer (~1.7 ms of CPU
    # each on SQLite: a thread, the file, the pragmas; more on PostgreSQL).
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    auto_migrate: bool = True  # apply Alembic migrations when the app starts
    auto_seed: bool = True  # seed the demo users, portfolios and prices on first start

    # --- auth ---
    jwt_secret: SecretStr | None = None  # generated once into var/jwt_secret when unset
    jwt_algorithm: str = "HS256"
    token_ttl_minutes: int = Field(default=60 * 12, ge=1)
    cookie_name: str = "auth_token"
    cookie_secure: bool = False  # set true behind https
    cookie_samesite: str = "lax"
    # Origins allowed to send cookie-authenticated state-changing requests (CSRF check).
    allowed_origins: list[str] = ["http://127.0.0.1:8000", "http://localhost:8000"]

    # --- demo data ---
    as_of_date: dt.date = dt.date(2025, 7, 11)
    price_seed: int = 20250630
    price_history_days: int = Field(default=504, ge=400, le=2000)

    # --- model / OpenAI (used by the chat engines) ---
    # The conventional OPENAI_API_KEY is honoured too, so an existing shell setup just works.
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SIGMACHAT_OPENAI_API_KEY", "OPENAI_API_KEY", "openai_api_key")
    )
    openai_base_url: str | None = None
    openai_timeout_s: float = Field(default=60.0, gt=0)
    openai_connect_timeout_s: float = Field(default=10.0, gt=0)
    model: str = "gpt-4.1-mini"
    fallback_model: str | None = "gpt-4.1-nano"
    offline_model_name: str = "sigmasight-offline-analyst"

    # --- offline model and simulator pacing (tokens_per_s 0 = no pacing; tests use 0) ---
    offline_ttfb_ms: int = Field(default=250, ge=0)
    offline_tokens_per_s: float = Field(default=60.0, ge=0)
    sim_ttfb_ms: int = Field(default=300, ge=0)
    sim_tokens_per_s: float = Field(default=80.0, ge=0)
    sim_port: int = Field(default=9100, ge=1, le=65535)

    # --- engines ---
    max_tool_iterations: int = Field(default=6, ge=1, le=50)
    retry_max_attempts: int = Field(default=3, ge=1, le=10)  # attempts per model call, first included
    retry_base_delay_ms: int = Field(default=500, ge=0)
    retry_max_delay_ms: int = Field(default=8000, ge=0)
    responses_previous_response_id: bool = False  # only honoured when the upstream is OpenAI
    history_max_messages: int = Field(default=40, ge=2)
    # The bound of one model call's answer: sent upstream (max_output_tokens / max_tokens) and
    # enforced here too, for servers that ignore it (see engines/base.py OutputBudget).
    max_output_tokens: int = Field(default=2048, ge=16, le=128_000)
    # Which API the upstream speaks. auto: probe once (POST /responses with an empty body:
    # 404/405/501 means Chat Completions), then remember. The offline model is Responses-only.
    upstream_api: str = Field(default="auto", pattern="^(responses|chat_completions|auto)$")

    # --- several instances (README "Running several instances") ---
    # With a Redis URL the run event log, run leases, cancels and per-user limits are shared by
    # every instance; without it everything stays in process (one instance only).
    redis_url: str | None = None  # e.g. redis://127.0.0.1:6379/0
    redis_prefix: str = "sigmachat:"  # key prefix, so several deployments can share one Redis
    # An owner silent this long is dead. Renewed every third of it from a thread (not the event
    # loop), so a busy instance keeps its leases; dead owners are closed within ~1.33x this.
    run_lease_ttl_s: float = Field(default=6.0, ge=1.0, le=60.0)

    # --- runs and streaming ---
    cancel_grace_s: float = Field(default=5.0, gt=0)  # how long cancel waits for tools in flight
    shutdown_grace_s: float = Field(default=20.0, ge=0)
    run_log_ttl_s: float = Field(default=600.0, gt=0)  # finished runs stay resumable this long
    # The answer being written is saved to its 'streaming' message this often, so a client that
    # reloads mid-run (items.list, the messages API) sees the partial text. 0 = only at the end.
    run_progress_save_s: float = Field(default=1.0, ge=0)
    sse_heartbeat_s: float = Field(default=15.0, gt=0)
    # A client reading slower than the model writes gets the text deltas waiting for it as one
    # frame (id and seq of the last one) instead of one frame each. Off: one frame per delta.
    stream_coalesce_deltas: bool = False
    legacy_disconnect: str = Field(default="continue", pattern="^(continue|cancel)$")
    chatkit_disconnect: str = Field(default="cancel", pattern="^(continue|cancel)$")

    # --- chat paths ---
    chat_backend: str = Field(default="responses", pattern="^(responses|chatkit)$")
    # Lets a request pick a simulator fault scenario (X-Sim-Scenario). Off in production.
    allow_fault_injection: bool = False

    # --- ChatKit path (POST /chatkit, the Agents SDK engine) ---
    # Models a ChatKit client may pick through inference_options.model; anything else is ignored.
    chatkit_model_allowlist: Annotated[list[str], NoDecode] = []  # env: comma-separated
    # Which engine answers ChatKit requests (the Responses engine is the rollback option).
    chatkit_engine: str = Field(default="agents", pattern="^(agents|responses)$")
    # Export Agents SDK traces to OpenAI. Off unless configured: traces hold portfolio data.
    agents_tracing: bool = False

    @field_validator("chatkit_model_allowlist", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [m.strip() for m in value.split(",") if m.strip()]
        return value

    # --- abuse controls ---
    send_rate_limit: str = "20/minute"  # `limits` notation; empty disables
    # any `limits` async storage URI, e.g. async+redis://host:6379; with REDIS_URL set and this
    # left at the in-process default, the limits are kept in that Redis.
    rate_limit_storage: str = "async+memory://"
    # Failed sign-ins allowed per account (email, existing or not) and per client address.
    login_rate_limit_account: str = "5/minute"
    login_rate_limit_client: str = "20/minute"
    max_concurrent_runs_per_user: int = Field(default=3, ge=0)  # 0 = unlimited
    daily_token_budget: int = Field(default=2_000_000, ge=0)  # input+output tokens per user per UTC day; 0 = unlimited
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)

    # --- tools ---
    tool_max_chars_portfolio: int = Field(default=15_000, ge=500)
    tool_max_chars_default: int = Field(default=10_000, ge=500)
    tool_timeout_s: float = Field(default=10.0, gt=0)  # a tool over this answers execution_error (retryable)

    # --- rollout, telemetry and the comparison of the two paths (docs/runbook.md) ---
    # "db" (rollout_flags table), or "package.module:factory" returning any OpenFeature provider.
    flag_provider: str = "db"
    # How long an instance trusts its cached flag state; every instance sees a change within
    # this plus one query (the runbook promises under 5 s, hence the upper bound).
    flag_cache_ttl_s: float = Field(default=2.0, gt=0, le=4.0)
    shadow_sample_rate: float = Field(
        default=0.0, ge=0, le=1
    )  # fraction of finished turns re-answered by the other engine
    shadow_max_concurrent: int = Field(
        default=2, ge=0
    )  # shadow runs in flight per process; more are skipped, not queued
    shadow_timeout_s: float = Field(default=120.0, gt=0)
    metrics_enabled: bool = True  # GET /metrics (Prometheus text format)
    metrics_token: SecretStr | None = None  # when set, /metrics wants "Authorization: Bearer <token>"
    otel_enabled: bool = False  # OpenTelemetry SDK + OTLP/HTTP exporter (pip install 'sigmachat[otel]')
    otel_endpoint: str | None = None  # e.g. http://collector:4318/v1/traces; unset: the exporter's own default
    otel_service_name: str = "sigmachat"
    # Go / no-go thresholds of `sigmachat report` (ChatKit compared with Responses).
    report_max_ttfb_p95_ratio: float = Field(default=1.10, gt=0)
    report_max_error_rate_delta_points: float = Field(default=0.5, ge=0)
    report_min_runs_per_path: int = Field(default=200, ge=1)

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip().startswith("["):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    def ensure_var_dir(self) -> Path:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        return self.var_dir

    def resolved_jwt_secret(self) -> str:
        """The JWT signing secret: configured, or generated once and kept under var/ (0600)."""
        if self.jwt_secret is not None and self.jwt_secret.get_secret_value():
            return self.jwt_secret.get_secret_value()
        path = self.ensure_var_dir() / "jwt_secret"
        if path.exists():
            return path.read_text().strip()
        secret = secrets.token_urlsafe(48)
        # O_EXCL so two processes starting together cannot both write a different secret.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(secret)
        os.chmod(path, 0o600)
        return secret


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
