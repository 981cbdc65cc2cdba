# The triplegain daemon. Built by docker-compose.yml; runs `triplegain run` against the compose PostgreSQL.
FROM python:3.11-slim

RUN useradd --create-home --uid 1000 triplegain
WORKDIR /app
COPY pyproject.toml README.md ./
COPY triplegain ./triplegain
COPY migrations ./migrations
COPY config ./config
COPY prompts ./prompts
RUN pip install --no-cache-dir . && rm -rf /app/triplegain

USER triplegain
ENV TRIPLEGAIN_HOME=/home/triplegain/.triplegain
ENTRYPOINT ["triplegain"]
CMD ["run"]
