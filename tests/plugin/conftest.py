"""The pytest plugin tested as its users meet it: suites run by pytester, with real labs."""

pytest_plugins = ["pytester"]
