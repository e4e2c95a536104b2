"""The test suite's one fixtures plugin, registered here (pytest reads pytest_plugins only in the rootdir conftest)."""

pytest_plugins = [
    "tests.fixtures.isolation",
    "tests.fixtures.accounts",
    "tests.fixtures.diffusion",
    "tests.fixtures.datasets",
]
