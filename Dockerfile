# stratum-proxy image: a static binary on distroless, run as a non-root user.
#
#   docker build -t stratum-proxy .
#   docker run -d --name stratum-proxy --ulimit nofile=262144:262144 \
#     -p 9332:9332 -p 12743:12743 -v stratum-proxy-data:/data stratum-proxy
#   docker exec stratum-proxy ... (no shell: read the token with
#   docker cp stratum-proxy:/data/api-token -)
#
# Flags go after the image name (docker run ... stratum-proxy --log.format=json),
# or as STRATUM_PROXY_* variables (-e), or in a mounted file with --config.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# A module proxy for builds behind a mirror: --build-arg GOPROXY=...
ARG GOPROXY
ENV CGO_ENABLED=0 GOFLAGS=-mod=readonly
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN go build -trimpath -ldflags "-s -w" -o /out/stratum-proxy . \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/stratum-proxy /stratum-proxy
# The store (proxy.db), its key (proxy.key) and the API token file
# (api-token, 0600) live in /data, owned by the image's nonroot user.
COPY --from=build --chown=65532:65532 /out/data /data
ENV STRATUM_PROXY_DB_PATH=/data/proxy.db
USER 65532:65532
# Stratum (miners), then HTTP: management API, dashboard, /metrics, /healthz.
EXPOSE 9332 12743
VOLUME /data
ENTRYPOINT ["/stratum-proxy"]
