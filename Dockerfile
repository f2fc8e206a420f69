# syntax=docker/dockerfile:1
# The long-running consumer: `fraud consume` = the KCL MultiLangDaemon (Java 17) running our
# Python record processor. One container per worker; scale out by running more containers
# with the same FRAUD_APPLICATION_NAME (KCL spreads the shards over them).
#
#   docker build -t fraud .
#   docker run --init --rm \
#       -e FRAUD_STREAM=transactions -e FRAUD_REGION=eu-west-1 fraud
#
# `--init` gives the container a PID 1 that reaps orphaned processes (the daemon starts one
# Python child per shard). Credentials come from boto3's and the KCL's usual chains (ECS task
# role, EKS IRSA, EC2 instance profile, AWS_* variables); nothing is baked into the image.
# Against local emulators fraud.stream.daemon disables the EC2 metadata lookup.
#
# The base is pinned to Debian bookworm: it is the Debian release that ships Java 17
# (openjdk-17-jre-headless); trixie only ships 21.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------
# Build stage: install the package into a venv, fetch the KCL jars with Maven, install
# amazon-kclpy 3.1.3 against those jars (scripts/fetch_kcl_jars.py). Maven stays here.
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The man-page directory must exist or the JDK's post-install scripts fail on slim images.
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends maven openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md ./
COPY fraud ./fraud
# A regular (non-editable) install: the image needs no source tree at run time.
RUN pip install --upgrade pip \
 && pip install .

COPY scripts/fetch_kcl_jars.py ./scripts/
RUN python scripts/fetch_kcl_jars.py --dest /opt/kcl-jars --maven-repo /tmp/m2 --install-kclpy \
 && rm -rf /tmp/m2

# ---------------------------------------------------------------------------------------------
# Runtime stage: Python, a Java 17 JRE, the venv, the jars, the model and the rules.
FROM ${PYTHON_IMAGE} AS runtime

RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 fraud \
 && useradd --system --uid 10001 --gid fraud --home-dir /home/fraud --create-home fraud \
 && mkdir -p /var/lib/fraud /opt/numba-cache \
 && chown fraud:fraud /var/lib/fraud /opt/numba-cache

COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/kcl-jars /opt/kcl-jars

WORKDIR /app
COPY models ./models
COPY rules ./rules

# Settings (every one can also be given as a flag; `fraud consume --help` lists them all):
#   FRAUD_STREAM               Kinesis stream of transactions           (default: transactions)
#   FRAUD_APPLICATION_NAME     KCL application = lease table name       (default: fraud-consumer)
#   FRAUD_REGION               AWS region                               (default: us-east-1)
#   FRAUD_TABLE_PREFIX         prefix of every DynamoDB table           (default: fraud-)
#   FRAUD_INITIAL_POSITION     TRIM_HORIZON or LATEST for a new lease   (default: TRIM_HORIZON)
#   FRAUD_ALERT_TOPIC          SNS topic name or ARN for alerts         (default: fraud-alerts)
#   FRAUD_DECISIONS_STREAM     stream receiving block decisions         (default: fraud-decisions)
#   FRAUD_ARCHIVE_URI          s3://bucket/prefix archive               (default: unset = off)
#   FRAUD_ENDPOINT_URL         DynamoDB/SNS/S3 endpoint (local stacks)  (default: unset = AWS)
#   FRAUD_KINESIS_ENDPOINT_URL Kinesis endpoint when different          (default: unset = AWS)
#   FRAUD_SCORER / FRAUD_SAGEMAKER_ENDPOINT  local artifact or SageMaker (default: local)
#   FRAUD_RULES_RELOAD_SECONDS how often the rules file is re-checked   (default: 10)
# Set here because the image's layout differs from a checkout:
#   FRAUD_MODEL_DIR, FRAUD_RULES  the artifact and rules copied into /app (mount others over them)
#   FRAUD_KCL_JARS                the jars fetched at build time (no Maven at run time)
#   FRAUD_LOCAL_DIR               a writable work dir (the daemon's properties file)
#   NUMBA_CACHE_DIR               compiled kernels, warmed below so start-up does not compile
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FRAUD_MODEL_DIR=/app/models/default \
    FRAUD_RULES=/app/rules/default.yaml \
    FRAUD_KCL_JARS=/opt/kcl-jars \
    FRAUD_LOCAL_DIR=/var/lib/fraud \
    FRAUD_LOG_LEVEL=INFO \
    NUMBA_CACHE_DIR=/opt/numba-cache

USER fraud

# Compile the numba kernels (features and the model's tree walk) into the image's cache now,
# and prove the packaged model and rules load. If this machine's CPU differs from the one
# that runs the image, numba recompiles once at start-up (the cache dir stays writable).
RUN python -c "from fraud.features import FeatureEngine; FeatureEngine(); \
from fraud.model.scorer import LocalScorer; LocalScorer.load('/app/models/default'); \
from fraud.rules import default_vocabulary, load_rules; \
load_rules('/app/rules/default.yaml', default_vocabulary())"

# Liveness only: the consumer exits non-zero when its daemon dies, so this catches the one
# case that exit does not, a container whose JVM never came up (or vanished) while Python
# lingers. It does not prove records are flowing; watch the iterator-age metric for that.
# (It skips its own process: its command line contains the class name it looks for.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, sys\ndef jvm(pid):\n    try:\n        with open(f'/proc/{pid}/cmdline', 'rb') as fh:\n            return b'MultiLangDaemon' in fh.read()\n    except OSError:\n        return False\nme = str(os.getpid())\nsys.exit(0 if any(jvm(p) for p in os.listdir('/proc') if p.isdigit() and p != me) else 1)"]

ENTRYPOINT ["fraud"]
CMD ["consume"]
