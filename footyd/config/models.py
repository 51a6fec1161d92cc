"""Configuration models: one frozen pydantic section per TOML table (extra keys are errors)."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

SourceName = Literal["x_api", "search_service", "snscrape", "fake", "reddit"]
LevelName = Literal["debug", "info", "warning", "error"]


class _Hot:
    """Marks a field whose change a SIGHUP applies live; every other key waits for a restart."""

    def __repr__(self) -> str:
        return "HOT"


HOT = _Hot()


class Section(BaseModel):
    """Base for every config section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiFootballConfig(Section):
    base_url: str = "https://v3.football.api-sports.io"
    api_key: SecretStr | None = None
    mode: Literal["direct", "rapidapi"] = "direct"
    rapidapi_host: str = "api-football-v1.p.rapidapi.com"
    timeout_s: float = Field(10.0, gt=0, le=120)
    max_retries: int = Field(3, ge=0, le=10)
    backoff_base_s: float = Field(2.0, gt=0, le=60)
    daily_reserve: Annotated[int, HOT] = Field(100, ge=0)
    daily_limit: int | None = Field(None, ge=1)  # None: learn it from /status and headers
    per_minute_limit: int | None = Field(None, ge=1)
    # a body past this is refused unread as malformed (a hostile or broken upstream)
    max_response_mb: float = Field(16.0, gt=0, le=256)


class ScopeConfig(Section):
    teams: Annotated[list[int], HOT] = Field(default_factory=list)
    leagues: Annotated[list[int], HOT] = Field(default_factory=list)
    season: Annotated[int | None, HOT] = None  # None: the season in progress, resolved per league


class IngestConfig(Section):
    days_ahead: Annotated[int, HOT] = Field(1, ge=0, le=14)
    at: Annotated[str, HOT] = Field("00:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")  # UTC
    on_startup: bool = True


class MonitorConfig(Section):
    poll_interval_s: Annotated[float, HOT] = Field(30.0, gt=0)
    poll_floor_s: float = Field(15.0, gt=0)  # lower only against the simulator
    staging_check_interval_s: Annotated[float, HOT] = Field(900.0, gt=0)
    activate_before_s: Annotated[float, HOT] = Field(300.0, ge=0)
    complete_grace_s: Annotated[float, HOT] = Field(600.0, ge=0)
    max_poll_interval_s: Annotated[float, HOT] = Field(300.0, gt=0)
    keep_raw: Annotated[bool, HOT] = False  # also store each polled item's raw JSON (debugging; costs writes)
    poll_shape: Annotated[Literal["auto", "ids"], HOT] = "auto"  # auto: `live=` when it costs fewer calls

    @model_validator(mode="after")
    def _floor(self) -> MonitorConfig:
        if self.poll_interval_s < self.poll_floor_s:
            raise ValueError(
                f"poll_interval_s ({self.poll_interval_s}) is below poll_floor_s "
                f"({self.poll_floor_s}); API-Football refreshes every 15 s"
            )
        return self


class GoalsConfig(Section):
    confirm_polls: Annotated[int, HOT] = Field(2, ge=1, le=20)
    cancel_polls: Annotated[int, HOT] = Field(3, ge=1, le=50)
    match_window_min: Annotated[int, HOT] = Field(5, ge=0, le=30)
    on_cancel: Annotated[Literal["delete", "keep"], HOT] = "delete"


# every 30 s while the first clips appear (1-3 min after a goal), then late HD copies: 10 attempts
DEFAULT_SCHEDULE = [(180.0, 30.0), (2700.0, 840.0)]


class SearchConfig(Section):
    attempts: Annotated[int, HOT] = Field(10, ge=1, le=100)  # the most attempts a goal gets from the schedule
    interval_s: Annotated[float, HOT] = Field(60.0, gt=0)
    # [until_s, every_s] steps after the goal was first seen: dense while clips appear, sparse
    # for late HD copies; [] = every interval_s (the flat cadence of earlier versions)
    schedule: Annotated[list[tuple[float, float]], HOT] = Field(
        default_factory=lambda: list(DEFAULT_SCHEDULE), max_length=20)
    # search a goal from the poll that first sees it; its clips stay unseen until it is confirmed
    before_confirm: Annotated[bool, HOT] = True
    # a feed source (the Reddit listing) hands its posts to every goal as it reads them; false:
    # feeds are read only by a goal's attempts (the behaviour before 2026-12; restart to change)
    feeds_push: bool = True
    window_margin_s: Annotated[float, HOT] = Field(120.0, ge=0)
    sources: list[SourceName] = Field(default_factory=list)  # none: goals are not searched
    team_aliases: Annotated[dict[str, list[str]], HOT] = Field(default_factory=dict)
    max_candidates_per_attempt: Annotated[int, HOT] = Field(50, ge=1, le=500)
    workers: Annotated[int, HOT] = Field(4, ge=1, le=64)
    source_timeout_s: float = Field(45.0, gt=0)
    due_scan_s: Annotated[float, HOT] = Field(5.0, gt=0)

    @model_validator(mode="after")
    def _schedule_steps(self) -> SearchConfig:
        untils = [until for until, _ in self.schedule]
        if untils != sorted(set(untils)) or any(
                until <= 0 or not 1 <= every <= 86_400 or until > 7 * 86_400
                for until, every in self.schedule):
            raise ValueError("schedule: [until_s, every_s] steps with until_s increasing, "
                             "every_s between 1 and 86400")
        return self

    def attempt_offsets_s(self) -> list[float]:
        """When attempts 1..n run, in seconds after the goal was first seen (n <= attempts)."""
        if not self.schedule:
            return [k * self.interval_s for k in range(self.attempts)]
        offsets, t = [0.0], 0.0
        while len(offsets) < self.attempts:
            every = next((e for until, e in self.schedule if t < until), None)
            if every is None or t + every > self.schedule[-1][0]:
                break
            t += every
            offsets.append(t)
        return offsets


class XApiConfig(Section):
    base_url: str = "https://api.x.com/2"
    bearer_token: SecretStr | None = None
    requests_per_15min: int = Field(60, ge=1)
    max_results: int = Field(50, ge=10, le=100)
    timeout_s: float = Field(10.0, gt=0)
    max_response_mb: float = Field(16.0, gt=0, le=256)  # a larger body is refused as malformed


class SearchServiceConfig(Section):
    base_url: str = "http://127.0.0.1:8080"
    token: SecretStr | None = None
    limit: int = Field(50, ge=1, le=500)
    timeout_s: float = Field(15.0, gt=0)
    requests_per_min: int = Field(30, ge=1)
    max_response_mb: float = Field(16.0, gt=0, le=256)  # a larger body is refused as malformed


class SnscrapeConfig(Section):
    timeout_s: float = Field(20.0, gt=0)
    max_results: int = Field(50, ge=1)
    backoff_max_s: float = Field(3600.0, gt=0)


class FakeSourceConfig(Section):
    base_url: str = "http://127.0.0.1:8099"
    timeout_s: float = Field(5.0, gt=0)


class RedditConfig(Section):
    client_id: SecretStr | None = None  # of a reddit.com/prefs/apps app ("script" type)
    client_secret: SecretStr | None = None
    # Reddit throttles generic agents: <platform>:<app id>:<version> (by /u/<reddit user>)
    user_agent: str = Field("linux:footyd:1.0 (by /u/CHANGE_ME)", min_length=8, max_length=256)
    subreddits: list[str] = Field(default_factory=lambda: ["soccer"], min_length=1, max_length=10)
    flairs: list[str] = Field(default_factory=lambda: ["Media"])  # empty: any flair
    # one listing fetch per subreddit per interval serves every goal (10 s: 6 requests/min each,
    # Reddit allows 100/min per client id); requests_per_min caps the rate whatever this says
    poll_s: float = Field(10.0, ge=0.1, le=600)
    max_age_min: float = Field(20.0, gt=0, le=240)  # older posts are ignored
    minute_drift_min: int = Field(2, ge=0, le=10)  # title minute vs the API's
    timeout_s: float = Field(10.0, gt=0, le=120)
    requests_per_min: int = Field(60, ge=1, le=1000)  # Reddit allows 100 per client id
    max_response_mb: float = Field(8.0, gt=0, le=64)
    auth_url: str = "https://www.reddit.com/api/v1/access_token"
    api_base_url: str = "https://oauth.reddit.com"

    @model_validator(mode="after")
    def _names(self) -> RedditConfig:
        bad = [s for s in self.subreddits if not re.fullmatch(r"[A-Za-z0-9_]{2,21}", s)]
        if bad:
            raise ValueError(f"not subreddit names: {bad}")
        return self


class SourcesConfig(Section):
    x_api: XApiConfig = Field(default_factory=XApiConfig)
    search_service: SearchServiceConfig = Field(default_factory=SearchServiceConfig)
    snscrape: SnscrapeConfig = Field(default_factory=SnscrapeConfig)
    fake: FakeSourceConfig = Field(default_factory=FakeSourceConfig)
    reddit: RedditConfig = Field(default_factory=RedditConfig)


class DownloadConfig(Section):
    concurrency: Annotated[int, HOT] = Field(3, ge=1, le=32)
    timeout_s: Annotated[float, HOT] = Field(120.0, gt=0)
    socket_timeout_s: Annotated[float, HOT] = Field(15.0, gt=0)
    max_size_mb: Annotated[float, HOT] = Field(100.0, gt=0)
    min_duration_s: Annotated[float, HOT] = Field(3.0, ge=0)
    max_duration_s: Annotated[float, HOT] = Field(180.0, gt=0)
    min_short_side_px: Annotated[int, HOT] = Field(360, ge=1)
    aspect_min: Annotated[float, HOT] = Field(1.6, gt=0)
    aspect_max: Annotated[float, HOT] = Field(1.9, gt=0)
    max_attempts: Annotated[int, HOT] = Field(4, ge=1, le=20)
    retry_backoff_s: Annotated[float, HOT] = Field(60.0, ge=0)
    scratch_dir: Path = Path("/tmp/footyd-scratch")
    cookies_file: Path | None = None
    ffmpeg_location: Path | None = None
    # Media and post URLs come from the internet: loopback, private, link-local (cloud metadata)
    # and other non-public addresses are refused unless this is on (simulator, tests, a LAN).
    allow_private_addresses: Annotated[bool, HOT] = False
    # CIDRs fetched even with the flag off (a LAN host)
    allowed_networks: Annotated[tuple[str, ...], HOT] = ()

    @model_validator(mode="after")
    def _ranges(self) -> DownloadConfig:
        for net in self.allowed_networks:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"allowed_networks: {net!r} is not an IP network") from None
        if self.min_duration_s >= self.max_duration_s:
            raise ValueError("min_duration_s must be below max_duration_s")
        if self.aspect_min >= self.aspect_max:
            raise ValueError("aspect_min must be below aspect_max")
        return self


class DedupConfig(Section):
    workers: int = Field(2, ge=1, le=32)
    sample_fps: float | None = Field(None, gt=0, le=30)  # unused (reference_fps): old files still load
    reference_fps: float = Field(5.0, gt=0, le=30)
    max_hamming: Annotated[int, HOT] = Field(10, ge=0, le=64)
    min_consecutive: Annotated[int, HOT] = Field(3, ge=1, le=100)
    min_match_s: Annotated[float, HOT] = Field(2.0, gt=0, le=60)
    min_match_ratio: Annotated[float, HOT] = Field(0.7, gt=0, le=1)
    min_match_coverage: Annotated[float, HOT] = Field(0.5, ge=0, le=1)
    match_mirrored: Annotated[bool, HOT] = True  # a left-right mirrored re-post is a copy too
    match_crops: Annotated[bool, HOT] = True  # the crop step for off-centre crops (media/crop.py)
    worker_max_memory_mb: int = Field(3072, ge=0, le=1_048_576)  # address space per pool worker
    timeout_s: float = Field(120.0, gt=0)
    retry_backoff_s: float = Field(60.0, ge=0)
    max_decode_megapixel_s: float = Field(400.0, gt=0)  # duration x width x height cap per clip
    max_fingerprint_failures: int = Field(2, ge=1, le=20)  # then the clip is kept undeduplicated


class PoolConfig(Section):
    """The process pool that probes and fingerprints clips (download and dedup share it)."""

    workers: int = Field(2, ge=1, le=32)


class MongoConfig(Section):
    uri: SecretStr = SecretStr("mongodb://127.0.0.1:27017")
    database: str = "footyd"
    server_selection_timeout_s: float = Field(5.0, gt=0)


class StorageConfig(Section):
    kind: Literal["s3", "local"] = "s3"
    bucket: str = "footyd-clips"
    prefix: str = "clips"
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    local_dir: Path | None = None  # required for kind = "local"
    create_bucket: bool = False
    timeout_s: float = Field(300.0, gt=0)  # deadline of one S3 operation (a whole clip upload)


class HealthConfig(Section):
    listen: str = Field("127.0.0.1:9464", pattern=r"^[^:]+:\d{1,5}$")
    enabled: bool = True
    stale_tick_s: float = Field(120.0, gt=0)

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])


class WebConfig(Section):
    """The read-only page and its JSON API + SSE stream (footyd/web)."""

    enabled: bool = False
    listen: str = Field("127.0.0.1:8464", pattern=r"^(\[[0-9a-fA-F:]+\]|[^:\[\]]+):\d{1,5}$")
    token: SecretStr | None = None  # bearer or ?token=; required off loopback
    presign_ttl_s: int = Field(300, ge=10, le=3600)  # S3 clips: lifetime of the redirect URL
    keepalive_s: float = Field(15.0, gt=0, le=300)  # SSE comment when nothing else was sent
    feed: Literal["auto", "change_stream", "poll"] = "auto"  # auto: change streams if supported
    poll_interval_s: float = Field(2.0, gt=0, le=60)  # the poll feed's period
    poll_window_days: int = Field(2, ge=0, le=14)  # the poll feed watches kickoffs within this
    resume_buffer: int = Field(2000, ge=10, le=100_000)  # events kept for Last-Event-ID resume
    # a change stream silent this long (not even an empty batch) is not answering: poll instead
    stream_stall_s: float = Field(30.0, ge=1, le=600)
    # while on change streams, how often a poll checks they missed nothing (if they did: reopen)
    stream_audit_s: float = Field(60.0, ge=1, le=3600)
    # while polling in `auto` (or after a stall), how often to try change streams again
    stream_retry_s: float = Field(300.0, ge=1, le=86_400)
    max_streams: int = Field(100, ge=1, le=10_000)  # concurrent SSE clients
    write_timeout_s: float = Field(10.0, gt=0, le=300)  # a stream client slower than this is cut
    # Host header names served (DNS-rebinding guard); [] = loopback names and the listen host,
    # or any name when a token guards the API; "*" = any
    allowed_hosts: list[str] = Field(default_factory=list, max_length=100)
    # the address people reach the page at (behind a proxy: "https://goals.example.org"); links in
    # /feed.atom and Open Graph tags use it; unset: the scheme and Host of each request
    public_url: str | None = Field(None, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$", max_length=300)

    @field_validator("public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    def host_allowed(self, host_header: str) -> bool:
        """Whether a request's Host (name[:port]) is one this server answers to."""
        name = _host_name(host_header)
        if self.allowed_hosts:
            return "*" in self.allowed_hosts or name in {h.lower() for h in self.allowed_hosts}
        if self.token and self.token.get_secret_value():
            return True
        return name in LOOPBACK_NAMES or name == self.host.lower()

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @model_validator(mode="after")
    def _token_off_loopback(self) -> WebConfig:
        if not self.enabled or is_loopback(self.host):
            return self
        token = self.token.get_secret_value() if self.token else ""
        if not token:
            raise ValueError(
                f"listen {self.listen} is not a loopback address: set web.token (or web.token_file)"
            )
        if len(token) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"web.token guards a non-loopback listen ({self.listen}) and is shorter than "
                f"{MIN_TOKEN_CHARS} characters: use a long random one "
                "(python -c 'import secrets; print(secrets.token_urlsafe(24))')"
            )
        return self


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
MIN_TOKEN_CHARS = 16


def _host_name(host_header: str) -> str:
    """The name part of a Host header value, lower-case, without port or IPv6 brackets."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (what only this machine can reach)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


class LogConfig(Section):
    level: Annotated[LevelName, HOT] = "info"
    format: Literal["auto", "json", "console"] = "auto"
    libraries: Annotated[dict[str, LevelName], HOT] = Field(
        default_factory=lambda: dict[str, LevelName]({
            "pymongo": "warning",
            "apscheduler": "warning",
            "aiohttp": "warning",
            "botocore": "warning",
            "aiobotocore": "warning",
        })
    )


class ShutdownConfig(Section):
    """Drain budgets, in stage order; their sum must fit inside TimeoutStopSec."""

    intake_s: Annotated[float, HOT] = Field(2.0, ge=0)
    search_s: Annotated[float, HOT] = Field(5.0, ge=0)
    download_s: Annotated[float, HOT] = Field(20.0, ge=0)
    dedup_s: Annotated[float, HOT] = Field(15.0, ge=0)
    # webhook deliveries in flight; a cut one is due at the next start
    notify_s: Annotated[float, HOT] = Field(3.0, ge=0)
    close_s: Annotated[float, HOT] = Field(5.0, ge=0)

    def stage_budgets_s(self) -> dict[str, float]:
        """Each pipeline stage's drain budget, by stage name."""
        return {"search": self.search_s, "download": self.download_s, "dedup": self.dedup_s,
                "notify": self.notify_s}

    @property
    def total_s(self) -> float:
        return (self.intake_s + self.search_s + self.download_s + self.dedup_s + self.notify_s
                + self.close_s)


WebhookEvent = Literal["clip_kept", "clip_replaced", "goal_confirmed", "goal_cancelled"]
WEBHOOK_EVENTS: tuple[WebhookEvent, ...] = ("clip_kept", "clip_replaced", "goal_confirmed",
                                            "goal_cancelled")


class WebhookConfig(Section):
    """One webhook receiver; its URL is a secret (Discord/Slack URLs carry their token)."""

    url: SecretStr
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,40}$")  # logs; default: URL digest
    format: Literal["json", "discord", "slack"] = "json"
    events: list[WebhookEvent] = Field(default_factory=lambda: list(WEBHOOK_EVENTS), min_length=1)
    secret: SecretStr | None = None  # X-Footyd-Signature: t=..,v1=HMAC-SHA256(t.event_id.body)
    timeout_s: float = Field(10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _http_url(self) -> WebhookConfig:
        if not self.url.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return self

    @property
    def key(self) -> str:
        """Stable id of this receiver in MongoDB and logs (never the URL itself)."""
        if self.name:
            return self.name
        return "wh-" + hashlib.sha256(self.url.get_secret_value().encode()).hexdigest()[:10]


class NotifyConfig(Section):
    webhooks: Annotated[list[WebhookConfig], HOT] = Field(default_factory=list)
    workers: int = Field(2, ge=1, le=16)
    max_attempts: Annotated[int, HOT] = Field(8, ge=1, le=50)
    backoff_base_s: Annotated[float, HOT] = Field(10.0, gt=0)
    backoff_max_s: Annotated[float, HOT] = Field(3600.0, gt=0)
    max_event_age_s: Annotated[float, HOT] = Field(86400.0, gt=0)  # older events are not announced
    url_ttl_s: Annotated[int, HOT] = Field(86400, ge=60, le=604800)  # lifetime of presigned clip URLs

    @model_validator(mode="after")
    def _unique_keys(self) -> NotifyConfig:
        keys = [w.key for w in self.webhooks]
        if len(keys) != len(set(keys)):
            raise ValueError("two webhooks share a name or URL")
        return self


class RetentionConfig(Section):
    days: Annotated[int | None, HOT] = Field(None, ge=1)  # None: keep everything
    at: Annotated[str, HOT] = Field("03:30", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")  # UTC
    stale_upload_s: Annotated[float, HOT] = Field(86400.0, gt=0)  # abort multipart uploads older than this


class ReplicasConfig(Section):
    """Several footyd on one MongoDB: the leader lease for the work that must happen once."""

    lease_ttl_s: float = Field(15.0, ge=2, le=600)  # taken over after this long without renewal
    lease_renew_s: float = Field(5.0, gt=0, le=300)  # how often the holder renews it
    # a pipeline item's claim: renewed every third of it, taken over this long after its holder died
    claim_ttl_s: float = Field(60.0, ge=3, le=3600)

    @model_validator(mode="after")
    def _renew_within_ttl(self) -> ReplicasConfig:
        if self.lease_renew_s * 2 > self.lease_ttl_s:
            raise ValueError(f"lease_renew_s ({self.lease_renew_s:g}) must be at most half of "
                             f"lease_ttl_s ({self.lease_ttl_s:g}): one failed renewal must not "
                             "lose the lease")
        return self


class Config(Section):
    api_football: ApiFootballConfig = Field(default_factory=ApiFootballConfig)
    scope: ScopeConfig = Field(default_factory=ScopeConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    goals: GoalsConfig = Field(default_factory=GoalsConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    sources: SourcesConfig = Field(default_factory=SourcesConfig)
    download: DownloadConfig = Field(default_factory=DownloadConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    pool: PoolConfig = Field(default_factory=PoolConfig)
    mongo: MongoConfig = Field(default_factory=MongoConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    shutdown: ShutdownConfig = Field(default_factory=ShutdownConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    replicas: ReplicasConfig = Field(default_factory=ReplicasConfig)
