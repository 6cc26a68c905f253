# syntax=docker/dockerfile:1
# agentbroker in a container: the broker, and Node with the agents' ACP
# adapters at the versions the examples prove (examples/*/run).
#
#   docker build --build-arg VERSION=v1.2.3 -t agentbroker .
#   docker run -d --name agentbroker -p 127.0.0.1:7420:7420 -v agentbroker:/var/lib/agentbroker agentbroker
#   docker exec agentbroker agentbroker project list      # the CLI finds the broker in the data directory
#
# The broker listens on all of the container's interfaces (a published port
# reaches nothing else); publish it on the host's loopback, as above, unless
# a proxy guards it. The console is at http://127.0.0.1:7420/; the admin
# token is in the volume: docker exec agentbroker cat /var/lib/agentbroker/admin-token

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/agentbroker ./cmd/agentbroker \
 && /out/agentbroker version

FROM node:22-bookworm-slim AS runtime
# The adapters, readable by the user agents run as (the broker's own user).
RUN npm install --prefix /opt/agentbroker/agents --no-audit --no-fund --loglevel=error \
      @agentclientprotocol/claude-agent-acp@0.101.0 \
      @agentclientprotocol/codex-acp@2.6.0 \
      @zed-industries/codex-acp@0.16.0 \
 && npm cache clean --force \
 && useradd --system --uid 10001 --home-dir /var/lib/agentbroker --shell /usr/sbin/nologin agentbroker \
 && install -d -o agentbroker -g agentbroker -m 0700 /var/lib/agentbroker \
 && install -d -o agentbroker -g agentbroker -m 0711 /var/lib/agentbroker-sessions
COPY --from=build /out/agentbroker /usr/local/bin/agentbroker
ENV AGENTBROKER_DATA_DIR=/var/lib/agentbroker \
    AGENTBROKER_SESSIONS_DIR=/var/lib/agentbroker-sessions \
    AGENTBROKER_AGENTS_DIR=/opt/agentbroker/agents \
    AGENTBROKER_LISTEN=0.0.0.0:7420 \
    AGENTBROKER_PUBLIC_URL=http://127.0.0.1:7420 \
    AGENTBROKER_SHUTDOWN_TIMEOUT=8
USER agentbroker
VOLUME ["/var/lib/agentbroker"]
EXPOSE 7420
HEALTHCHECK --interval=30s --timeout=5s CMD ["node", "-e", "fetch('http://127.0.0.1:7420/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# serve stops cleanly on SIGTERM (docker stop): turns in flight are
# cancelled, within AGENTBROKER_SHUTDOWN_TIMEOUT (under docker stop's 10 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["agentbroker"]
CMD ["serve"]
