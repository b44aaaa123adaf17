# chatgptd: one binary, every worker. `docker compose up` runs it against Kafka and Redis.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin chatgptd

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/chatgptd --create-home chatgptd
COPY --from=build /src/target/release/chatgptd /usr/local/bin/chatgptd
COPY topics.yaml /etc/chatgptd/topics.yaml
USER chatgptd
WORKDIR /var/lib/chatgptd
# The API listens beyond loopback, so it needs a token: an admin token whose secret is in
# API_TOKEN (`docker run -e API_TOKEN=$(openssl rand -hex 32) ...`). Without it the
# container refuses to start and says so; webhooks, /healthz, /readyz and /metrics need none.
ENV CHATGPTD_DATA_DIR=/var/lib/chatgptd \
    CHATGPTD_HTTP__LISTEN=0.0.0.0:8080 \
    CHATGPTD_HTTP__TOKENS__ADMIN__SCOPES='["admin"]' \
    CHATGPTD_HTTP__TOKENS__ADMIN__SECRET_ENV=API_TOKEN \
    CHATGPTD_LOG__FORMAT=json
EXPOSE 8080
ENTRYPOINT ["chatgptd"]
CMD ["--help"]
