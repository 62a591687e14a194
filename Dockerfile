# usersync in a container, built with cargo alone: `docker build -t usersync .`
# Build stage: the Rust toolchain on Debian (ring's C parts need the C compiler that image has).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin usersync

# Run stage: Debian slim with the binary only, as an unprivileged user; the store lives in the volume /data.
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin usersync \
    && mkdir -p /data && chown usersync /data
COPY --from=build /src/target/release/usersync /usr/local/bin/usersync
USER usersync
ENV USERSYNC_DATA=/data \
    USERSYNC_LISTEN=0.0.0.0:8080
VOLUME /data
EXPOSE 8080
# SIGTERM (docker stop) is a graceful stop: /readyz answers 503, requests in flight finish, the store is flushed.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/usersync"]
CMD ["serve"]
