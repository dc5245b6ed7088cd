# The Mr Hux Alpha Bot image (docker-compose.yml builds it as service "bot").
# The base image is pinned; docker-compose passes stack.images.python as PYTHON_IMAGE.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HUX_HOME=/var/lib/hux

WORKDIR /opt/hux
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/hux --create-home hux \
    && mkdir -p /var/lib/hux/data /var/lib/hux/logs \
    && chown -R hux:hux /var/lib/hux

USER hux
WORKDIR /var/lib/hux
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=3)"]
CMD ["hux", "bot", "run"]
