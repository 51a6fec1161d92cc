# footyd container: `docker build -t footyd .`; see README.md for the `docker run` line.
FROM python:3.11-slim

# ffmpeg lets yt-dlp merge separate audio/video streams and remux HLS; tini is PID 1 and reaps
# the orphaned grandchildren (ffmpeg) that yt-dlp leaves behind.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg tini \
    && rm -rf /var/lib/apt/lists/*

ARG FOOTYD_BUILD_COMMIT=unknown
ENV FOOTYD_BUILD_COMMIT=${FOOTYD_BUILD_COMMIT} \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    FOOTYD_CONFIG=/etc/footyd/config.toml \
    FOOTYD_DOWNLOAD__SCRATCH_DIR=/var/cache/footyd

WORKDIR /src
COPY pyproject.toml README.md ./
COPY footyd ./footyd
RUN pip install --no-compile . && rm -rf /src

RUN useradd --system --uid 10001 --home-dir /var/lib/footyd --create-home footyd \
    && mkdir -p /etc/footyd /var/cache/footyd \
    && chown footyd:footyd /var/cache/footyd
COPY config.toml /etc/footyd/config.toml
# the image's default config listens on all interfaces so the EXPOSEd /metrics port is reachable
# (the grep fails the build if config.toml's listen line ever changes shape)
RUN sed -i 's/^listen = "127.0.0.1:9464"/listen = "0.0.0.0:9464"/' /etc/footyd/config.toml \
    && grep -q '^listen = "0.0.0.0:9464"' /etc/footyd/config.toml

USER footyd
WORKDIR /var/lib/footyd
VOLUME ["/var/cache/footyd"]
EXPOSE 9464
# the page, when [web] enabled = true and listen = "0.0.0.0:8464" (README: Docker)
EXPOSE 8464

STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["footyd", "healthcheck", "-c", "/etc/footyd/config.toml"]
# exec form: tini is PID 1, forwards SIGTERM/SIGHUP to footyd and reaps zombies
ENTRYPOINT ["tini", "--", "footyd", "run"]
CMD ["-c", "/etc/footyd/config.toml"]
