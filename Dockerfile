# The triplegain daemon. Built by docker-compose.yml; runs `triplegain run` against the compose PostgreSQL.
FROM python:3.11-slim

RUN useradd --create-home --uid 1000 triplegain
WORKDIR /app
COPY pyproject.toml README.md ./
COPY triplegain ./triplegain
COPY migrations ./migrations
COPY config ./config
COPY prompts ./prompts
COPY docker/entrypoint.sh /usr/local/bin/triplegain-entrypoint
RUN pip install --no-cache-dir . && rm -rf /app/triplegain

USER triplegain
ENV TRIPLEGAIN_HOME=/home/triplegain/.triplegain
# triplegain "$@", with exit 2 (a user's mistake) turned into 0 so that `restart: on-failure` does not loop.
ENTRYPOINT ["/usr/local/bin/triplegain-entrypoint"]
CMD ["run"]
