# syntax=docker/dockerfile:1
# Multi-stage build: wheels are built in a full image, the runtime image is slim and runs as non-root.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY broker ./broker
COPY scopes ./scopes
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BROKER_HOST=0.0.0.0 \
    BROKER_PORT=8080 \
    BROKER_DATA_DIR=/data \
    BROKER_SCOPES_DIR=/app/scopes
RUN groupadd --system --gid 10001 broker \
    && useradd --system --uid 10001 --gid broker --home-dir /app --shell /usr/sbin/nologin broker \
    && mkdir -p /data /app && chown 10001:10001 /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY --chown=10001:10001 scopes /app/scopes
USER 10001:10001
WORKDIR /app
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["broker"]
CMD ["serve"]
