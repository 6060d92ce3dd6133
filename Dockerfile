# logveil image: built in one stage, run from another that holds only the
# binary and the shared libraries it loads (Debian 12 "bookworm" slim).
#
#   docker build -t logveil:0.1.0 .
#
# LOGVEIL_VERSION is the release in CMakeLists.txt and the Helm chart's
# appVersion and image.tag; tests/integration/test_image.py
# checks that they agree and that RUNTIME_PACKAGES covers every library the
# binary needs (ldd, and the dlopen()ed libcurl and libsnappy).
ARG LOGVEIL_VERSION=0.1.0

FROM debian:bookworm-slim AS build
ARG LOGVEIL_VERSION
RUN apt-get update && apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config \
        libyajl-dev libpcre2-dev libyaml-dev zlib1g-dev libssl-dev \
        libev-dev libcurl4-openssl-dev libsnappy-dev libmicrohttpd-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY include include
COPY sidecar sidecar
COPY filters filters
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLOGVEIL_TESTS=OFF \
    && cmake --build build -j"$(nproc)" \
    && test "$(build/logveil --version)" = "logveil ${LOGVEIL_VERSION}"

FROM debian:bookworm-slim
ARG LOGVEIL_VERSION
# Runtime libraries only: one package per library logveil links or loads.
ARG RUNTIME_PACKAGES="libyajl2 libpcre2-8-0 libyaml-0-2 libssl3 libmicrohttpd12 zlib1g libev4 libcurl4 libsnappy1v5 librdkafka1 ca-certificates"
RUN apt-get update && apt-get install -y --no-install-recommends ${RUNTIME_PACKAGES} \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 logveil \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
               --shell /usr/sbin/nologin logveil \
    && install -d -o 10001 -g 10001 /var/lib/logveil
COPY --from=build /src/build/logveil /usr/local/bin/logveil
LABEL org.opencontainers.image.title="logveil" \
      org.opencontainers.image.description="Structured-logging sidecar: redacts, samples, ships" \
      org.opencontainers.image.version="${LOGVEIL_VERSION}"
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 2020
ENTRYPOINT ["/usr/local/bin/logveil"]
CMD ["run", "--config", "/etc/logveil/config/logveil.yaml"]
