"""Fakes of outside services (the Telegram Bot API) for tests and benchmarks."""
