# The taxi_assets code location image: the gRPC code server the Dagster webserver and daemon
# talk to, and the image every Kubernetes run pod starts from (K8sRunLauncher).
#
#   docker build -t <registry>/taxi-assets:<git sha> .
#
# No secret is baked in: credentials and the database password arrive as environment
# variables from Kubernetes Secrets at run time (docs/deployment.md).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The exact pins (the Dagster family, Polars, CatBoost) come from pyproject.toml; the k8s
# extra adds dagster-k8s at the same family version, for the Kubernetes run launcher.
COPY pyproject.toml README.md ./
COPY taxi_assets ./taxi_assets
RUN pip install ".[k8s]"

FROM python:3.11-slim
# An unprivileged user with a fixed uid, so Kubernetes can enforce runAsNonRoot and
# deploy/helm/values.yaml can name it (runAsUser: 10001).
RUN groupadd --system --gid 10001 taxi \
    && useradd --system --uid 10001 --gid taxi --home-dir /opt/dagster --shell /usr/sbin/nologin taxi
COPY --from=build /opt/venv /opt/venv
# Outside Helm (docker run, a VM) the instance is deploy/dagster.postgres.yaml, configured by
# DAGSTER_PG_* variables; the Helm chart mounts its own dagster.yaml over it.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    TAXI_ASSETS_ENV=production
COPY deploy/dagster.postgres.yaml /opt/dagster/dagster_home/dagster.yaml
RUN mkdir -p /opt/dagster/app && chown -R taxi:taxi /opt/dagster
WORKDIR /opt/dagster/app
USER 10001:10001
EXPOSE 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "taxi_assets.definitions"]
