# The `harness` binary (load worker, merge, mock provider, reference gateway) in a small image.
#   docker build -t gatebench-harness .
#   docker run --rm gatebench-harness list
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p harness \
    && cp target/release/harness /usr/local/bin/harness

FROM debian:bookworm-slim
COPY --from=build /usr/local/bin/harness /usr/local/bin/harness
RUN useradd --uid 10001 --user-group --create-home gatebench \
    && mkdir /results && chown gatebench:gatebench /results
USER 10001:10001
WORKDIR /home/gatebench
ENTRYPOINT ["harness"]
CMD ["--help"]
