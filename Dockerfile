# One image for the API and the workers.
#   CPU (default):  docker build -t gradwatch:cpu .
#   GPU:            docker build -t gradwatch:gpu --build-arg EXTRAS=gpu .
# The GPU build installs TensorFlow's CUDA libraries from pip (`.[gpu]`); the
# host needs only the NVIDIA driver and container toolkit.
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLCONFIGDIR=/tmp/matplotlib

WORKDIR /app
ARG EXTRAS=""

# Dependencies first, from pyproject alone, so a code change does not
# reinstall TensorFlow: a placeholder package stands in for the source.
COPY pyproject.toml README.md ./
RUN mkdir -p core api worker \
    && touch core/__init__.py api/__init__.py worker/__init__.py \
    && pip install ".${EXTRAS:+[${EXTRAS}]}" \
    && pip uninstall --yes gradwatch \
    && rm -rf core api worker build *.egg-info

COPY core ./core
COPY api ./api
COPY worker ./worker
RUN pip install --no-deps . && rm -rf build *.egg-info

RUN useradd --create-home --uid 10001 gradwatch
USER gradwatch

EXPOSE 8000
CMD ["python", "-m", "uvicorn", "api.main:app", "--http", "api.head_deadline:HeadDeadline", "--host", "0.0.0.0", "--port", "8000"]
