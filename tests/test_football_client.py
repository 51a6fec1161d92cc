"""FootballClient against the simulated API-Football over loopback HTTP."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from footyd.clients.football import FootballClient, next_utc_midnight
from footyd.config import ApiFootballConfig
from footyd.errors import (
    ApiError,
    ConfigError,
    MalformedPayload,
    QuotaExhausted,
    RateLimited,
    Retryable,
)
from footyd.metrics import REGISTRY
from footyd.sim.football import ManualClock, many
from tests.plugins.sim import StartSim, api_config_for

FIXTURE = 2002  # three_two_var_recredit: kickoff at sim minute 10


class Now:
    """A settable wall clock for the client's quota reset."""

    def __init__(self, when: datetime) -> None:
        self.when = when

    def __call__(self) -> datetime:
        return self.when


async def test_fixtures_by_ids_parses_item_and_reads_quota_headers(start_sim: StartSim) -> None:
    clock = ManualClock(10 + 50)  # half time
    sim = await start_sim("three_two_var_recredit", clock=clock, daily_limit=500)
    async with FootballClient(api_config_for(sim)) as client:
        page = await client.fixtures_by_ids([FIXTURE])
        quota = client.quota
    assert page.malformed == []
    (fx,) = page.items
    assert (fx.id, fx.status_short, fx.status_long, fx.elapsed) == (
        FIXTURE, "HT", "Halftime", 45)
    assert (fx.league_id, fx.season, fx.home_name, fx.away_id) == (39, 2025, "Home United", 51)
    assert (fx.goals_home, fx.goals_away) == (2, 1)  # the VAR-cancelled goal is gone
    assert fx.kickoff == clock.to_datetime(10) and fx.kickoff.tzinfo is not None
    assert [e["player"]["name"] for e in fx.events if e["type"] == "Goal"] == [
        "M. Striker", "J. Late", "K. Winger"]
    assert fx.raw["fixture"]["id"] == FIXTURE
    assert (quota.limit_day, quota.remaining_day) == (500, 499)
    assert (quota.limit_minute, quota.remaining_minute) == (450, 449)
    assert quota.calls_made == 1 and quota.paused_until is None
    assert REGISTRY.get_sample_value("footyd_api_quota_remaining", {"window": "day"}) == 499


async def test_rapidapi_mode_sends_rapidapi_headers(start_sim: StartSim) -> None:
    sim = await start_sim("quiet_0_0", mode="rapidapi")
    async with FootballClient(api_config_for(sim)) as client:
        assert [f.id for f in (await client.fixtures_by_ids([1001])).items] == [1001]
    async with FootballClient(api_config_for(sim, mode="direct")) as client:
        with pytest.raises(ApiError) as err:
            await client.fixtures_by_ids([1001])
    assert "token" in err.value.errors


async def test_direct_sim_rejects_rapidapi_headers(start_sim: StartSim) -> None:
    sim = await start_sim("quiet_0_0")
    async with FootballClient(api_config_for(sim, mode="rapidapi")) as client:
        with pytest.raises(ApiError, match="token"):
            await client.fixtures_by_ids([1001])
    assert sim.calls == []


async def test_ids_outside_1_to_20_raise_before_any_request(start_sim: StartSim) -> None:
    sim = await start_sim("many_25")
    async with FootballClient(api_config_for(sim)) as client:
        with pytest.raises(ValueError, match="1 to 20"):
            await client.fixtures_by_ids(list(range(1, 22)))
        with pytest.raises(ValueError):
            await client.fixtures_by_ids([])
        page = await client.fixtures_by_ids([f for f in range(800_000, 800_020)])
    assert len(page.items) == 20
    assert len(sim.requests) == 1


async def test_errors_under_http_200_raise_api_error_with_message(start_sim: StartSim) -> None:
    sim = await start_sim("quiet_0_0")
    sim.inject("/fixtures", "errors_200", errors={"bug": "Upstream exploded politely"})
    async with FootballClient(api_config_for(sim)) as client:
        with pytest.raises(ApiError, match="Upstream exploded politely") as err:
            await client.fixtures_by_ids([1001])
    assert err.value.errors == {"bug": "Upstream exploded politely"}
    assert len(sim.requests) == 1  # permanent: not retried


async def test_429_is_retried_then_succeeds(start_sim: StartSim) -> None:
    sim = await start_sim("quiet_0_0")
    sim.inject("/fixtures", "rate_limit_429", count=2)
    async with FootballClient(api_config_for(sim, max_retries=3)) as client:
        page = await client.fixtures_by_ids([1001])
    assert [f.id for f in page.items] == [1001]
    assert [r.status for r in sim.requests] == [429, 429, 200]


async def test_rate_limit_in_body_is_treated_like_429(start_sim: StartSim) -> None:
    sim = await start_sim("quiet_0_0")
    sim.inject("/fixtures", "rate_limit_200", count=1)
    async with FootballClient(api_config_for(sim)) as client:
        assert len((await client.fixtures_by_ids([1001])).items) == 1
    assert [r.outcome for r in sim.requests] == ["rate_limited", "ok"]


async def test_429_forever_raises_rate_limited_after_max_retries(start_sim: StartSim) -> None:
    sim = await start_sim("quiet_0_0")
    sim.inject("/fixtures", "rate_limit_429", count=None)
    async with FootballClient(api_config_for(sim, max_retries=2)) as client:
        with pytest.raises(RateLimited):
            await client.fixtures_by_ids([1001])
    assert len(sim.requests) == 3


async def test_minute_limiter_waits_instead_of_exceeding(start_sim: StartSim) -> None:
    sim = await start_sim("quiet_0_0", per_minute_limit=4, minute_window_s=0.3)
    cfg = api_config_for(sim, per_minute_limit=4, max_retries=0)
    async with FootballClient(cfg, minute_window_s=0.3) as client:
        pages = await asyncio.gather(*(client.fixtures_by_ids([1001]) for _ in range(10)))
    assert all(len(p.items) == 1 for p in pages)
    assert [r.status for r in sim.requests] == [200] * 10


async def test_minute_limiter_learns_limit_from_headers(start_sim: StartSim) -> None:
    sim = await start_sim("quiet_0_0", per_minute_limit=3, minute_window_s=0.3)
    async with FootballClient(api_config_for(sim, max_retries=0), minute_window_s=0.3) as client:
        await client.fixtures_by_ids([1001])
        assert client.quota.limit_minute == 3
        await asyncio.gather(*(client.fixtures_by_ids([1001]) for _ in range(7)))
    assert [r.status for r in sim.requests] == [200] * 8


async def test_daily_quota_from_headers_pauses_until_midnight(start_sim: StartSim) -> None:
    sim = await start_sim("quiet_0_0", daily_limit=2)
    now = Now(datetime(2026, 3, 14, 18, 30, tzinfo=UTC))
    with capture_logs() as logs:
        async with FootballClient(api_config_for(sim), clock=now) as client:
            await client.fixtures_by_ids([1001])
            await client.fixtures_by_ids([1001])  # the last one: remaining 0
            with pytest.raises(QuotaExhausted) as err:
                await client.fixtures_by_ids([1001])
            assert len(sim.requests) == 2  # refused without touching the network
            assert err.value.reset_at == datetime(2026, 3, 15, tzinfo=UTC)
            assert client.quota.paused_until == err.value.reset_at
            assert REGISTRY.get_sample_value("footyd_api_quota_exhausted") == 1
            status = await client.status()  # free: still allowed
            assert (status.requests_current, status.limit_day) == (2, 2)
            with pytest.raises(QuotaExhausted):
                await client.current_season(39)
            now.when = datetime(2026, 3, 15, 0, 0, 1, tzinfo=UTC)
            sim.reset_quota()
            assert len((await client.fixtures_by_ids([1001])).items) == 1
    assert [e["event"] for e in logs].count("api_quota_exhausted") == 1
    assert REGISTRY.get_sample_value("footyd_api_quota_exhausted") == 0


async def test_daily_limit_message_raises_quota_exhausted(start_sim: StartSim) -> None:
    sim = await start_sim("quiet_0_0")
    sim.inject("/fixtures", "daily_exhausted")
    now = Now(datetime(2026, 3, 14, 23, 59, tzinfo=UTC))
    async with FootballClient(api_config_for(sim), clock=now) as client:
        with pytest.raises(QuotaExhausted) as err:
            await client.fixtures_by_ids([1001])
        assert err.value.reset_at == datetime(2026, 3, 15, tzinfo=UTC)
        with pytest.raises(QuotaExhausted):
            await client.fixtures_by_date(date(2026, 3, 14))
    assert len(sim.requests) == 1


@pytest.mark.parametrize("fault", ["http_500", "http_499"])
async def test_server_errors_retried_then_retryable(start_sim: StartSim, fault: str) -> None:
    sim = await start_sim("quiet_0_0")
    sim.inject("/fixtures", fault, count=None)
    async with FootballClient(api_config_for(sim, max_retries=2)) as client:
        with pytest.raises(Retryable, match=fault[-3:]) as err:
            await client.fixtures_by_ids([1001])
    assert not isinstance(err.value, RateLimited)
    assert len(sim.requests) == 3
    sim.clear_faults()
    sim.inject("/fixtures", fault, count=1)
    async with FootballClient(api_config_for(sim)) as client:
        assert len((await client.fixtures_by_ids([1001])).items) == 1


async def test_timeout_becomes_retryable(start_sim: StartSim) -> None:
    sim = await start_sim("quiet_0_0")
    sim.inject("/fixtures", "timeout", count=None)
    async with FootballClient(api_config_for(sim, timeout_s=0.2, max_retries=1)) as client:
        with pytest.raises(Retryable, match=r"no answer within 0\.2 s"):
            await client.fixtures_by_ids([1001])
        assert client.quota.calls_made == 2


async def test_malformed_json_retried_then_retryable(start_sim: StartSim) -> None:
    sim = await start_sim("quiet_0_0")
    sim.inject("/fixtures", "malformed_json", count=1)
    async with FootballClient(api_config_for(sim)) as client:
        assert len((await client.fixtures_by_ids([1001])).items) == 1
        sim.inject("/fixtures", "malformed_json", count=None)
        with pytest.raises(Retryable, match="malformed JSON"):
            await client.fixtures_by_ids([1001])


async def test_oversized_body_fails_as_malformed_without_reading_past_the_cap(
        start_sim: StartSim) -> None:
    sim = await start_sim("quiet_0_0")
    size = 64 * 1024 * 1024
    sim.inject("/fixtures", "oversized_body", count=1, size_bytes=size)
    before = REGISTRY.get_sample_value("footyd_api_requests_total",
                                       {"endpoint": "fixtures", "outcome": "malformed"}) or 0.0
    async with FootballClient(api_config_for(sim, max_response_mb=1)) as client:
        with pytest.raises(MalformedPayload, match="over 1048576 bytes") as err:
            await client.fixtures_by_ids([1001])
        assert err.value.kind == "too_large"
        assert len(sim.requests) == 1  # not retried: the same body would come back
        assert sim.streamed_bytes < size // 4  # we hung up at the cap, not at the end
        assert len((await client.fixtures_by_ids([1001])).items) == 1  # next call is fine
    after = REGISTRY.get_sample_value("footyd_api_requests_total",
                                      {"endpoint": "fixtures", "outcome": "malformed"})
    assert after == before + 1


async def test_too_deep_item_is_pruned_and_isolated(start_sim: StartSim) -> None:
    sim = await start_sim(many(5, kickoff_min=0), clock=ManualClock(30))
    ids = [f.id for f in sim.fixtures]
    sim.inject("/fixtures", "item_deep", fixture_id=ids[2])
    async with FootballClient(api_config_for(sim)) as client:
        page = await client.fixtures_by_ids(ids)
    assert [f.id for f in page.items] == [ids[0], ids[1], *ids[3:]]
    assert [(b.fixture_id, b.kind) for b in page.malformed] == [(ids[2], "too_deep")]


async def test_broken_item_is_isolated(start_sim: StartSim) -> None:
    sim = await start_sim(many(5, kickoff_min=0), clock=ManualClock(30))
    ids = [f.id for f in sim.fixtures]
    sim.inject("/fixtures", "broken_item", index=1)
    async with FootballClient(api_config_for(sim)) as client:
        page = await client.fixtures_by_ids(ids)
    assert [f.id for f in page.items] == [ids[0], *ids[2:]]
    assert len(page.malformed) == 1
    assert page.malformed[0].fixture_id == ids[1] and "teams.home" in page.malformed[0].reason


async def test_api_key_never_in_errors_or_logs(start_sim: StartSim) -> None:
    secret = "sekrit-KEY-0123456789"
    sim = await start_sim("quiet_0_0", key=secret)
    sim.inject("/fixtures", "http_500", count=None)
    texts: list[str] = []
    with capture_logs() as logs:
        async with FootballClient(api_config_for(sim)) as client:
            for call in (client.fixtures_by_ids([1001]),):
                with pytest.raises(Retryable) as err:
                    await call
                texts.append(str(err.value))
        wrong = api_config_for(sim, api_key=SecretStr(secret[::-1]))
        async with FootballClient(wrong) as client:
            with pytest.raises(ApiError) as api_err:
                await client.fixtures_by_ids([1001])
            texts.append(str(api_err.value))
        await sim.stop()  # nothing listens now: connection refused
        async with FootballClient(api_config_for(sim, max_retries=0)) as client:
            with pytest.raises(Retryable) as conn_err:
                await client.fixtures_by_ids([1001])
            texts.append(str(conn_err.value))
    texts.extend(str(e) for e in logs)
    assert len(texts) > 3
    assert not [t for t in texts if secret in t or secret[::-1] in t]


async def test_missing_api_key_fails_on_first_call_not_in_constructor() -> None:
    client = FootballClient(ApiFootballConfig(base_url="http://127.0.0.1:9"))
    async with client:
        with pytest.raises(ConfigError, match="api_key"):
            await client.status()


async def test_status_current_season_and_date_queries(start_sim: StartSim) -> None:
    clock = ManualClock(60)
    sim = await start_sim("three_two_var_recredit", clock=clock, daily_limit=100, plan="Pro")
    async with FootballClient(api_config_for(sim)) as client:
        status = await client.status()
        assert (status.plan, status.requests_current, status.limit_day) == ("Pro", 0, 100)
        assert await client.current_season(39) == 2025
        day = clock.to_datetime(10).date()
        page = await client.fixtures_by_date(day, league=39, season=2025)
        assert [f.id for f in page.items] == [FIXTURE] and page.items[0].events == []
        assert (await client.fixtures_by_date(day + timedelta(days=1))).items == []
        between = await client.fixtures_between(day, day, season=2025, team=51)
        assert [f.id for f in between.items] == [FIXTURE]
        with pytest.raises(ValueError, match="season"):
            await client.fixtures_between(day, day, league=39)
    assert [c.path for c in sim.calls] == ["/leagues", "/fixtures", "/fixtures", "/fixtures"]


async def test_update_config_applies_to_next_request(start_sim: StartSim) -> None:
    sim = await start_sim("quiet_0_0")
    good = api_config_for(sim)
    async with FootballClient(good) as client:
        client.update_config(good.model_copy(update={"api_key": SecretStr("rotated")}))
        with pytest.raises(ApiError):
            await client.fixtures_by_ids([1001])
        client.update_config(good)
        assert len((await client.fixtures_by_ids([1001])).items) == 1


def test_next_utc_midnight() -> None:
    assert next_utc_midnight(datetime(2026, 3, 14, 0, 0, tzinfo=UTC)) == datetime(
        2026, 3, 15, tzinfo=UTC)


