# mlplacement operator image: the package and its runtime dependencies only, run as a non-root user.
# Base pinned to an exact release; pin the digest too in your registry mirror (`docker buildx imagetools inspect`).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements/runtime.lock ./requirements/
COPY operator ./operator
# Exactly the versions CI tested (requirements/runtime.lock, with hashes), then the package without resolving.
RUN python -m venv /opt/mlplacement \
 && /opt/mlplacement/bin/pip install --no-compile --require-hashes --no-deps -r requirements/runtime.lock \
 && /opt/mlplacement/bin/pip install --no-compile --no-deps . \
 && /opt/mlplacement/bin/python -m compileall -q /opt/mlplacement/lib

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="mlplacement" \
      org.opencontainers.image.description="Kubernetes operator that places signed ML workloads on GPU pools, edge clusters or Databricks" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/mlplacement /opt/mlplacement
ENV PATH=/opt/mlplacement/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# Numeric ids so `runAsNonRoot` can be checked by the kubelet without an /etc/passwd lookup.
USER 65532:65532
EXPOSE 8080 9090 9443
ENTRYPOINT ["mlplacement"]
CMD ["run"]
