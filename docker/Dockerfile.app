# The scones CLI and the Streamlit explorer: one image for the `deployer` (scones stage + deploy)
# and `explorer` (streamlit run streamlit_app/app.py) services. Both talk to the emulator through
# boto3 (AWS_ENDPOINT_URL), like any other client. Build context: the repository root.
# BASE: the repository of the official python images (a mirror's, or a local stand-in's);
# DEBIAN: their Debian release. PIP_INDEX_URL / PIP_EXTRA_INDEX_URL: a PyPI mirror, when set.
ARG BASE=python
ARG DEBIAN=trixie
FROM ${BASE}:3.11-slim-${DEBIAN}
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/scones

# The CLI and explorer extras of pyproject.toml (no model server, no torch); Streamlit is pinned
# to the version the tests run. Dependencies first, from pyproject.toml alone, so editing the
# code does not reinstall them.
ARG STREAMLIT_VERSION=1.67.0
COPY pyproject.toml docker/requirements.py ./
RUN python requirements.py cli explorer >/tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt "streamlit==${STREAMLIT_VERSION}"
COPY README.md ./
COPY scones ./scones
COPY local_model ./local_model
COPY cloud ./cloud
# Editable: scones finds lambdas/, statemachine/ beside its package (PROJECT_ROOT), as in a clone.
RUN pip install --no-deps -e .

# What `scones deploy` packages and creates: Lambda handlers and state machines; the UI.
COPY lambdas ./lambdas
COPY statemachine ./statemachine
COPY streamlit_app ./streamlit_app
# The deployer service's loop (compose.yaml): deploy, then deploy again whenever it is lost.
COPY docker/keep-deployed /usr/local/bin/keep-deployed

ENV SCONES_STATE_DIR=/var/lib/scones \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    STREAMLIT_SERVER_HEADLESS=true
RUN mkdir -p /var/lib/scones
EXPOSE 8501
CMD ["streamlit", "run", "streamlit_app/app.py", "--server.address=0.0.0.0", "--server.port=8501"]
