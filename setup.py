"""Package metadata for espnet2_sonar. Dependencies come from requirements.txt (one pin list)."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
TEST_ONLY = {"pytest", "pytest-timeout"}


def _requirements():
    reqs = []
    for line in (HERE / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and line.split("=")[0].split(">")[0].split("<")[0] not in TEST_ONLY:
            reqs.append(line)
    return reqs


ENTRY_POINTS = [
    "sonar_data_prep=espnet2_sonar.bin.data_prep:main",
]

setup(
    name="espnet2_sonar",
    version="0.1.0",
    description="Continual self-supervised pre-training of BEATs audio encoders (SONAR) as an ESPnet plugin",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    license_files=["LICENSE"],
    packages=find_packages(include=["espnet2_sonar", "espnet2_sonar.*"]),
    python_requires=">=3.12",
    install_requires=_requirements(),
    extras_require={"test": sorted(TEST_ONLY)},
    entry_points={"console_scripts": ENTRY_POINTS},
)
