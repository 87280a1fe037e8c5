"""End-to-end benchmark: StreamHouse against Apache Kafka with the same clients.

Started by benches/e2e/run.sh (as `python -m bench` with benches/e2e on the
path), which prepares jars, the venv, PostgreSQL and the S3 server's binary.

- `__main__`: the command line, the run over repetitions and brokers, the
  output files.
- `brokers`: starting, probing and stopping Kafka and StreamHouse.
- `scenarios`: the workloads (Kafka's perf tools, Metadata timing) and what
  one scenario records.
- `metrics`: measurements of a process (/proc) and of StreamHouse's metrics
  endpoint.
- `report`: the summary table, results.md and the plots.
- `processes`: child processes and the client runs timed around them.
- `wire`: just enough of the Kafka protocol for Metadata.
"""
