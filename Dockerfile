# syntax=docker/dockerfile:1
# The durable image: the control plane, the operator, the migrations, and the base of worker
# images (FROM it, add your code, run `durable worker --app module:attr`; see docs/kubernetes.md).
#
#   docker build -t durable:0.1.0 .
#
# No configuration is baked in: DATABASE_URL and the rest come from the environment at run time.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: the project's wheel and every dependency's wheel --------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY . .
RUN pip wheel --wheel-dir /wheels .

# ---- runtime: install the wheels, run as a non-root user ------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="durable" \
      org.opencontainers.image.description="A Kubernetes-native durable execution engine on PostgreSQL" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10001 durable \
 && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/durable \
      --shell /usr/sbin/nologin durable
# Offline install from the build stage's wheels only; the wheels never land in a layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels durable-engine \
 && durable --help >/dev/null
WORKDIR /home/durable
# A numeric user, so that Kubernetes can enforce runAsNonRoot. The chart runs it with a
# read-only root filesystem and an emptyDir on /tmp.
USER 10001:10001
# 9001: control plane gRPC; 9002: worker gRPC health; 9090: Prometheus metrics.
EXPOSE 9001 9002 9090
ENTRYPOINT ["durable"]
CMD ["--help"]
