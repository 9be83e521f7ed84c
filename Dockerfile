# Nano Banana for Slack: one image for every role.
#   docker build -t nano-banana-slack .
#   docker run --env-file .env -p 3000:3000 nano-banana-slack            # serve (HTTP, or Socket Mode)
#   docker run --env-file .env nano-banana-slack worker                   # workers only
#   docker run --env-file .env nano-banana-slack migrate                  # upgrade the database and exit
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Dependencies first, so a code change doesn't reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir bot handlers && touch bot/__init__.py handlers/__init__.py app.py \
    && pip install -e . \
    && rm -rf bot handlers app.py
COPY app.py ./
COPY bot ./bot
COPY handlers ./handlers
COPY migrations ./migrations

# Not root; SQLite (the default without DATABASE_URL) keeps its file in /data, a volume.
RUN useradd --system --uid 10001 --no-create-home --home-dir /app banana \
    && mkdir /data && chown banana /data
USER banana
VOLUME ["/data"]
ENV DATABASE_URL=sqlite:////data/banana.db \
    PORT=3000
EXPOSE 3000

ENTRYPOINT ["banana"]
CMD ["serve"]
