"""Post-URL downloads through a yt-dlp subprocess: no shell, capped, killable, cleaned up."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
from pathlib import Path

import structlog

from footyd.clients.egress_proxy import GuardProxy
from footyd.clients.media_http import is_http_url, redact_url
from footyd.clients.netguard import BLOCKED_KIND, AddressPolicy, check_url
from footyd.errors import DownloadFailed, Retryable

log = structlog.get_logger(__name__)

OUTPUT_STEM = "clip"
COOKIES_NAME = "cookies.txt"  # the per-download copy yt-dlp may rewrite; the original is never touched
SIZE_POLL_S = 0.05  # how often the scratch dir is measured while yt-dlp runs
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"HTTP Error (404|410)"), "not_found"),
    (re.compile(r"HTTP Error (401|403|451)"), "forbidden"),
    (re.compile(r"HTTP Error 429"), "rate_limited"),
    (re.compile(r"HTTP Error 5\d\d"), "server_error"),
    (re.compile(r"timed out|TimeoutError|Read timed out", re.I), "timeout"),
    (re.compile(r"Unsupported URL", re.I), "unsupported_url"),
    (re.compile(r"larger than max-filesize", re.I), "too_large"),
    (re.compile(r"requires authentication|log ?in|not authorized|cookies", re.I), "forbidden"),
    (re.compile(r"no video|No media found|does not exist|deleted", re.I), "not_found"),
)


def build_command(
    url: str,
    dest_dir: Path,
    *,
    socket_timeout_s: float,
    max_size_mb: float,
    cookies_file: Path | None = None,
    ffmpeg_location: Path | None = None,
    proxy: str = "",
    python: str = sys.executable,
) -> list[str]:
    """The argv for one download; the URL always comes last, after `--`."""
    # yt-dlp reads `%` in -o as a template field: escape it in the directory part.
    template = str(dest_dir).replace("%", "%%") + f"/{OUTPUT_STEM}.%(ext)s"
    max_bytes = max(1, int(max_size_mb * 1024 * 1024))
    cmd = [
        python, "-m", "yt_dlp",
        "--ignore-config",  # a user/system yt-dlp.conf must not add options behind our back
        "--no-cache-dir",
        # every connection goes through footyd's guard proxy (or none: never an inherited one)
        "--proxy", proxy,
        "--no-playlist", "--no-progress", "--no-warnings",
        "--socket-timeout", f"{socket_timeout_s:g}",
        "--retries", "1",
        "--no-mtime",
        "--max-filesize", str(max_bytes),  # bytes: same cap as "<N>M", no float formatting
        "-f", "best[ext=mp4]/best",
        "-o", template,
        "--print", "after_move:filepath",
    ]
    if cookies_file is not None:
        cmd += ["--cookies", str(cookies_file)]
    if ffmpeg_location is not None:
        cmd += ["--ffmpeg-location", str(ffmpeg_location)]
    cmd += ["--", url]
    return cmd


def classify(stderr: str) -> DownloadFailed:
    """Turn yt-dlp's error output into a typed failure."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    reason = (errors or lines or ["yt-dlp failed without output"])[-1][:300]
    text = "\n".join(errors) or stderr
    for pattern, kind in _RULES:
        if pattern.search(text):
            return DownloadFailed(kind, reason)
    return DownloadFailed("network", reason)


def _cleanup(dest_dir: Path, keep: Path | None = None) -> None:
    for leftover in dest_dir.glob(f"{OUTPUT_STEM}.*"):
        if keep is None or leftover != keep:
            leftover.unlink(missing_ok=True)


async def _kill(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the whole process group and reap it, even while being cancelled."""
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    await asyncio.shield(proc.wait())


def _printed_path(stdout: str, dest_dir: Path) -> Path | None:
    for line in reversed(stdout.splitlines()):
        candidate = Path(line.strip())
        if line.strip() and candidate.parent.resolve() == dest_dir.resolve() and candidate.is_file():
            return candidate
    return None


def child_env(home: Path) -> dict[str, str]:
    """yt-dlp's whole environment: PATH, HOME (the clip's scratch dir) and LANG.

    Nothing else is inherited: no API keys, tokens or database URIs, and no proxy variables.
    """
    return {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home),
            "LANG": os.environ.get("LANG", "C.UTF-8")}


def copy_cookies(original: Path, dest_dir: Path) -> Path:
    """Copy the configured cookies file into dest_dir (owner-only); yt-dlp rewrites the copy."""
    target = dest_dir / COOKIES_NAME
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out, original.open("rb") as src:
            shutil.copyfileobj(src, out)
    except OSError as exc:
        target.unlink(missing_ok=True)
        # an operator's file problem: retry later rather than fail every clip for good
        raise Retryable(f"cookies file unreadable: {type(exc).__name__}") from None
    return target


def _scratch_bytes(dest_dir: Path) -> int:
    """Bytes yt-dlp has written so far (its output, parts and fragments; not the cookies copy)."""
    total = 0
    with os.scandir(dest_dir) as entries:
        for entry in entries:
            if entry.name != COOKIES_NAME and entry.is_file(follow_symlinks=False):
                try:
                    total += entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    pass  # renamed under us (.part -> final): counted on the next poll
    return total


async def _communicate_capped(proc: asyncio.subprocess.Process, dest_dir: Path,
                              max_bytes: int) -> tuple[bytes, bytes]:
    """proc.communicate(), raising too_large as soon as dest_dir outgrows max_bytes.

    --max-filesize only works when the server announces a size; a body without a length would
    otherwise stream to disk until the timeout.
    """
    out = asyncio.ensure_future(proc.communicate())
    try:
        while True:
            done, _ = await asyncio.wait({out}, timeout=SIZE_POLL_S)
            if done:
                return out.result()
            size = _scratch_bytes(dest_dir)
            if size > max_bytes:
                raise DownloadFailed("too_large", f"{size} bytes written > {max_bytes} bytes cap")
    finally:
        if not out.done():
            out.cancel()  # the caller kills the process group; the pipes then close


async def fetch_post(
    url: str,
    dest_dir: Path,
    *,
    timeout_s: float,
    socket_timeout_s: float,
    max_size_mb: float,
    cookies_file: Path | None = None,
    ffmpeg_location: Path | None = None,
    policy: AddressPolicy | None = None,
    python: str = sys.executable,
) -> Path:
    """Download a post's video into dest_dir/clip.<ext> and return its path (not validated).

    The post URL's host must pass `policy` (default: public addresses only) before yt-dlp starts,
    and every connection yt-dlp makes (redirects included) goes through a GuardProxy.
    """
    if not is_http_url(url):
        raise DownloadFailed("unsupported_url", "only http/https URLs are fetched")
    where = redact_url(url)
    policy = policy or AddressPolicy()
    try:
        async with asyncio.timeout(socket_timeout_s):  # a hung DNS lookup is a stalled connection
            await check_url(url, policy)
    except TimeoutError:
        raise DownloadFailed("timeout", f"no DNS answer within {socket_timeout_s} s") from None
    except DownloadFailed as exc:
        log.info("ytdlp_refused", url=where, kind=exc.kind, reason=exc.reason)
        raise
    cookies = copy_cookies(cookies_file, dest_dir) if cookies_file is not None else None
    try:
        async with GuardProxy(policy, connect_timeout_s=socket_timeout_s) as proxy:
            try:
                return await _run(url, dest_dir, where, timeout_s=timeout_s,
                                  socket_timeout_s=socket_timeout_s, max_size_mb=max_size_mb,
                                  cookies=cookies, ffmpeg_location=ffmpeg_location,
                                  proxy=proxy.url, python=python)
            except DownloadFailed as exc:
                if not proxy.refused or exc.kind == "too_large":
                    raise
                # yt-dlp only saw a 403 from the proxy: say what was really refused
                log.info("ytdlp_refused", url=where, kind=BLOCKED_KIND, reason=proxy.refused[0])
                raise DownloadFailed(BLOCKED_KIND, proxy.refused[0]) from None
    finally:
        if cookies is not None:
            cookies.unlink(missing_ok=True)


async def _run(url: str, dest_dir: Path, where: str, *, timeout_s: float, socket_timeout_s: float,
               max_size_mb: float, cookies: Path | None, ffmpeg_location: Path | None,
               proxy: str, python: str) -> Path:
    cmd = build_command(url, dest_dir, socket_timeout_s=socket_timeout_s, max_size_mb=max_size_mb,
                        cookies_file=cookies, ffmpeg_location=ffmpeg_location, proxy=proxy,
                        python=python)
    max_bytes = int(max_size_mb * 1024 * 1024)
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(dest_dir),
        cwd=dest_dir,
        start_new_session=True,  # its own process group, so a kill reaches any child too
    )
    log.info("ytdlp_started", url=where, pid=proc.pid)
    try:
        async with asyncio.timeout(timeout_s):
            out_b, err_b = await _communicate_capped(proc, dest_dir, max_bytes)
    except TimeoutError:
        await _kill(proc)
        _cleanup(dest_dir)
        log.info("ytdlp_failed", url=where, pid=proc.pid, kind="timeout")
        raise DownloadFailed(
            "timeout", f"yt-dlp did not finish within {timeout_s:g} s (download.timeout_s)") from None
    except DownloadFailed as exc:
        await _kill(proc)
        _cleanup(dest_dir)
        log.info("ytdlp_failed", url=where, pid=proc.pid, kind=exc.kind, reason=exc.reason)
        raise
    except BaseException:
        await _kill(proc)
        _cleanup(dest_dir)
        log.info("ytdlp_cancelled", url=where, pid=proc.pid)
        raise
    stdout, stderr = out_b.decode(errors="replace"), err_b.decode(errors="replace")
    if proc.returncode != 0:
        _cleanup(dest_dir)
        failure = classify(stderr)
        log.info("ytdlp_failed", url=where, rc=proc.returncode, kind=failure.kind,
                 reason=failure.reason)
        raise failure
    path = _printed_path(stdout, dest_dir)
    if path is None:
        _cleanup(dest_dir)
        too_large = "max-filesize" in stdout + stderr
        failure = (DownloadFailed("too_large", "larger than max-filesize") if too_large
                   else DownloadFailed("skipped", "max-filesize or filter"))
        log.info("ytdlp_skipped", url=where, kind=failure.kind)
        raise failure
    # --max-filesize only works when the size is announced; enforce the cap on what arrived.
    size = path.stat().st_size
    if size > max_bytes:
        _cleanup(dest_dir)
        log.info("ytdlp_failed", url=where, kind="too_large", size_bytes=size)
        raise DownloadFailed("too_large", f"{size} bytes > {max_size_mb} MB")
    _cleanup(dest_dir, keep=path)
    log.info("ytdlp_fetched", url=where, path=str(path), size_bytes=size)
    return path
