# The chainmap image: the CLI, `chainmap serve` (API, web view, rollup refresh, OTLP ingest)
# and the demo platform's services, on the official Python image.
#   docker build -t chainmap-otel:local .
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CHAINMAP_DATA_DIR=/var/lib/chainmap

WORKDIR /opt/chainmap
COPY pyproject.toml README.md chains.example.yaml ./
COPY schemas ./schemas
COPY chainmap_otel ./chainmap_otel
RUN pip install '.[demo]' \
    && useradd --system --home-dir /var/lib/chainmap --create-home chainmap

USER chainmap
WORKDIR /var/lib/chainmap
EXPOSE 4317 4318
ENTRYPOINT ["chainmap"]
CMD ["serve", "--host", "0.0.0.0"]
