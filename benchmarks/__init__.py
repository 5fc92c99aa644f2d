"""Kefu's benchmarks: latency, throughput, memory and start-up of the real stack (`make bench`)."""
