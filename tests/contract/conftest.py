"""Every test here that takes `backend` runs once per backend (and per mode and cell of
it, for those it also takes): see cases.py."""

from contract.cases import generate


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        generate(metafunc)
