"""Support for tests, benchmarks and chaos runs: real ZooKeeper servers on loopback."""
