# Tests: Criterion unit tests, fixture plugins, and end-to-end tests that
# run the real binary against real peers on loopback.
