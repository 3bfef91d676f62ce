# AI Studio in a container. Binding 0.0.0.0 requires a token:
#   docker build -t ai-studio .
#   docker run -p 8000:8000 -e STUDIO_TOKEN=change-me -v "$PWD/workspace:/app/workspace" ai-studio
# For a GPU, run with `--gpus all` on a host with the NVIDIA container toolkit.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    STUDIO_HOST=0.0.0.0 \
    STUDIO_PORT=8000 \
    STUDIO_WORKSPACE=/app/workspace

WORKDIR /app

# Runtime dependencies only (no test tools), at the versions pinned in requirements.lock.
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))" > /tmp/deps.txt \
    && pip install -c requirements.lock -r /tmp/deps.txt \
    && rm /tmp/deps.txt

COPY alembic.ini ./
COPY app ./app
COPY workers ./workers
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static

RUN useradd --create-home --uid 1000 studio && mkdir -p /app/workspace && chown studio /app/workspace
USER studio
VOLUME ["/app/workspace"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/health')"
CMD ["python", "-m", "app"]
