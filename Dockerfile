# banwatch: the stream worker and the dispatch console (`banwatch worker`, `banwatch console`).
# Built by docker-compose.yml; any other command of the CLI runs the same way.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY geofence ./geofence
COPY alerts ./alerts
COPY streams ./streams
RUN pip install . && useradd --system --uid 10001 --no-create-home banwatch

# In a container the endpoints must listen beyond loopback; docker-compose.yml publishes
# only what it means to, and only on the host's 127.0.0.1.
ENV BANWATCH_METRICS_HOST=0.0.0.0 \
    BANWATCH_CONSOLE_HOST=0.0.0.0

USER banwatch
EXPOSE 9464 8080
ENTRYPOINT ["banwatch"]
CMD ["worker"]
