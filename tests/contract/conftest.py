"""Every test here that takes `backend` runs once per backend (and per mode and cell of
it, for those it also takes): see cases.py."""

from contract.cases import generate


def pytest_configure(config):
    config.addinivalue_line("markers", "every_path: every cell in the default mode, the LSTM in the others")


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        generate(metafunc)
